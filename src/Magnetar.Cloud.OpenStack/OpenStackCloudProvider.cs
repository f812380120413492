using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using Magnetar.Domain;
using Microsoft.Extensions.Logging;

namespace Magnetar.Cloud.OpenStack;

/// <summary>
/// Provisions clusters on a real OpenStack cloud: Neutron network, subnet, router and security groups, Nova server
/// groups and servers, an Octavia load balancer for the API, floating IPs — in the cluster's project, with the
/// cluster's own application credential.
///
/// Every pass is level-triggered: it lists what exists (found by the cluster's tag, or by the marker written into the
/// description/name at creation, so a resource created just before a crash is adopted, not duplicated), creates what
/// is missing, and returns at once with what it saw. Independent creations (network ∥ security groups ∥ server
/// groups) happen in the same pass. Deletion walks the same marks in reverse dependency order and counts 404 as done.
/// </summary>
public sealed partial class OpenStackCloudProvider(IHttpClientFactory httpFactory, OpenStackOptions options, TimeProvider time, ILoggerFactory loggers)
    : ICloudProvider
{
    public const string HttpClientName = "openstack";
    private const int ApiPort = 6443;
    private readonly ConcurrentDictionary<string, OpenStackClients> _clients = new();
    private readonly ILogger _logger = loggers.CreateLogger<OpenStackCloudProvider>();
    private readonly OpenStackOptions _options = options;
    private readonly TimeProvider _time = time;

    public string Name => "openstack";

    /// <summary>The tag every taggable resource of a cluster carries.</summary>
    public static string Tag(string clusterUuid) => $"magnetar-cluster-{clusterUuid}";

    /// <summary>The marker written at creation (description, or name where there is no description).</summary>
    public static string Marker(string clusterUuid, string role) => $"magnetar:{clusterUuid}:{role}";

    private static string MarkerPrefix(string clusterUuid) => $"magnetar:{clusterUuid}:";

    // ------------------------------------------------------------------------------------------------ clients

    internal sealed record OpenStackClients(KeystoneSession Session, ComputeClient Compute, NetworkClient Network,
        LoadBalancerClient LoadBalancer, ImageClient Image, IdentityClient Identity, BlockStorageClient BlockStorage);

    private OpenStackClients NewClients(OpenStackCredential credential)
    {
        var http = httpFactory.CreateClient(HttpClientName);
        // A caller's token takes its endpoints from the service user's catalog (when there is a service user) rather
        // than costing another Keystone validation in the request (issue #15: one Keystone call per create).
        Func<CancellationToken, Task<System.Text.Json.Nodes.JsonArray?>>? catalog =
            credential is OpenStackCredential.Token && !string.IsNullOrEmpty(options.Username) ? ct => ServiceClients().Session.CatalogAsync(ct) : null;
        var session = new KeystoneSession(http, options.AuthUrl, credential, options.Region, options.Interface, time, loggers.CreateLogger<KeystoneSession>(), catalog);
        var log = loggers.CreateLogger("Magnetar.Cloud.OpenStack.Http");
        return new OpenStackClients(session, new ComputeClient(http, session, log), new NetworkClient(http, session, log),
            new LoadBalancerClient(http, session, log), new ImageClient(http, session, log), new IdentityClient(http, session, log),
            new BlockStorageClient(http, session, log));
    }

    private OpenStackClients ServiceClients() => _clients.GetOrAdd("service", _ => NewClients(new OpenStackCredential.Password(
        options.Username, options.Password, options.ProjectName, options.UserDomainName, options.ProjectDomainName)));

    private OpenStackClients ClusterClients(CloudCredential credential)
        => _clients.GetOrAdd("appcred:" + credential.Id, _ => NewClients(new OpenStackCredential.ApplicationCredential(credential.Id, credential.Secret)));

    // ------------------------------------------------------------------------------------------------ credentials

    public async Task<CloudCredential?> IssueCredentialAsync(CredentialRequest request, CancellationToken ct)
    {
        // Only a user can create their own application credential: this runs with the creating request's token.
        var caller = NewClients(new OpenStackCredential.Token(request.CallerToken));
        var name = ApplicationCredentialName(request.ClusterUuid);
        var roles = _options.ApplicationCredentialRoles.Where(r => request.CallerRoles.Contains(r, StringComparer.OrdinalIgnoreCase)).ToList();
        if (roles.Count == 0)
            throw new OpenStackApiException("keystone", $"create application credential {name}", HttpStatusCode.Forbidden,
                $"the caller has none of the roles a cluster credential may carry ({string.Join(", ", _options.ApplicationCredentialRoles)})", null);
        var created = await caller.Identity.CreateApplicationCredentialAsync(request.UserId, name,
            $"Magnetar cluster {request.ClusterName} ({request.ClusterUuid}): provisioning and cloud integration. Revoked when the cluster is deleted.",
            roles, ct);
        _logger.LogInformation("Application credential {Id} created for cluster {Cluster} ({Uuid}) with roles {Roles}",
            created.Id, request.ClusterName, request.ClusterUuid, string.Join(",", roles));
        return new CloudCredential(created.Id, created.Secret ?? throw new InvalidOperationException("Keystone returned no secret"), request.UserId);
    }

    // ------------------------------------------------------------------------------------------------ validation

    /// <summary>
    /// Checks in flight, by project, caller and references: creates that arrive together (a burst from one template)
    /// wait for one check rather than each asking the cloud (issue #15). No check is answered from an earlier one: an
    /// image or flavor deleted since is found missing by the next create, as Magnum finds it.
    /// </summary>
    private readonly ConcurrentDictionary<string, Lazy<Task<ReferenceCheck>>> _checking = new();

    /// <summary>What a check found: the error to answer with, or the image, flavors (by the name asked) and external network.</summary>
    private sealed record ReferenceCheck(CloudReferenceError? Error, Image? Image = null, IReadOnlyDictionary<string, Flavor>? Flavors = null, Network? External = null)
    {
        public CloudReferences? References { get; init; }
        public DateTimeOffset At { get; init; }
    }

    /// <summary>
    /// What the check of a create found, by the cluster's uuid, for its first pass: it would otherwise ask the same
    /// questions again a second later (issue #15). Taken once, within <see cref="CheckedMemory"/>, and only for the
    /// same references; a cloud error in the pass that used it makes the next pass look everything up.
    /// </summary>
    private readonly ConcurrentDictionary<string, ReferenceCheck> _checked = new();
    private static readonly TimeSpan CheckedMemory = TimeSpan.FromMinutes(2);

    public async Task<CloudReferenceError?> ValidateReferencesAsync(CloudReferences r, string projectId, CancellationToken ct)
    {
        var caller = r.CallerToken is null ? "service" : Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(r.CallerToken)));
        var key = string.Join('\n', projectId, caller, r.ImageId, string.Join(',', r.FlavorIds), r.ExternalNetworkId, r.Keypair);
        var check = _checking.GetOrAdd(key, _ => new Lazy<Task<ReferenceCheck>>(() => CheckReferencesAsync(r, CancellationToken.None)));
        ReferenceCheck result;
        try { result = await check.Value.WaitAsync(ct); }
        finally { _checking.TryRemove(new KeyValuePair<string, Lazy<Task<ReferenceCheck>>>(key, check)); }
        if (result.Error is null && r.ForCluster is not null)
        {
            var now = _time.GetUtcNow();
            foreach (var old in _checked.Where(e => e.Value.At + CheckedMemory < now)) _checked.TryRemove(old);
            _checked[r.ForCluster] = result with { References = r, At = now };
        }
        return result.Error;
    }

    /// <summary>What the create's check found for this cluster, if it checked what the pass needs (see <see cref="_checked"/>).</summary>
    private ReferenceCheck? TakeChecked(ClusterSpec spec)
        => _checked.TryRemove(spec.ClusterUuid, out var found) && found.At + CheckedMemory > _time.GetUtcNow()
           && found.References!.ImageId == spec.ImageId && found.Image is not null
           && found.References.ExternalNetworkId == spec.ExternalNetworkId && (spec.ExternalNetworkId is null || found.External is not null)
            ? found : null;

    private async Task<ReferenceCheck> CheckReferencesAsync(CloudReferences r, CancellationToken ct)
    {
        var c = r.CallerToken is null ? ServiceClients() : NewClients(new OpenStackCredential.Token(r.CallerToken));
        try
        {
            // Magnum's attr_validator messages and codes (ImageNotFound and FlavorNotFound are 400s, KeyPairNotFound a 404).
            Image? image = null;
            if (r.ImageId is not null)
            {
                image = await c.Image.FindImageAsync(r.ImageId, ct);
                if (image is null) return new(new(400, $"Image {r.ImageId} could not be found."));
                if (string.IsNullOrEmpty(image.OsDistro)) return new(new(400, $"Image {r.ImageId} doesn't contain os_distro field."));
            }
            var flavors = new Dictionary<string, Flavor>();
            foreach (var f in r.FlavorIds)
            {
                var flavor = await c.Compute.FindFlavorAsync(f, ct);
                if (flavor is null) return new(new(400, $"Unable to find flavor {f}."));
                flavors[f] = flavor;
            }
            Network? external = null;
            if (r.ExternalNetworkId is not null && (external = await FindExternalNetworkAsync(c, r.ExternalNetworkId, ct)) is null)
                return new(new(400, $"Unable to find external network {r.ExternalNetworkId}."));
            if (r.Keypair is not null && !await c.Compute.KeypairExistsAsync(r.Keypair, ct))
                return new(new(404, $"Unable to find keypair {r.Keypair}."));
            return new(null, image, flavors, external);
        }
        catch (Exception e) when (e is OpenStackApiException or OpenStackUnavailableException)
        {
            return new(new(503, $"Could not check the cloud references: {e.Message}"));
        }
    }

    private static async Task<Network?> FindExternalNetworkAsync(OpenStackClients c, string idOrName, CancellationToken ct)
    {
        var byId = Guid.TryParse(idOrName, out _) ? await c.Network.GetNetworkAsync(idOrName, ct) : null;
        if (byId is not null) return byId.External ? byId : null;
        var named = await c.Network.ListNetworksAsync($"name={Uri.EscapeDataString(idOrName)}&router:external=true", ct);
        return named.Count == 1 ? named[0] : null;
    }

    // ------------------------------------------------------------------------------------------------ reconcile

    public async Task<ClusterObservation> ReconcileAsync(ClusterSpec spec, CancellationToken ct)
    {
        if (spec.Credential is null)
            return Failed("the cluster has no cloud credential (it was created without a Keystone token); delete it and create it again", []);
        var c = ClusterClients(spec.Credential);
        var pass = new ReconcilePass(this, c, spec, ct);
        try
        {
            var observation = await pass.RunAsync();
            if (observation.Phase == ProvisionPhase.Failed) Forget(spec.ClusterUuid);
            return observation;
        }
        catch (Exception e) when (e is OpenStackApiException or OpenStackUnavailableException && Forget(spec.ClusterUuid) && pass.UsedMemory
                                  && e is OpenStackApiException and not OpenStackQuotaException)
        {
            // The pass trusted what an earlier one had found (network, security groups, server groups) and the cloud
            // refused something: perhaps one of them was deleted behind our back. Look everything up again before
            // calling it a failure.
            _logger.LogWarning("Cluster {Uuid}: {Error} (looking its resources up again)", spec.ClusterUuid, e.Message);
            return new ClusterObservation(ProvisionPhase.Progressing, $"retrying after a cloud error: {e.Message}", pass.Conditions, null, [])
            { RequeueAfter = TimeSpan.FromSeconds(1) };
        }
        catch (OpenStackQuotaException e)
        {
            return Failed($"out of quota: {e.Message}", pass.Conditions);
        }
        catch (OpenStackApiException e) when (e is OpenStackServerException || e.StatusCode is HttpStatusCode.Conflict or HttpStatusCode.ServiceUnavailable)
        {
            // The cloud is having trouble or a resource is busy: say so and try again; the create timeout bounds it.
            _logger.LogWarning("Cluster {Uuid}: {Error} (will retry)", spec.ClusterUuid, e.Message);
            return new ClusterObservation(ProvisionPhase.Progressing, $"retrying after a cloud error: {e.Message}", pass.Conditions, null, [])
            { RequeueAfter = TimeSpan.FromSeconds(10) };
        }
        catch (OpenStackUnavailableException e)
        {
            _logger.LogWarning("Cluster {Uuid}: {Error} (will retry)", spec.ClusterUuid, e.Message);
            return new ClusterObservation(ProvisionPhase.Progressing, $"retrying: {e.Message}", pass.Conditions, null, [])
            { RequeueAfter = TimeSpan.FromSeconds(10) };
        }
        catch (OpenStackApiException e)
        {
            return Failed(e.Message, pass.Conditions);
        }
    }

    private static ClusterObservation Failed(string message, IReadOnlyList<ConditionObservation> conditions)
        => new(ProvisionPhase.Failed, message, conditions, null, []);

    // ------------------------------------------------------------------------------------------------ memory

    /// <summary>
    /// What a pass found or made of a cluster's network, router, security groups (with their rules) and server groups,
    /// and the image it checked: later passes of the same process trust it instead of listing all of it again (issue
    /// #15: a create polls several times while its servers build), each part from the moment it is done. It is a cache,
    /// never the truth: a process that starts knows nothing and looks everything up (so a resource made just before a
    /// crash is adopted), an entry lasts
    /// <see cref="InfrastructureMemory"/> at most, any change of what shapes those resources (labels, nodegroups,
    /// networks, keypair, image) misses it, and a pass that used it and met a cloud error forgets it and looks again
    /// before failing anything.
    /// </summary>
    private sealed class Infrastructure(string fingerprint, DateTimeOffset until)
    {
        public string Fingerprint { get; } = fingerprint;
        public DateTimeOffset Until { get; } = until;
        // Written as each part is found or made (one pass per cluster at a time: the conductor's lease).
        public bool ReferencesChecked { get; set; }
        public Network? External { get; set; }
        public (string NetworkId, string SubnetId)? Network { get; set; }
        public bool RouterAttached { get; set; }
        public (SecurityGroup Master, SecurityGroup Worker)? SecurityGroups { get; set; }
        public IReadOnlyDictionary<string, ServerGroup>? ServerGroups { get; set; }
    }

    private static readonly TimeSpan InfrastructureMemory = TimeSpan.FromMinutes(10);
    private readonly ConcurrentDictionary<string, Infrastructure> _infrastructure = new();

    /// <summary>Always true (usable inside an exception filter).</summary>
    private bool Forget(string clusterUuid) { _infrastructure.TryRemove(clusterUuid, out _); return true; }

    private static string InfrastructureFingerprint(ClusterSpec spec) => string.Join('\n',
        spec.ImageId, spec.ExternalNetworkId, spec.FixedNetwork, spec.FixedSubnet, spec.DnsNameserver, spec.Keypair, spec.Credential?.Id,
        string.Join(',', spec.NodeGroups.Where(n => !n.Deleting).Select(n => $"{n.Name}:{n.Role}")),
        string.Join(',', spec.Labels.OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => $"{l.Key}={l.Value}")));

    /// <summary>One reconcile pass over one cluster (state that lives only for the pass).</summary>
    private sealed class ReconcilePass(OpenStackCloudProvider p, OpenStackClients c, ClusterSpec spec, CancellationToken ct)
    {
        public List<ConditionObservation> Conditions { get; } = [];
        // Nodegroups are reconciled at the same time (their servers are requested together): what they note is shared.
        private readonly ConcurrentDictionary<string, string> _waiting = new();
        private readonly ConcurrentDictionary<string, bool> _deletingGroups = new();
        private readonly ConcurrentDictionary<string, string> _fixedAddresses = new();
        // User-data is rendered one server at a time (it decides which control-plane node initialises the cluster from
        // what was rendered before); the servers' creation requests overlap.
        private readonly SemaphoreSlim _rendering = new(1, 1);
        private string? _failure;
        // How long ago the most recently requested server still building was asked for (null: none is building).
        private TimeSpan? _newestBuild;
        // Lookups of this pass (nodegroups share a flavor and the image): asked once.
        private readonly Dictionary<string, Task<Image?>> _images = [];
        private readonly Dictionary<string, Task<Flavor?>> _flavors = [];
        private string Tag => OpenStackCloudProvider.Tag(spec.ClusterUuid);
        private string M(string role) => Marker(spec.ClusterUuid, role);

        /// <summary>Whether this pass trusted an earlier pass's findings (see <see cref="Infrastructure"/>).</summary>
        public bool UsedMemory { get; private set; }

        private Task<Image?> FindImageAsync(string idOrName) => Once(_images, idOrName, () => c.Image.FindImageAsync(idOrName, ct));
        private Task<Flavor?> FindFlavorAsync(string idOrName) => Once(_flavors, idOrName, () => c.Compute.FindFlavorAsync(idOrName, ct));

        private static Task<T> Once<T>(Dictionary<string, Task<T>> asked, string key, Func<Task<T>> ask)
        {
            lock (asked) return asked.TryGetValue(key, out var t) ? t : asked[key] = ask();
        }

        public async Task<ClusterObservation> RunAsync()
        {
            var now = p._time.GetUtcNow();
            var fingerprint = InfrastructureFingerprint(spec);
            var known = p._infrastructure.AddOrUpdate(spec.ClusterUuid, _ => new Infrastructure(fingerprint, now + InfrastructureMemory),
                (_, old) => old.Fingerprint == fingerprint && old.Until > now ? old : new Infrastructure(fingerprint, now + InfrastructureMemory));
            UsedMemory = known.ReferencesChecked;

            // 0. What the template refers to must exist (the cloud may have changed since the template was accepted):
            //    the create's own check a moment ago says so, or this pass asks.
            if (!known.ReferencesChecked && p.TakeChecked(spec) is { } found)
            {
                _images[spec.ImageId] = Task.FromResult(found.Image);
                foreach (var (name, flavor) in found.Flavors!) _flavors[name] = Task.FromResult<Flavor?>(flavor);
                known.External = found.External;
                known.ReferencesChecked = true;
                UsedMemory = true;
            }
            if (!known.ReferencesChecked)
            {
                if (await FindImageAsync(spec.ImageId) is null) return Failed($"glance: image {spec.ImageId} not found", Conditions);
                if (spec.ExternalNetworkId is not null)
                {
                    known.External = await FindExternalNetworkAsync(c, spec.ExternalNetworkId, ct);
                    if (known.External is null) return Failed($"neutron: external network {spec.ExternalNetworkId} not found", Conditions);
                }
                known.ReferencesChecked = true;
            }
            var external = known.External;

            // 1. Network, security groups and server groups do not depend on each other: one pass creates them all.
            //    Each part is remembered as soon as it is done, so that a pass cut short (its time is bounded by the
            //    conductor's lease: a loaded cloud answers slowly) leaves less to the next.
            var networkTask = EnsureNetworkAsync(external, known);
            var secGroupsTask = known.SecurityGroups is { } sgs ? Task.FromResult(sgs) : EnsureSecurityGroupsAsync(known);
            var serverGroupsTask = known.ServerGroups is { } sgrs ? Task.FromResult(sgrs) : EnsureServerGroupsAsync(known);
            await Task.WhenAll(networkTask, secGroupsTask, serverGroupsTask);
            var (networkId, subnetId, routerAttached) = networkTask.Result;
            var (masterSg, workerSg) = secGroupsTask.Result;
            var serverGroups = serverGroupsTask.Result;
            Conditions.Add(Ready(ConditionTypes.SecurityGroupsReady));

            // 2. Servers per nodegroup (they need network, security groups and server groups), and their floating IPs.
            //    The router's interface is not needed to create servers: it is attached meanwhile.
            var servers = spec.FirstPass ? [] : await c.Compute.ListServersByTagAsync(Tag, ct);
            var ngObservations = (await Task.WhenAll(spec.NodeGroups.Select(ng => ReconcileNodeGroupAsync(ng, servers, networkId,
                ng.Role == "master" ? masterSg : workerSg, serverGroups.GetValueOrDefault(ng.Name), external, routerAttached)))).ToList();
            await routerAttached;
            Conditions.Insert(0, Ready(ConditionTypes.NetworkReady)); // only once the subnet is on its router too

            var masters = spec.NodeGroups.Where(n => n.Role == "master").Select(n => ngObservations.First(o => o.Name == n.Name)).ToList();
            var workers = spec.NodeGroups.Where(n => n.Role != "master").Select(n => ngObservations.First(o => o.Name == n.Name)).ToList();
            if (spec.FloatingIpEnabled && external is not null && !spec.FirstPass)
                await ReleaseOrphanedFloatingIpsAsync(servers.Select(s => s.Name).Concat(ngObservations.SelectMany(o => o.Nodes).Select(n => n.Name)));

            // 3. The API load balancer, its members (the control plane's addresses) and its floating IP.
            string? apiAddress = null;
            if (spec.MasterLbEnabled)
                apiAddress = await ReconcileLoadBalancerAsync(subnetId, masters, external);
            else
            {
                var first = masters.SelectMany(m => m.Nodes).FirstOrDefault(n => n.Status == "ACTIVE" && n.Address is not null);
                if (first is not null) apiAddress = $"https://{first.Address}:{ApiPort}";
            }

            Conditions.Add(NodesCondition(ConditionTypes.ControlPlaneReady, masters));
            Conditions.Add(NodesCondition(ConditionTypes.WorkersReady, workers));

            var failure = _failure ?? ngObservations.Select(o => o.FailureMessage).FirstOrDefault(m => m is not null);
            if (failure is not null) return new ClusterObservation(ProvisionPhase.Failed, failure, Conditions, apiAddress, ngObservations);
            var allReady = Conditions.All(x => x.Status) && ngObservations.All(o => o.Ready || o.Gone) && apiAddress is not null;
            var waiting = Conditions.FirstOrDefault(x => !x.Status);
            return new ClusterObservation(allReady ? ProvisionPhase.Ready : ProvisionPhase.Progressing,
                allReady ? null : $"{waiting?.Type ?? "Nodes"}: {waiting?.Message ?? string.Join(", ", spec.NodeGroups.Select(n => _waiting.GetValueOrDefault(n.Name)).OfType<string>())}", Conditions, apiAddress, ngObservations)
            {
                RequeueAfter = allReady ? null : PollAfter(),
            };
        }

        /// <summary>
        /// When to look again: soon after servers were asked for (the smallest build in seconds: a second of Magnetar's
        /// poll is then a large part of the create), then less often — a third of their age, between 1 and 3 s, so a
        /// burst of slow builds on a loaded cloud is not polled harder than before (issue #15).
        /// </summary>
        private TimeSpan PollAfter()
        {
            lock (_waiting) return _newestBuild is { } age ? TimeSpan.FromSeconds(Math.Clamp(age.TotalSeconds / 3, 1, 3)) : TimeSpan.FromSeconds(3);
        }

        private static ConditionObservation Ready(string type) => new(type, true, "Ready");

        /// <summary>The network and subnet to put servers on, and the attachment of the subnet to the router (still under way).</summary>
        private async Task<(string NetworkId, string SubnetId, Task RouterAttached)> EnsureNetworkAsync(Network? external, Infrastructure known)
        {
            if (known.Network is { } net)
                return (net.NetworkId, net.SubnetId, external is null || known.RouterAttached ? Task.CompletedTask
                    : AttachAsync(EnsureRouterAsync(external), net.NetworkId, net.SubnetId, false, known));
            if (spec.FixedNetwork is not null)
            {
                var fixedNet = (Guid.TryParse(spec.FixedNetwork, out _) ? await c.Network.GetNetworkAsync(spec.FixedNetwork, ct) : null)
                    ?? (await c.Network.ListNetworksAsync($"name={Uri.EscapeDataString(spec.FixedNetwork)}", ct)).SingleOrDefault()
                    ?? throw new OpenStackApiException("neutron", $"find fixed network {spec.FixedNetwork}", HttpStatusCode.NotFound, "no such network (or the name is ambiguous)", null);
                var subnets = await c.Network.ListSubnetsAsync($"network_id={fixedNet.Id}", ct);
                var fixedSubnet = spec.FixedSubnet is null ? subnets.FirstOrDefault()
                    : subnets.FirstOrDefault(s => s.Id == spec.FixedSubnet || s.Name == spec.FixedSubnet);
                var subnetId = fixedSubnet?.Id ?? throw new OpenStackApiException("neutron", $"find a subnet of network {spec.FixedNetwork}",
                    HttpStatusCode.NotFound, spec.FixedSubnet is null ? "the network has no subnet" : $"no subnet {spec.FixedSubnet} on it", null);
                known.Network = (fixedNet.Id, subnetId);
                return (fixedNet.Id, subnetId, Task.CompletedTask);
            }

            // The router needs only the external network: it is made while the network and subnet are.
            var routerTask = external is null ? null : EnsureRouterAsync(external);

            // (A first pass has nothing to find: see ClusterSpec.FirstPass.)
            var network = spec.FirstPass ? null : (await c.Network.ListNetworksAsync($"description={Uri.EscapeDataString(M("network"))}", ct)).FirstOrDefault();
            if (network is null)
            {
                network = await c.Network.CreateNetworkAsync($"{ResourceName(spec.ClusterName)}-net", M("network"), ct);
                await c.Network.SetTagsAsync("networks", network.Id, [Tag], ct);
            }
            // A network without subnets (made just now, or a crash came between) has none to find.
            var subnet = network.Subnets is { Count: 0 } ? null
                : (await c.Network.ListSubnetsAsync($"description={Uri.EscapeDataString(M("subnet"))}", ct)).FirstOrDefault();
            var fresh = subnet is null;
            if (subnet is null)
            {
                var cidr = spec.Labels.GetValueOrDefault("fixed_subnet_cidr") ?? p._options.DefaultSubnetCidr;
                var dns = spec.DnsNameserver is not null ? [spec.DnsNameserver] : p._options.DnsNameservers;
                subnet = await c.Network.CreateSubnetAsync($"{ResourceName(spec.ClusterName)}-subnet", M("subnet"), network.Id, cidr, dns, ct);
                await c.Network.SetTagsAsync("subnets", subnet.Id, [Tag], ct);
            }
            known.Network = (network.Id, subnet.Id);
            return (network.Id, subnet.Id, routerTask is null ? Task.CompletedTask : AttachAsync(routerTask, network.Id, subnet.Id, fresh, known));
        }

        private async Task<(Router Router, bool Fresh)> EnsureRouterAsync(Network external)
        {
            var router = spec.FirstPass ? null : (await c.Network.ListRoutersAsync($"description={Uri.EscapeDataString(M("router"))}", ct)).FirstOrDefault();
            if (router is not null) return (router, false);
            router = await c.Network.CreateRouterAsync($"{ResourceName(spec.ClusterName)}-router", M("router"), external.Id, ct);
            await c.Network.SetTagsAsync("routers", router.Id, [Tag], ct);
            return (router, true);
        }

        private async Task AttachAsync(Task<(Router Router, bool Fresh)> routerTask, string networkId, string subnetId, bool freshSubnet, Infrastructure known)
        {
            var (router, freshRouter) = await routerTask;
            // A router or subnet made in this pass cannot be attached yet: no need to look.
            var attached = !freshRouter && !freshSubnet && (await c.Network.ListPortsAsync($"device_id={router.Id}&network_id={networkId}", ct))
                .Any(port => port.FixedIps?.Any(ip => ip.SubnetId == subnetId) == true);
            if (!attached) await c.Network.AddRouterInterfaceAsync(router.Id, subnetId, ct);
            known.RouterAttached = true;
        }

        private async Task<(SecurityGroup Master, SecurityGroup Worker)> EnsureSecurityGroupsAsync(Infrastructure known)
        {
            // Both groups in one list (Neutron takes a repeated filter as "any of"), found by the marker written at creation.
            var existing = spec.FirstPass ? [] : await c.Network.ListSecurityGroupsAsync(
                $"description={Uri.EscapeDataString(M("secgroup-master"))}&description={Uri.EscapeDataString(M("secgroup-worker"))}", ct);
            string[] roles = ["secgroup-master", "secgroup-worker"];
            var missing = roles.Where(role => existing.All(g => g.Description != M(role))).ToList();
            if (missing.Count > 0)
            {
                // Both in one request when both are missing (Neutron's bulk create), then tagged.
                var made = await c.Network.CreateSecurityGroupsAsync(missing.Select(role => ($"{ResourceName(spec.ClusterName)}-{role}", M(role))).ToList(), ct);
                await Task.WhenAll(made.Select(g => c.Network.SetTagsAsync("security-groups", g.Id, [Tag], ct)));
                existing.AddRange(made);
            }
            var (master, worker) = (existing.First(g => g.Description == M(roles[0])), existing.First(g => g.Description == M(roles[1])));
            var apiCidrs = (spec.Labels.GetValueOrDefault("master_lb_allowed_cidrs") ?? "0.0.0.0/0")
                .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            // Node to node: everything between the cluster's own groups (covers Calico BGP/IPIP/VXLAN, Cilium VXLAN
            // and health checks, kubelet, etcd peers) — nothing else reaches the nodes except what follows.
            var common = new List<RuleSpec> { new(null, null, null, null, master.Id), new(null, null, null, null, worker.Id) };
            if (spec.Keypair is not null) common.Add(new RuleSpec("tcp", 22, 22, "0.0.0.0/0", null));
            var masterRules = common.Concat(apiCidrs.Select(cidr => new RuleSpec("tcp", ApiPort, ApiPort, cidr, null))).ToList();
            var workerRules = common.Concat([new RuleSpec("tcp", 30000, 32767, "0.0.0.0/0", null), new RuleSpec("udp", 30000, 32767, "0.0.0.0/0", null)]).ToList();
            // The missing rules of each group in one request.
            await Task.WhenAll(c.Network.CreateSecurityGroupRulesAsync(master.Id, MissingRules(master, masterRules), ct),
                c.Network.CreateSecurityGroupRulesAsync(worker.Id, MissingRules(worker, workerRules), ct));
            known.SecurityGroups = (master, worker);
            return (master, worker);
        }

        private static List<RuleSpec> MissingRules(SecurityGroup group, IEnumerable<RuleSpec> rules)
            => rules.Where(rule => group.SecurityGroupRules?.Any(rule.Matches) != true).ToList();

        private async Task<IReadOnlyDictionary<string, ServerGroup>> EnsureServerGroupsAsync(Infrastructure known)
        {
            var existing = spec.FirstPass ? [] : await c.Compute.ListServerGroupsAsync(ct);
            var result = new Dictionary<string, ServerGroup>();
            foreach (var ng in spec.NodeGroups.Where(n => !n.Deleting))
            {
                var name = ServerGroupName(spec.ClusterUuid, ng.Name);
                var group = existing.FirstOrDefault(g => g.Name == name);
                if (group is null)
                {
                    // Control planes spread for real (a host failure must not take the quorum); workers prefer to spread
                    // but may share hosts so that scaling never stops at the host count. Labels override both.
                    var policy = spec.Labels.GetValueOrDefault(ng.Role == "master" ? "master_server_group_policy" : "worker_server_group_policy")
                                 ?? (ng.Role == "master" ? "anti-affinity" : "soft-anti-affinity");
                    group = await c.Compute.CreateServerGroupAsync(name, policy, ct);
                }
                result[ng.Name] = group;
            }
            known.ServerGroups = result;
            return result;
        }

        private async Task<NodeGroupObservation> ReconcileNodeGroupAsync(NodeGroupSpec ng, List<Server> allServers, string networkId,
            SecurityGroup securityGroup, ServerGroup? serverGroup, Network? external, Task routerAttached)
        {
            var servers = allServers.Where(s => s.Metadata?.GetValueOrDefault("magnetar_nodegroup") == ng.Name && s.Status != "DELETED")
                .OrderBy(s => ServerIndex(s.Name)).ToList();
            var desired = ng.Deleting ? 0 : ng.NodeCount;

            // Replaced nodes (upgrade, healing) whatever the count; then scale down: the nodes the tenant named, then the newest.
            var leaving = servers.Where(s => s.TaskState == "deleting").ToList();
            servers = servers.Except(leaving).ToList();
            foreach (var v in ng.ServersToDelete(servers, s => s.Name, s => s.Id))
            {
                await c.Compute.DeleteServerAsync(v.Id, ct);
                await DeleteServerFloatingIpAsync(v.Name);
                servers.Remove(v);
                leaving.Add(v);
            }

            // Scale up: the lowest free indexes.
            if (serverGroup is not null && servers.Count < desired)
            {
                var flavor = await FindFlavorAsync(ng.FlavorId);
                if (flavor is null)
                    return new NodeGroupObservation(ng.Name, [], false, false, $"nova: flavor {ng.FlavorId} of nodegroup {ng.Name} not found");
                var image = ng.ImageId == spec.ImageId ? null : await FindImageAsync(ng.ImageId);
                var imageId = image?.Id ?? (await FindImageAsync(spec.ImageId))?.Id
                    ?? throw new OpenStackApiException("glance", $"find image {spec.ImageId}", HttpStatusCode.NotFound, "no such image", null);
                var used = servers.Concat(leaving).Select(s => ServerIndex(s.Name)).ToHashSet();
                var requested = new List<Task<Server>>();
                for (var i = 0; servers.Count + requested.Count < desired; i++)
                {
                    if (used.Contains(i)) continue;
                    var name = $"{ResourceName(spec.ClusterName)}-{ng.Name}-{i}";
                    string userData;
                    await _rendering.WaitAsync(ct);
                    try { userData = await ng.UserData(name, ct); }
                    finally { _rendering.Release(); }
                    requested.Add(CreateServerAsync(name, userData));
                }
                servers.AddRange(await Task.WhenAll(requested));

                async Task<Server> CreateServerAsync(string name, string userData)
                {
                    var metadata = new Dictionary<string, string>
                    {
                        ["magnetar_cluster"] = spec.ClusterUuid, ["magnetar_nodegroup"] = ng.Name, ["magnetar_role"] = ng.Role,
                    };
                    var created = await c.Compute.CreateServerAsync(name, imageId, flavor.Id, networkId, [securityGroup.Id],
                        spec.Keypair, Convert.ToBase64String(Encoding.UTF8.GetBytes(userData)), serverGroup.Id, metadata, [Tag],
                        BlockDevices(imageId), ct);
                    p._logger.LogInformation("Cluster {Uuid}: server {Name} ({Id}) requested for nodegroup {NodeGroup}", spec.ClusterUuid, name, created.Id, ng.Name);
                    return created;
                }
            }

            // Floating IPs for nodes when the cluster asks for them (Magnum's floating_ip_enabled): only once the subnet is
            // on its router (Neutron refuses a floating IP for a port its external network cannot reach).
            var floating = new Dictionary<string, string>();
            if (spec.FloatingIpEnabled && external is not null)
                foreach (var s in servers.Where(s => s.Status == "ACTIVE" && s.FixedAddress is not null))
                {
                    await routerAttached;
                    floating[s.Id] = await EnsureServerFloatingIpAsync(s, external);
                }

            var now = p._time.GetUtcNow();
            foreach (var age in servers.Where(s => s.Status == "BUILD").Select(s => now - (s.Created ?? now)))
                lock (_waiting) if (_newestBuild is not { } newest || age < newest) _newestBuild = age;
            var errored = servers.FirstOrDefault(s => s.Status == "ERROR" && !ng.Retiring.Contains(s.Name));
            // Nova's list leaves out the fault of servers that never left the scheduler (cell0): ask for the server itself.
            if (errored is { Fault: null } && await c.Compute.FindServerAsync(errored.Id, ct) is { Fault: not null } detailed) errored = detailed;
            var failure = errored is null ? null
                : $"nova: server {errored.Name} (id {errored.Id}, nodegroup {ng.Name}) went to ERROR: {errored.Fault?.Message ?? "no fault recorded"}";
            foreach (var s in servers.Where(s => s.FixedAddress is not null)) _fixedAddresses[s.Name] = s.FixedAddress!;
            var nodes = servers.Select(s => new NodeObservation(s.Name, s.Id, floating.GetValueOrDefault(s.Id) ?? s.FixedAddress, s.Status,
                s.AllAddresses.Concat(floating.TryGetValue(s.Id, out var f) ? [f] : Array.Empty<string>()).Distinct().ToList())).ToList();
            // A nodegroup being deleted is never "ready": only "gone" ends it (else the pass that deletes its server
            // group would report the cluster complete and the nodegroup would never be observed gone).
            var ready = !ng.Deleting && servers.Count == desired && servers.All(s => s.Status == "ACTIVE" && s.FixedAddress is not null) && leaving.Count == 0;
            if (ng.Deleting) _deletingGroups[ng.Name] = true;
            else if (!ready)
            {
                var pending = servers.Where(s => s.Status != "ACTIVE").Select(s => $"{s.Name} {s.Status}").ToList();
                _waiting[ng.Name] = ($"nodegroup {ng.Name}: {servers.Count(s => s.Status == "ACTIVE")}/{desired} servers ACTIVE"
                    + (pending.Count > 0 ? $" ({string.Join(", ", pending.Take(3))}{(pending.Count > 3 ? $" and {pending.Count - 3} more" : "")})" : "")
                    + (leaving.Count > 0 ? $", {leaving.Count} leaving" : ""));
            }
            var gone = ng.Deleting && servers.Count == 0 && leaving.Count == 0;
            if (gone && serverGroup is null)
            {
                var group = (await c.Compute.ListServerGroupsAsync(ct)).FirstOrDefault(g => g.Name == ServerGroupName(spec.ClusterUuid, ng.Name));
                if (group is not null) { await c.Compute.DeleteServerGroupAsync(group.Id, ct); gone = false; }
            }
            return new NodeGroupObservation(ng.Name, nodes, ready, gone, failure);
        }

        /// <summary>Boot from a volume (<c>boot_volume_size</c> label) and a container volume (<c>docker_volume_size</c>), both deleted with the server.</summary>
        private List<BlockDevice> BlockDevices(string imageId)
        {
            var devices = new List<BlockDevice>();
            if (int.TryParse(spec.Labels.GetValueOrDefault("boot_volume_size"), out var boot) && boot > 0)
                devices.Add(new BlockDevice("image", "volume", 0, boot, imageId, true));
            if (spec.DockerVolumeSize is > 0)
            {
                if (devices.Count == 0) devices.Add(new BlockDevice("image", "local", 0, null, imageId, true));
                devices.Add(new BlockDevice("blank", "volume", -1, spec.DockerVolumeSize, null, true));
            }
            return devices;
        }

        private async Task<string> EnsureServerFloatingIpAsync(Server server, Network external)
        {
            var marker = M($"fip-{server.Name}");
            var fip = (await c.Network.ListFloatingIpsAsync($"description={Uri.EscapeDataString(marker)}", ct)).FirstOrDefault();
            if (fip is not null && fip.PortId is not null && fip.FixedIpAddress == server.FixedAddress) return fip.FloatingIpAddress;
            var port = (await c.Network.ListPortsAsync($"device_id={server.Id}", ct)).FirstOrDefault()
                ?? throw new OpenStackApiException("neutron", $"find the port of server {server.Name}", HttpStatusCode.NotFound, "the server has no port", null);
            if (fip is null)
            {
                fip = await c.Network.CreateFloatingIpAsync(external.Id, port.Id, marker, ct);
                await c.Network.SetTagsAsync("floatingips", fip.Id, [Tag], ct);
            }
            else if (fip.PortId != port.Id)
            {
                // The node's name is used by a new server (healing made it again; Neutron detached the IP when the old
                // server went): the node keeps its address.
                fip = await c.Network.AssociateFloatingIpAsync(fip.Id, port.Id, ct);
            }
            return fip.FloatingIpAddress;
        }

        /// <summary>
        /// Floating IPs of nodes whose servers are gone and whose names no server uses (a server deleted out of band,
        /// replaced under another name): released, so that nothing the cluster made lingers until its deletion.
        /// </summary>
        private async Task ReleaseOrphanedFloatingIpsAsync(IEnumerable<string> serverNames)
        {
            var names = serverNames.Select(n => M($"fip-{n}")).ToHashSet();
            foreach (var fip in await c.Network.ListFloatingIpsAsync($"tags={Uri.EscapeDataString(Tag)}", ct))
                if (fip.Description is { } d && d.StartsWith(M("fip-"), StringComparison.Ordinal) && d != M("fip-api") && fip.PortId is null && !names.Contains(d))
                    await c.Network.DeleteFloatingIpAsync(fip.Id, ct);
        }

        private async Task DeleteServerFloatingIpAsync(string serverName)
        {
            foreach (var fip in await c.Network.ListFloatingIpsAsync($"description={Uri.EscapeDataString(M($"fip-{serverName}"))}", ct))
                await c.Network.DeleteFloatingIpAsync(fip.Id, ct);
        }

        private async Task<string?> ReconcileLoadBalancerAsync(string subnetId, List<NodeGroupObservation> masters, Network? external)
        {
            var name = LoadBalancerName(spec.ClusterUuid);
            var lb = spec.FirstPass ? null : (await c.LoadBalancer.ListLoadBalancersAsync($"name={Uri.EscapeDataString(name)}", ct)).FirstOrDefault();
            if (lb is null)
            {
                lb = await c.LoadBalancer.CreateLoadBalancerAsync(name, M("api-lb"), subnetId, [Tag], ct);
                p._logger.LogInformation("Cluster {Uuid}: load balancer {Id} requested", spec.ClusterUuid, lb.Id);
            }
            switch (lb.ProvisioningStatus)
            {
                case "ERROR":
                    _failure = $"octavia: load balancer {lb.Name} (id {lb.Id}) went to ERROR (operating status {lb.OperatingStatus})";
                    Conditions.Add(new ConditionObservation(ConditionTypes.LoadBalancerReady, false, "Failed", _failure));
                    return null;
                case not "ACTIVE":
                    Conditions.Add(new ConditionObservation(ConditionTypes.LoadBalancerReady, false, "Waiting",
                        $"waiting for load balancer {lb.Name} ({lb.ProvisioningStatus})"));
                    return null;
            }

            // Listener, pool and health monitor: one per pass, each while the load balancer is ACTIVE.
            string? step = null;
            var listenerId = lb.Listeners?.FirstOrDefault()?.Id;
            var poolId = lb.Pools?.FirstOrDefault()?.Id;
            if (listenerId is null) { await c.LoadBalancer.CreateTcpListenerAsync(lb.Id, $"{name}-{ApiPort}", ApiPort, ct); step = "creating its listener"; }
            else if (poolId is null) { await c.LoadBalancer.CreateTcpPoolAsync(listenerId, $"{name}-{ApiPort}", ct); step = "creating its pool"; }
            else if ((await c.LoadBalancer.GetPoolAsync(poolId, ct))?.HealthmonitorId is null)
            {
                await c.LoadBalancer.CreateTcpHealthMonitorAsync(poolId, $"{name}-{ApiPort}", ct);
                step = "creating its health monitor";
            }
            if (step is not null)
            {
                Conditions.Add(new ConditionObservation(ConditionTypes.LoadBalancerReady, false, "Waiting", $"load balancer {lb.Name}: {step}"));
                return null;
            }

            // Members: exactly the control plane's fixed addresses, one single-member change per pass (each puts the load
            // balancer in PENDING_UPDATE until Octavia has applied it).
            var wanted = masters.SelectMany(m => m.Nodes).Where(n => n.Status == "ACTIVE")
                .Select(n => (Name: n.Name, Address: FixedAddressOf(n))).Where(x => x.Address is not null).ToList();
            var current = await c.LoadBalancer.ListMembersAsync(poolId!, ct);
            var extra = current.FirstOrDefault(m => wanted.All(w => w.Address != m.Address));
            var missing = wanted.FirstOrDefault(w => current.All(m => m.Address != w.Address));
            var membersReady = extra is null && missing.Address is null;
            if (extra is not null) await c.LoadBalancer.RemoveMemberAsync(poolId!, extra.Id, ct);
            else if (missing.Address is not null) await c.LoadBalancer.AddMemberAsync(poolId!, missing.Name, missing.Address, ApiPort, subnetId, ct);

            var address = lb.VipAddress;
            if (spec.FloatingIpEnabled && external is not null && LabelValues.Bool(spec.Labels, "master_lb_floating_ip_enabled", true))
            {
                var fip = (await c.Network.ListFloatingIpsAsync($"description={Uri.EscapeDataString(M("fip-api"))}", ct)).FirstOrDefault();
                if (fip is null)
                {
                    fip = await c.Network.CreateFloatingIpAsync(external.Id, lb.VipPortId, M("fip-api"), ct);
                    await c.Network.SetTagsAsync("floatingips", fip.Id, [Tag], ct);
                }
                address = fip.FloatingIpAddress;
            }
            Conditions.Add(membersReady
                ? Ready(ConditionTypes.LoadBalancerReady)
                : new ConditionObservation(ConditionTypes.LoadBalancerReady, false, "Waiting", $"updating the members of {lb.Name}"));
            return $"https://{address}:{ApiPort}";

            // A node's address is its floating IP when it has one; the pool needs the fixed one.
            string? FixedAddressOf(NodeObservation n) => _fixedAddresses.GetValueOrDefault(n.Name);
        }

        private ConditionObservation NodesCondition(string type, List<NodeGroupObservation> groups)
        {
            if (groups.Count == 0) return Ready(type);
            var failed = groups.FirstOrDefault(g => g.FailureMessage is not null);
            if (failed is not null) return new ConditionObservation(type, false, "Failed", failed.FailureMessage);
            var notReady = groups.Where(g => !g.Ready && !g.Gone).ToList();
            if (notReady.Count == 0) return Ready(type);
            var pending = notReady.SelectMany(g => g.Nodes.Where(n => n.Status != "ACTIVE").Select(n => $"server {n.Name} {n.Status}")).ToList();
            return new ConditionObservation(type, false, "Waiting", pending.Count > 0
                ? "waiting for " + string.Join(", ", pending)
                : "waiting for " + string.Join(", ", notReady.Select(g => _deletingGroups.ContainsKey(g.Name) ? $"nodegroup {g.Name} to be deleted" : $"nodes of {g.Name}")));
        }
    }

    // ------------------------------------------------------------------------------------------------ observe

    public async Task<IReadOnlyDictionary<string, IReadOnlyList<ServerState>>> ObserveServersAsync(IReadOnlyList<ClusterRef> clusters, CancellationToken ct)
    {
        var result = new ConcurrentDictionary<string, IReadOnlyList<ServerState>>();
        await Parallel.ForEachAsync(clusters.Where(c => c.Credential is not null), new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = ct }, async (cluster, token) =>
        {
            try
            {
                var servers = await ClusterClients(cluster.Credential!).Compute.ListServersByTagAsync(Tag(cluster.Uuid), token);
                result[cluster.Uuid] = servers.Where(s => s.Status != "DELETED" && s.TaskState != "deleting")
                    .Select(s => new ServerState(s.Name, s.Metadata?.GetValueOrDefault("magnetar_nodegroup"), s.Status)).ToList();
            }
            catch (Exception e) when (e is OpenStackApiException or OpenStackUnavailableException or HttpRequestException)
            {
                _logger.LogWarning("Cluster {Uuid}: its servers could not be listed for the health check: {Error}", cluster.Uuid, e.Message);
            }
        });
        return result;
    }

    // ------------------------------------------------------------------------------------------------ delete

    public async Task<DeletionObservation> DeleteAsync(ClusterRef cluster, CancellationToken ct)
    {
        // No credential stored: the create stopped before or while Keystone made it, so nothing else can exist in the
        // project in the cluster's name — but the credential itself may: revoke any of that name.
        if (cluster.Credential is null)
        {
            if (cluster.UserId is null) return new DeletionObservation(ProvisionPhase.Ready, null, []);
            var identity = ServiceClients().Identity;
            foreach (var orphan in await identity.ListApplicationCredentialsAsync(cluster.UserId, ApplicationCredentialName(cluster.Uuid), ct))
            {
                await identity.DeleteApplicationCredentialAsync(cluster.UserId, orphan.Id, ct);
                _logger.LogWarning("Cluster {Uuid}: application credential {Id} revoked; it was made but never recorded (the API stopped in between)", cluster.Uuid, orphan.Id);
            }
            return new DeletionObservation(ProvisionPhase.Ready, null, []);
        }
        Forget(cluster.Uuid);
        var c = ClusterClients(cluster.Credential);
        try
        {
            var remaining = await DeleteResourcesAsync(c, cluster, ct);
            if (remaining.Count > 0)
                return new DeletionObservation(ProvisionPhase.Progressing,
                    "deleting " + string.Join(", ", remaining.Take(5)) + (remaining.Count > 5 ? $" and {remaining.Count - 5} more" : ""), remaining)
                { RequeueAfter = TimeSpan.FromSeconds(2) };

            if (options.CsiVolumesOnDelete == CsiVolumePolicy.Retain && await CsiVolumesAsync(c, cluster.Uuid, ct) is { Count: > 0 } kept)
                _logger.LogWarning("Cluster {Uuid}: kept {Count} Cinder volume(s) of its CSI driver (policy Retain): {Volumes}",
                    cluster.Uuid, kept.Count, string.Join(", ", kept.Select(v => $"{v.Name} ({v.Id})")));

            // Last: the credential itself (a restricted application credential cannot delete itself: the service user does).
            await ServiceClients().Identity.DeleteApplicationCredentialAsync(cluster.Credential.UserId, cluster.Credential.Id, ct);
            _clients.TryRemove("appcred:" + cluster.Credential.Id, out _);
            _logger.LogInformation("Cluster {Uuid}: application credential {Id} revoked", cluster.Uuid, cluster.Credential.Id);
            return new DeletionObservation(ProvisionPhase.Ready, null, []);
        }
        catch (OpenStackApiException e) when (e.StatusCode == HttpStatusCode.Unauthorized && e.Service == "keystone")
        {
            // The application credential is gone (revoked by hand, or its user deleted): nothing can be listed with it.
            return new DeletionObservation(ProvisionPhase.Failed,
                $"the cluster's application credential {cluster.Credential.Id} no longer authenticates ({e.Message}); its resources (tag {Tag(cluster.Uuid)}) must be removed by an administrator", []);
        }
        catch (Exception e) when (e is OpenStackServerException or OpenStackUnavailableException or OpenStackConflictException)
        {
            _logger.LogWarning("Cluster {Uuid} delete: {Error} (will retry)", cluster.Uuid, e.Message);
            return new DeletionObservation(ProvisionPhase.Progressing, $"retrying after a cloud error: {e.Message}", [])
            { RequeueAfter = TimeSpan.FromSeconds(5) };
        }
        catch (OpenStackApiException e)
        {
            return new DeletionObservation(ProvisionPhase.Failed, e.Message, []);
        }
    }

    /// <summary>
    /// One pass of deletion in tiers (servers, load balancers and floating IPs; then router, leftover ports, server
    /// groups and security groups; then subnets and the network). Returns what still exists; empty means all gone.
    /// </summary>
    private async Task<List<string>> DeleteResourcesAsync(OpenStackClients c, ClusterRef cluster, CancellationToken ct)
    {
        var tag = Tag(cluster.Uuid);
        var prefix = MarkerPrefix(cluster.Uuid);
        bool Ours(string? description, IEnumerable<string>? tags) => description?.StartsWith(prefix, StringComparison.Ordinal) == true || tags?.Contains(tag) == true;

        // Tier 1: servers, load balancers (ours, and those the cluster's cloud-controller-manager made for Services), floating IPs.
        var remaining = new List<string>();
        foreach (var s in await c.Compute.ListServersByTagAsync(tag, ct))
        {
            if (s.TaskState != "deleting") await c.Compute.DeleteServerAsync(s.Id, ct);
            remaining.Add($"server {s.Name} ({s.Id}, {s.Status})");
        }
        var ccmPrefix = $"kube_service_{CloudControllerClusterName(cluster.Uuid)}_";
        foreach (var lb in await c.LoadBalancer.ListLoadBalancersAsync("", ct))
        {
            if (!(lb.Name == LoadBalancerName(cluster.Uuid) || lb.Name.StartsWith(ccmPrefix, StringComparison.Ordinal) || lb.Tags?.Contains(tag) == true)) continue;
            // PENDING_* is transitional (including our own earlier delete): wait for it rather than fail.
            if (!lb.ProvisioningStatus.StartsWith("PENDING_", StringComparison.Ordinal)) await c.LoadBalancer.DeleteLoadBalancerAsync(lb.Id, ct);
            remaining.Add($"load balancer {lb.Name} ({lb.Id}, {lb.ProvisioningStatus})");
        }
        foreach (var fip in (await c.Network.ListFloatingIpsAsync("", ct)).Where(f => Ours(f.Description, f.Tags)))
        {
            await c.Network.DeleteFloatingIpAsync(fip.Id, ct);
        }
        if (remaining.Count > 0) return remaining;

        // Volumes the cluster's CSI driver made, now detached: deleted or kept, as configured.
        if (options.CsiVolumesOnDelete == CsiVolumePolicy.Delete)
            foreach (var v in await CsiVolumesAsync(c, cluster.Uuid, ct))
            {
                if (v.Status is "available" or "error" or "error_restoring" or "error_extending") await c.BlockStorage.DeleteVolumeAsync(v.Id, ct);
                remaining.Add($"volume {v.Name} ({v.Id}, {v.Status})");
            }
        if (remaining.Count > 0) return remaining;

        // Tier 2: router (interfaces first), ports left on the cluster's network, server groups, security groups.
        var networks = (await c.Network.ListNetworksAsync("", ct)).Where(n => Ours(n.Description, n.Tags)).ToList();
        var subnets = (await c.Network.ListSubnetsAsync("", ct)).Where(s => Ours(s.Description, s.Tags)).ToList();
        foreach (var router in (await c.Network.ListRoutersAsync("", ct)).Where(r => Ours(r.Description, r.Tags)))
        {
            foreach (var subnet in subnets) await c.Network.RemoveRouterInterfaceAsync(router.Id, subnet.Id, ct);
            await c.Network.DeleteRouterAsync(router.Id, ct);
        }
        foreach (var network in networks)
            foreach (var port in await c.Network.ListPortsAsync($"network_id={network.Id}", ct))
                if (port.DeviceOwner is not ("network:dhcp" or "network:router_interface" or "network:distributed"))
                    await c.Network.DeletePortAsync(port.Id, ct);
        var groupPrefix = $"magnetar-{cluster.Uuid}-";
        foreach (var group in (await c.Compute.ListServerGroupsAsync(ct)).Where(g => g.Name.StartsWith(groupPrefix, StringComparison.Ordinal)))
            await c.Compute.DeleteServerGroupAsync(group.Id, ct);
        foreach (var sg in (await c.Network.ListSecurityGroupsAsync("", ct)).Where(g => Ours(g.Description, g.Tags)))
        {
            try { await c.Network.DeleteSecurityGroupAsync(sg.Id, ct); }
            catch (OpenStackConflictException e)
            {
                var users = await c.Network.ListPortsAsync($"security_groups={sg.Id}", ct);
                remaining.Add($"security group {sg.Name} ({sg.Id}) in use by port(s) {string.Join(", ", users.Select(u => $"{u.Id} ({u.DeviceOwner})"))}: {e.ServiceMessage}");
            }
        }
        if (remaining.Count > 0) return remaining;

        // Tier 3: subnets, then the network.
        foreach (var subnet in subnets)
        {
            try { await c.Network.DeleteSubnetAsync(subnet.Id, ct); }
            catch (OpenStackConflictException e) { remaining.Add($"subnet {subnet.Name} ({subnet.Id}): {e.ServiceMessage}"); }
        }
        foreach (var network in networks)
        {
            try { await c.Network.DeleteNetworkAsync(network.Id, ct); }
            catch (OpenStackConflictException e) { remaining.Add($"network {network.Name} ({network.Id}): {e.ServiceMessage}"); }
        }
        return remaining;
    }

    /// <summary>Volumes whose CSI cluster metadata names this cluster; none when the cloud has no block-storage service.</summary>
    private static async Task<List<Volume>> CsiVolumesAsync(OpenStackClients c, string clusterUuid, CancellationToken ct)
    {
        List<Volume> all;
        try { all = await c.BlockStorage.ListVolumesAsync(ct); }
        catch (OpenStackApiException e) when (e.Service == "keystone" && e.StatusCode == HttpStatusCode.NotFound) { return []; }
        var name = CloudControllerClusterName(clusterUuid);
        return all.Where(v => v.Metadata?.GetValueOrDefault(BlockStorageClient.CsiClusterKey) == name).ToList();
    }

    // ------------------------------------------------------------------------------------------------ names

    /// <summary>The Keystone application credential of a cluster: one per cluster, found again by this name.</summary>
    public static string ApplicationCredentialName(string clusterUuid) => $"magnetar-{clusterUuid}";

    public static string LoadBalancerName(string clusterUuid) => $"magnetar-{clusterUuid}-api";
    public static string ServerGroupName(string clusterUuid, string nodeGroup) => $"magnetar-{clusterUuid}-{nodeGroup}";

    /// <summary>
    /// The cluster name the cluster's openstack-cloud-controller-manager and cinder-csi-plugin run with (<c>--cluster-name</c>,
    /// <c>--cluster</c>): its load balancers are named after it and its volumes carry it in their metadata.
    /// </summary>
    public static string CloudControllerClusterName(string clusterUuid) => $"magnetar-{clusterUuid}";

    /// <summary>A cluster name made fit for host names: lower case letters, digits and dashes, at most 40 characters.</summary>
    public static string ResourceName(string clusterName)
    {
        var s = NotHostChars().Replace(clusterName.ToLowerInvariant(), "-").Trim('-');
        if (s.Length > 40) s = s[..40].TrimEnd('-');
        return s.Length == 0 ? "cluster" : s;
    }

    private static int ServerIndex(string name)
    {
        var dash = name.LastIndexOf('-');
        return dash >= 0 && int.TryParse(name.AsSpan(dash + 1), out var i) ? i : int.MaxValue;
    }

    [GeneratedRegex("[^a-z0-9-]+")]
    private static partial Regex NotHostChars();
}

/// <summary>Label helpers the driver needs (Magnum's labels are strings).</summary>
internal static class LabelValues
{
    public static bool Bool(IReadOnlyDictionary<string, string> labels, string key, bool fallback)
        => labels.TryGetValue(key, out var v) && bool.TryParse(v, out var b) ? b : fallback;
}
