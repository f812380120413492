using System.Security.Cryptography;
using System.Text;
using Magnetar.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace Magnetar.Cloud.Simulated;

/// <summary>
/// A <b>simulated</b> OpenStack: it creates rows standing for networks, security groups, server groups, a load
/// balancer, floating IPs and servers, each becoming ACTIVE after a configurable delay, with addresses allocated
/// like Neutron would. No VM exists and nothing boots; a "server" counts as a Ready node once it is ACTIVE.
/// It honours the same contract as the real driver: level-triggered, idempotent, everything tagged with the
/// cluster uuid, deletion in reverse dependency order, faults reported with the resource and the cloud's message.
/// </summary>
public sealed class SimulatedCloudProvider(
    IDbContextFactory<MagnetarDbContext> dbFactory,
    SimulatedCloudOptions options,
    SimulatedCloudFaults faults,
    TimeProvider time,
    ILogger<SimulatedCloudProvider> logger) : ICloudProvider
{
    public string Name => "simulated";

    private static class Kinds
    {
        public const string Network = "network";
        public const string Subnet = "subnet";
        public const string Router = "router";
        public const string SecurityGroup = "secgroup";
        public const string ServerGroup = "servergroup";
        public const string LoadBalancer = "loadbalancer";
        public const string FloatingIp = "floatingip";
        public const string Server = "server";
    }

    private const string Active = "ACTIVE", Build = "BUILD", Error = "ERROR", Deleting = "DELETING";

    /// <summary>Deletion tiers: a tier starts only when everything of the tiers before it is gone.</summary>
    private static readonly string[][] DeletionTiers =
    [
        [Kinds.Server, Kinds.LoadBalancer, Kinds.FloatingIp],
        [Kinds.ServerGroup, Kinds.SecurityGroup, Kinds.Router],
        [Kinds.Subnet],
        [Kinds.Network],
    ];

    private TimeSpan Step => TimeSpan.FromMilliseconds(Math.Max(0, options.StepDelayMs));

    public async Task<ClusterObservation> ReconcileAsync(ClusterSpec spec, CancellationToken ct)
    {
        if (options.ApiLatencyMs > 0) await Task.Delay(options.ApiLatencyMs, ct);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var now = time.GetUtcNow();
        var rows = await db.SimulatedResources.Where(r => r.ClusterUuid == spec.ClusterUuid).ToListAsync(ct);
        Settle(db, rows, now);

        var conditions = new List<ConditionObservation>();
        string? failure = null;

        SimulatedResource Ensure(string kind, string name, string? nodeGroup = null, int steps = 1, Func<string?>? address = null)
        {
            var existing = rows.FirstOrDefault(r => r.Kind == kind && r.Name == name && r.DeleteRequestedAt is null);
            if (existing is not null) return existing; // adopt what a previous pass created
            var fault = faults.Match("create", kind, nodeGroup, spec.Labels);
            var row = new SimulatedResource
            {
                ClusterUuid = spec.ClusterUuid,
                Kind = kind,
                Name = name,
                ResourceId = DeterministicId(spec.ClusterUuid, kind, name),
                NodeGroup = nodeGroup,
                Status = fault is null ? Build : Error,
                Detail = fault is null ? null : FaultMessage(kind, fault),
                Address = address?.Invoke(),
                CreatedAt = now,
                ReadyAt = now + Step * steps,
            };
            db.SimulatedResources.Add(row);
            rows.Add(row);
            logger.LogInformation("Simulated cloud: creating {Kind} {Name} for cluster {Cluster}", kind, name, spec.ClusterUuid);
            return row;
        }

        bool Ready(params SimulatedResource?[] rs) => rs.All(r => r is null || r.Status == Active);
        void Check(string condition, params SimulatedResource?[] rs)
        {
            var error = rs.FirstOrDefault(r => r is not null && r.Status == Error);
            if (error is not null)
            {
                failure ??= $"{Describe(error)} went to ERROR: {error.Detail}";
                conditions.Add(new ConditionObservation(condition, false, "Failed", failure));
                return;
            }
            var pending = rs.Where(r => r is not null && r.Status != Active).Select(r => Describe(r!)).ToList();
            conditions.Add(pending.Count == 0
                ? new ConditionObservation(condition, true, "Ready")
                : new ConditionObservation(condition, false, "Waiting", "waiting for " + string.Join(", ", pending)));
        }

        // 1. network, subnet, router and security groups — independent, created in the same pass.
        var network = spec.FixedNetwork is null ? Ensure(Kinds.Network, $"{spec.ClusterName}-net") : null;
        var subnet = spec.FixedSubnet is null ? Ensure(Kinds.Subnet, $"{spec.ClusterName}-subnet") : null;
        var router = spec.FixedNetwork is null && spec.ExternalNetworkId is not null ? Ensure(Kinds.Router, $"{spec.ClusterName}-router") : null;
        Check(Magnetar.Domain.ConditionTypes.NetworkReady, network, subnet, router);
        var sgMaster = Ensure(Kinds.SecurityGroup, $"{spec.ClusterName}-secgroup-master");
        var sgWorker = Ensure(Kinds.SecurityGroup, $"{spec.ClusterName}-secgroup-worker");
        Check(Magnetar.Domain.ConditionTypes.SecurityGroupsReady, sgMaster, sgWorker);
        var networkReady = Ready(network, subnet, router);

        // 2. the API load balancer (needs the subnet) and its floating IP.
        SimulatedResource? lb = null, apiFip = null;
        if (spec.MasterLbEnabled && networkReady)
        {
            lb = Ensure(Kinds.LoadBalancer, $"{spec.ClusterName}-api-lb", steps: 2, address: () => "10.0.0.5");
            if (spec.FloatingIpEnabled && lb.Status == Active)
                apiFip = Ensure(Kinds.FloatingIp, $"{spec.ClusterName}-api-fip", address: () => FloatingAddress(spec.ClusterUuid, 5));
        }
        if (spec.MasterLbEnabled)
        {
            if (lb is null) conditions.Add(new ConditionObservation(Magnetar.Domain.ConditionTypes.LoadBalancerReady, false, "Waiting", "waiting for the network"));
            else Check(Magnetar.Domain.ConditionTypes.LoadBalancerReady, lb, apiFip);
        }

        // 3. per nodegroup: server group, then servers (need network and security groups).
        var ngObservations = new List<NodeGroupObservation>();
        var canBoot = networkReady && Ready(sgMaster, sgWorker);
        foreach (var ng in spec.NodeGroups)
        {
            var servers = rows.Where(r => r.Kind == Kinds.Server && r.NodeGroup == ng.Name && r.DeleteRequestedAt is null)
                .OrderBy(r => ServerIndex(r.Name)).ToList();
            var desired = ng.Deleting ? 0 : ng.NodeCount;

            // Replaced nodes (upgrade, healing) whatever the count; then scale down: the nodes the tenant named, then the newest.
            foreach (var v in ng.ServersToDelete(servers, s => s.Name, s => s.ResourceId))
            {
                MarkForDeletion(v, now, spec.Labels);
                servers.Remove(v);
            }

            var serverGroup = ng.Deleting ? null : Ensure(Kinds.ServerGroup, $"{spec.ClusterName}-{ng.Name}", ng.Name);
            if (!ng.Deleting && canBoot && Ready(serverGroup))
            {
                // A name is free once its server is gone (as on Nova, where a deleting server still holds it).
                var used = rows.Where(r => r.Kind == Kinds.Server && r.NodeGroup == ng.Name).Select(s => ServerIndex(s.Name)).ToHashSet();
                for (int i = 0; servers.Count < desired; i++)
                {
                    if (used.Contains(i)) continue;
                    var server = Ensure(Kinds.Server, $"{spec.ClusterName}-{ng.Name}-{i}", ng.Name, steps: 2,
                        address: () => NextFixedAddress(rows));
                    if (spec.FloatingIpEnabled) server.FloatingAddress = FloatingAddress(spec.ClusterUuid, 10 + AddressHost(server.Address));
                    if (db.Entry(server).State == EntityState.Added)
                    {
                        // Just requested: render its user-data once, as Nova receives it once at server create.
                        server.UserData = await ng.UserData(server.Name, ct);
                        server.Detail ??= $"user-data {Encoding.UTF8.GetByteCount(server.UserData)} bytes";
                    }
                    servers.Add(server);
                }
            }

            var erroredServer = servers.FirstOrDefault(s => s.Status == Error && !ng.Retiring.Contains(s.Name)) ?? (serverGroup?.Status == Error ? serverGroup : null);
            string? ngFailure = erroredServer is null ? null : $"{Describe(erroredServer)} went to ERROR: {erroredServer.Detail}";
            failure ??= ngFailure;
            var leaving = rows.Where(r => r.Kind == Kinds.Server && r.NodeGroup == ng.Name && r.DeleteRequestedAt is not null).ToList();
            var nodes = servers.Select(s => new NodeObservation(s.Name, s.ResourceId,
                spec.FloatingIpEnabled ? s.FloatingAddress ?? s.Address : s.Address, s.Status,
                new[] { s.Address, s.FloatingAddress }.OfType<string>().ToList())).ToList();
            var ready = servers.Count == desired && servers.All(s => s.Status == Active) && leaving.Count == 0 && Ready(serverGroup);
            ngObservations.Add(new NodeGroupObservation(ng.Name, nodes, ready, ng.Deleting && servers.Count == 0 && leaving.Count == 0, ngFailure));
        }

        var masters = spec.NodeGroups.Where(n => n.Role == "master").Select(n => ngObservations.First(o => o.Name == n.Name)).ToList();
        var workers = spec.NodeGroups.Where(n => n.Role != "master").Select(n => ngObservations.First(o => o.Name == n.Name)).ToList();
        conditions.Add(Condition(Magnetar.Domain.ConditionTypes.ControlPlaneReady, masters, canBoot));
        conditions.Add(Condition(Magnetar.Domain.ConditionTypes.WorkersReady, workers, canBoot));

        // Node groups being deleted lose their server group once their servers are gone.
        foreach (var ng in spec.NodeGroups.Where(n => n.Deleting))
        {
            var sg = rows.FirstOrDefault(r => r.Kind == Kinds.ServerGroup && r.NodeGroup == ng.Name && r.DeleteRequestedAt is null);
            if (sg is not null && !rows.Any(r => r.Kind == Kinds.Server && r.NodeGroup == ng.Name)) MarkForDeletion(sg, now, spec.Labels);
        }

        string? apiAddress = null;
        if (spec.MasterLbEnabled)
        {
            var ip = spec.FloatingIpEnabled ? apiFip?.Address : lb?.Address;
            if (ip is not null && Ready(lb, apiFip)) apiAddress = $"https://{ip}:6443";
        }
        else
        {
            var first = masters.SelectMany(m => m.Nodes).FirstOrDefault(n => n.Status == Active);
            if (first?.Address is not null) apiAddress = $"https://{first.Address}:6443";
        }

        await db.SaveChangesAsync(ct);

        if (failure is not null)
            return new ClusterObservation(ProvisionPhase.Failed, "Simulated cloud: " + failure, conditions, apiAddress, ngObservations);
        var allReady = conditions.All(c => c.Status) && ngObservations.All(o => o.Ready || o.Gone) && apiAddress is not null;
        var waiting = conditions.FirstOrDefault(c => !c.Status);
        return new ClusterObservation(allReady ? ProvisionPhase.Ready : ProvisionPhase.Progressing,
            allReady ? null : $"{waiting?.Type ?? "Nodes"}: {waiting?.Message ?? "waiting"}", conditions, apiAddress, ngObservations)
        {
            RequeueAfter = allReady ? null : NextChange(rows, now),
        };
    }

    public async Task<IReadOnlyDictionary<string, IReadOnlyList<ServerState>>> ObserveServersAsync(IReadOnlyList<ClusterRef> clusters, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var now = time.GetUtcNow();
        var uuids = clusters.Select(c => c.Uuid).ToList();
        var rows = await db.SimulatedResources.AsNoTracking()
            .Where(r => r.Kind == Kinds.Server && r.DeleteRequestedAt == null && uuids.Contains(r.ClusterUuid))
            .Select(r => new { r.ClusterUuid, r.Name, r.NodeGroup, r.Status, r.ReadyAt }).ToListAsync(ct);
        var byCluster = rows.ToLookup(r => r.ClusterUuid);
        return uuids.ToDictionary(u => u, u => (IReadOnlyList<ServerState>)byCluster[u]
            .Select(r => new ServerState(r.Name, r.NodeGroup, r.Status == Build && r.ReadyAt <= now ? Active : r.Status)).ToList());
    }

    public Task<CloudCredential?> IssueCredentialAsync(CredentialRequest request, CancellationToken ct) => Task.FromResult<CloudCredential?>(null);

    public async Task<DeletionObservation> DeleteAsync(ClusterRef cluster, CancellationToken ct)
    {
        if (options.ApiLatencyMs > 0) await Task.Delay(options.ApiLatencyMs, ct);
        var clusterUuid = cluster.Uuid;
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var now = time.GetUtcNow();
        var rows = await db.SimulatedResources.Where(r => r.ClusterUuid == clusterUuid).ToListAsync(ct);
        Settle(db, rows, now);
        var labels = await db.Clusters.Where(c => c.Uuid == clusterUuid).Select(c => c.Labels).FirstOrDefaultAsync(ct)
                     ?? new Dictionary<string, string>();

        string? failure = null;
        foreach (var tier in DeletionTiers)
        {
            var inTier = rows.Where(r => tier.Contains(r.Kind)).ToList();
            if (inTier.Count == 0) continue;
            foreach (var r in inTier.Where(r => r.DeleteRequestedAt is null || (r.Status == Error && faults.Match("delete", r.Kind, r.NodeGroup, labels) is null)))
                MarkForDeletion(r, now, labels);
            var stuck = inTier.FirstOrDefault(r => r.Status == Error && r.DeleteRequestedAt is not null);
            if (stuck is not null) failure = $"Simulated cloud: deleting {Describe(stuck)} failed: {stuck.Detail}";
            break; // later tiers wait until this one is gone
        }
        await db.SaveChangesAsync(ct);

        var remaining = rows.Select(Describe).ToList();
        if (failure is not null) return new DeletionObservation(ProvisionPhase.Failed, failure, remaining);
        if (remaining.Count == 0) return new DeletionObservation(ProvisionPhase.Ready, null, remaining);
        return new DeletionObservation(ProvisionPhase.Progressing, "deleting " + string.Join(", ", remaining.Take(5)) + (remaining.Count > 5 ? $" and {remaining.Count - 5} more" : ""), remaining)
        {
            RequeueAfter = NextChange(rows, now),
        };
    }

    public Task<CloudReferenceError?> ValidateReferencesAsync(CloudReferences r, string projectId, CancellationToken ct)
    {
        // Magnum's attr_validator messages and codes (ImageNotFound and FlavorNotFound are 400s, KeyPairNotFound a 404).
        // Catalog entries are named by name or by their stable id (SimulatedCatalog), as on a cloud where both resolve.
        if (r.ImageId is not null && SimulatedCatalog.Resolve(options.Images, SimulatedCatalog.Image, r.ImageId) is null)
            return Task.FromResult<CloudReferenceError?>(new(400, $"Image {r.ImageId} could not be found."));
        foreach (var f in r.FlavorIds)
            if (SimulatedCatalog.Resolve(options.Flavors, SimulatedCatalog.Flavor, f) is null)
                return Task.FromResult<CloudReferenceError?>(new(400, $"Unable to find flavor {f}."));
        if (r.ExternalNetworkId is not null && SimulatedCatalog.Resolve(options.ExternalNetworks, SimulatedCatalog.Network, r.ExternalNetworkId) is null)
            return Task.FromResult<CloudReferenceError?>(new(400, $"Unable to find external network {r.ExternalNetworkId}."));
        if (r.Keypair is not null && options.Keypairs.Count > 0 && !options.Keypairs.Contains(r.Keypair))
            return Task.FromResult<CloudReferenceError?>(new(404, $"Unable to find keypair {r.Keypair}."));
        return Task.FromResult<CloudReferenceError?>(null);
    }

    /// <summary>Advances time: BUILD → ACTIVE once ready, DELETING → gone once its deletion finished.</summary>
    private static void Settle(MagnetarDbContext db, List<SimulatedResource> rows, DateTimeOffset now)
    {
        foreach (var r in rows.ToList())
        {
            if (r.DeleteRequestedAt is not null && r.Status == Deleting && r.GoneAt <= now)
            {
                db.SimulatedResources.Remove(r);
                rows.Remove(r);
            }
            else if (r.Status == Build && r.ReadyAt <= now)
            {
                r.Status = Active;
            }
        }
    }

    private void MarkForDeletion(SimulatedResource r, DateTimeOffset now, IReadOnlyDictionary<string, string> labels)
    {
        var fault = faults.Match("delete", r.Kind, r.NodeGroup, labels);
        r.DeleteRequestedAt = now;
        if (fault is not null)
        {
            r.Status = Error;
            r.Detail = FaultMessage(r.Kind, fault, deleting: true);
            return;
        }
        r.Status = Deleting;
        r.GoneAt = now + Step;
    }

    private TimeSpan NextChange(List<SimulatedResource> rows, DateTimeOffset now)
    {
        var next = rows.Select(r => r.Status == Build ? r.ReadyAt : r.Status == Deleting ? r.GoneAt ?? now : (DateTimeOffset?)null)
            .Where(t => t is not null && t > now).Select(t => t!.Value - now).DefaultIfEmpty(TimeSpan.Zero).Min();
        return next < TimeSpan.FromMilliseconds(20) ? TimeSpan.FromMilliseconds(20) : next;
    }

    private static ConditionObservation Condition(string type, List<NodeGroupObservation> groups, bool canBoot)
    {
        if (groups.Count == 0) return new ConditionObservation(type, true, "Ready");
        var failed = groups.FirstOrDefault(g => g.FailureMessage is not null);
        if (failed is not null) return new ConditionObservation(type, false, "Failed", failed.FailureMessage);
        if (!canBoot) return new ConditionObservation(type, false, "Waiting", "waiting for network and security groups");
        var notReady = groups.Where(g => !g.Ready && !g.Gone).ToList();
        if (notReady.Count == 0) return new ConditionObservation(type, true, "Ready");
        var pending = notReady.SelectMany(g => g.Nodes.Where(n => n.Status != Active).Select(n => $"server {n.Name} {n.Status}")).ToList();
        return new ConditionObservation(type, false, "Waiting", pending.Count > 0 ? "waiting for " + string.Join(", ", pending) : "waiting for nodes of " + string.Join(", ", notReady.Select(g => g.Name)));
    }

    private static string Describe(SimulatedResource r) => r.Kind switch
    {
        Kinds.Server => $"server {r.Name} (id {r.ResourceId}, nodegroup {r.NodeGroup})",
        Kinds.LoadBalancer => $"load balancer {r.Name} (id {r.ResourceId})",
        Kinds.SecurityGroup => $"security group {r.Name} (id {r.ResourceId})",
        Kinds.ServerGroup => $"server group {r.Name} (id {r.ResourceId})",
        Kinds.FloatingIp => $"floating IP {r.Address} ({r.Name})",
        _ => $"{r.Kind} {r.Name} (id {r.ResourceId})",
    };

    private static string FaultMessage(string kind, string fault, bool deleting = false)
    {
        var message = (kind, deleting) switch
        {
            (Kinds.Server, false) => "Nova: No valid host was found. There are not enough hosts available.",
            (Kinds.LoadBalancer, false) => "Octavia: load balancer provisioning_status ERROR (amphora failed to boot).",
            (Kinds.LoadBalancer, true) => "Octavia: load balancer stuck in provisioning_status ERROR during delete.",
            (Kinds.Network or Kinds.Subnet or Kinds.Router, false) => "Neutron: Quota exceeded for resources: ['network'].",
            (Kinds.SecurityGroup, true) => "Neutron: Security Group in use (409 Conflict).",
            _ => $"{kind} operation failed.",
        };
        return $"{message} (simulated fault '{fault}')";
    }

    private static string DeterministicId(string clusterUuid, string kind, string name)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes($"{clusterUuid}/{kind}/{name}"));
        return new Guid(hash.AsSpan(0, 16)).ToString();
    }

    private static int ServerIndex(string name)
    {
        var dash = name.LastIndexOf('-');
        return dash >= 0 && int.TryParse(name.AsSpan(dash + 1), out var i) ? i : int.MaxValue;
    }

    private static int AddressHost(string? address)
        => address is not null && int.TryParse(address.AsSpan(address.LastIndexOf('.') + 1), out var h) ? h : 0;

    /// <summary>Fixed IPs come from 10.0.0.0/24 as Neutron's allocation pool would hand them out (.10 upwards).</summary>
    private static string NextFixedAddress(List<SimulatedResource> rows)
    {
        var used = rows.Where(r => r.Kind == Kinds.Server).Select(r => AddressHost(r.Address)).ToHashSet();
        for (int host = 10; host < 255; host++)
            if (!used.Contains(host)) return $"10.0.0.{host}";
        throw new InvalidOperationException("simulated subnet 10.0.0.0/24 is exhausted");
    }

    /// <summary>Floating IPs from a simulated 172.24.0.0/16 "public" network, distinct per cluster.</summary>
    private static string FloatingAddress(string clusterUuid, int host)
    {
        var third = SHA256.HashData(Encoding.UTF8.GetBytes(clusterUuid))[0] % 250 + 1;
        return $"172.24.{third}.{Math.Clamp(host, 1, 254)}";
    }
}
