using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using Magnetar.Bootstrap;
using Magnetar.Bootstrap.Addons;
using Magnetar.Bootstrap.Kubeadm;
using Magnetar.Bootstrap.Pki;
using Magnetar.Bootstrap.Secrets;
using Magnetar.Cloud;
using Magnetar.Domain;
using Magnetar.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace Magnetar.Conductor;

/// <summary>An answer of the bootstrap endpoint: a status, and a tar.gz bundle or a message.</summary>
public sealed record BootstrapResponse(int StatusCode, string? Message = null, byte[]? Bundle = null)
{
    public static BootstrapResponse Refused(string message) => new(401, message);
}

/// <summary>How the nodes of a cluster stand, for one reconcile pass.</summary>
public sealed record NodeVerdict(string? Failure, IReadOnlySet<string> WaitingNodes, ConditionObservation Condition)
{
    /// <summary>AddonsReady: the first control-plane node reported its addons applied (null before any report).</summary>
    public ConditionObservation? Addons { get; init; }
}

/// <summary>
/// The server side of node bootstrap. When a server is about to be created its user-data is rendered with a fresh
/// single-use fetch credential (only a hash is stored); the booted node trades it over TLS for its bundle — a tar.gz
/// with the cluster CA (and, on control-plane nodes, the CA keys kubeadm needs), its kubeadm configuration, the
/// addons (first control-plane node) and a report credential; then it posts each phase. Reports become events, a
/// precise status_reason on failure, and (readiness mode "reports") the condition that completes the cluster.
/// </summary>
public sealed partial class NodeBootstrapper(
    IDbContextFactory<MagnetarDbContext> dbFactory,
    IClusterCertificates certificates,
    ISecretProtector secrets,
    IUserDataRenderer renderer,
    BootstrapOptions options,
    ConductorOptions conductorOptions,
    HealthOptions healthOptions,
    ReconcileSignal signal,
    TimeProvider time,
    ILogger<NodeBootstrapper> logger,
    IAutoscalerCredentials? autoscaler = null)
{
    public const string TokenPrefix = "mgb1";
    /// <summary>The <see cref="NodeBootstrapState.ServerStatus"/> of a node whose server the cloud no longer shows.</summary>
    public const string Gone = "DELETED";
    public const int MaxLogTail = 8192;
    /// <summary>What a node may report: its bootstrap phases, the CA rotation steps, the renewals of its agent.</summary>
    private static readonly string[] ReportablePhases = [.. NodePhases.All, .. CaRotationSteps.All.Select(CaRotationSteps.Phase), .. NodePhases.Renewals, NodePhases.EtcdMemberRemoved];
    private readonly Lazy<string?> _caPem = new(() => string.IsNullOrEmpty(options.CaFile) ? null : File.ReadAllText(options.CaFile));

    /// <summary>The URL nodes use; set at startup from configuration or the listen address.</summary>
    public string BootstrapUrl => options.Url ?? throw new InvalidOperationException("Magnetar:Bootstrap:Url is not set");

    /// <summary>
    /// The user-data of a server about to be created: decides the node's kubeadm role, (re)sets its bootstrap state,
    /// revokes credentials of an earlier server of the same name and mints a new single-use fetch credential.
    /// </summary>
    public async Task<string> RenderUserDataAsync(Cluster cluster, NodeGroup nodeGroup, string nodeName, string kubernetesVersion, string revision, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var now = time.GetUtcNow();
        var states = await db.NodeStates.Where(s => s.ClusterUuid == cluster.Uuid).ToListAsync(ct);
        var state = states.FirstOrDefault(s => s.NodeName == nodeName);
        if (state is { Role: NodeRoles.Init } && (state.Phase != NodePhases.Pending || state.LastReportAt is not null
                || await db.NodeCredentials.AnyAsync(c => c.ClusterUuid == cluster.Uuid && c.NodeName == nodeName && c.Kind == NodeCredentialKinds.Fetch && c.UsedAt != null, ct)))
        {
            // The name of a first control-plane node that did bootstrap, now reused by a new server (it was replaced):
            // its record stays, renamed, as the mark that this cluster was initialised — the new server joins.
            InitMarker.Keep(state, now);
            state = null;
        }
        var role = nodeGroup.Role != NodeGroupRoles.Master ? NodeRoles.Worker
            : states.Any(s => s.Role == NodeRoles.Init && s.NodeName != nodeName) ? NodeRoles.ControlPlane : NodeRoles.Init;
        if (state is null)
        {
            state = new NodeBootstrapState { ClusterUuid = cluster.Uuid, NodeName = nodeName };
            db.NodeStates.Add(state);
        }
        state.NodeGroup = nodeGroup.Name;
        state.Role = role;
        state.Phase = NodePhases.Pending;
        state.Failed = false;
        state.ExitCode = null;
        state.LogTail = null;
        state.CreatedAt = now;
        state.LastReportAt = null;
        state.Addresses = null;
        state.ServingCertificateExpiresAt = null;
        state.ControlPlaneCertificatesExpireAt = null;
        state.RotationStep = null;
        state.RotationFailure = null;
        state.KubernetesVersion = kubernetesVersion;
        state.Revision = revision;
        state.KubeletVersion = null;
        state.LastSeenAt = null;
        state.RetireStep = null;
        state.RetireStepAt = null;
        state.RetireReason = null;
        state.UnhealthySince = null;
        state.UnhealthyReason = null;
        await db.NodeCredentials.Where(c => c.ClusterUuid == cluster.Uuid && c.NodeName == nodeName).ExecuteDeleteAsync(ct);
        var token = NewCredential(db, cluster.Uuid, nodeName, NodeCredentialKinds.Fetch, now + TimeSpan.FromMinutes(options.FetchCredentialMinutes));
        await db.SaveChangesAsync(ct);

        var packages = cluster.Labels.GetValueOrDefault("kube_package_source") ?? options.PackageSource;
        return renderer.Render(new NodeBootstrapContext(cluster.Uuid, cluster.Name, nodeGroup.Name, nodeName,
            KubeadmRoleOf(role), kubernetesVersion, BootstrapUrl, token, _caPem.Value, packages));
    }

    /// <summary>
    /// Loads the cluster's node records (tracked: the caller saves) and records on them the addresses the cloud gave
    /// each node's server — its kubelet serving certificate carries them. The records are what <see cref="EvaluateAsync"/> reads.
    /// </summary>
    public async Task<Dictionary<string, NodeBootstrapState>> RecordAddressesAsync(MagnetarDbContext db, Cluster cluster, ClusterObservation obs, CancellationToken ct)
    {
        var states = await db.NodeStates.Where(s => s.ClusterUuid == cluster.Uuid).ToDictionaryAsync(s => s.NodeName, ct); // unique per cluster
        foreach (var node in obs.NodeGroups.SelectMany(g => g.Nodes))
        {
            if (!states.TryGetValue(node.Name, out var state)) continue;
            if (node.Addresses is { Count: > 0 }) state.Addresses = string.Join(",", node.Addresses);
            if (!string.IsNullOrEmpty(node.Id) && state.ServerId != node.Id) state.ServerId = node.Id;
            if (state.ServerStatus != node.Status) state.ServerStatus = node.Status;
        }
        // A server the cloud had and no longer shows is gone (scaled down, replaced): the autoscaler must not count it.
        var observed = obs.NodeGroups.SelectMany(g => g.Nodes).Select(n => n.Name).ToHashSet();
        foreach (var state in states.Values)
            if (state.ServerId is not null && !observed.Contains(state.NodeName) && state.ServerStatus != Gone) state.ServerStatus = Gone;
        return states;
    }

    /// <summary>
    /// Trades a fetch credential for the node's bundle. The credential is consumed only when the bundle could be
    /// built: a node asking before the cluster's API address is known gets 503 and asks again.
    /// </summary>
    public async Task<BootstrapResponse> RedeemAsync(string? authorization, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var now = time.GetUtcNow();
        var (credential, error) = await AuthenticateAsync(db, authorization, NodeCredentialKinds.Fetch, ct);
        if (credential is null) return BootstrapResponse.Refused(error!);
        if (credential.UsedAt is not null) return BootstrapResponse.Refused("this bootstrap credential was already used");

        var cluster = await db.Clusters.AsNoTracking().Include(c => c.NodeGroups).FirstOrDefaultAsync(c => c.Uuid == credential.ClusterUuid, ct);
        var state = await db.NodeStates.FirstOrDefaultAsync(s => s.ClusterUuid == credential.ClusterUuid && s.NodeName == credential.NodeName, ct);
        if (cluster is null || cluster.Operation == ClusterOperations.Delete || state is null)
            return new BootstrapResponse(410, "the node's cluster is being deleted");
        if (!Uri.TryCreate(cluster.ApiAddress, UriKind.Absolute, out var api))
            return new BootstrapResponse(503, "the cluster's API address is not known yet; ask again");
        if (string.IsNullOrEmpty(state.Addresses))
            return new BootstrapResponse(503, "the node's addresses are not known yet (its kubelet certificate carries them); ask again");

        var bundle = await BuildBundleAsync(db, cluster, state, api, now, ct);
        var consumed = await db.NodeCredentials.Where(c => c.Id == credential.Id && c.UsedAt == null)
            .ExecuteUpdateAsync(u => u.SetProperty(c => c.UsedAt, now), ct);
        if (consumed == 0) return BootstrapResponse.Refused("this bootstrap credential was already used");
        state.ServingCertificateExpiresAt = now + ServingValidity;
        if (state.Role != NodeRoles.Worker) state.ControlPlaneCertificatesExpireAt = now + KubeadmCertificateValidity; // kubeadm issues them next
        AddEvent(db, cluster.Uuid, "Normal", "NodeBundleFetched", $"node {state.NodeName} fetched its bootstrap bundle ({state.Role})");
        await db.SaveChangesAsync(ct); // the bundle's report credential and the event
        logger.LogInformation("Cluster {Uuid}: node {Node} fetched its bootstrap bundle ({Role})", cluster.Uuid, state.NodeName, state.Role);
        return new BootstrapResponse(200, null, bundle);
    }

    /// <summary>A node's progress report: phase, ok|failed, the failing command's exit code, and the log tail as body.</summary>
    public async Task<BootstrapResponse> ReportAsync(string? authorization, string? phase, string? status, string? exitCode, string logTail, CancellationToken ct,
        string? kubeletVersion = null, string? member = null)
    {
        if (kubeletVersion is not null && !IsVersion(kubeletVersion)) return new BootstrapResponse(400, $"kubelet_version '{Sanitize(kubeletVersion)}' is not a version like v1.32.1");
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var (credential, error) = await AuthenticateAsync(db, authorization, NodeCredentialKinds.Report, ct);
        if (credential is null) return BootstrapResponse.Refused(error!);
        if (phase is null || !ReportablePhases.Contains(phase))
            return new BootstrapResponse(400, $"unknown phase '{phase}' (expected one of {string.Join(", ", ReportablePhases)})");
        var rotationStep = CaRotationSteps.StepOfPhase(phase);
        if (status is not ("ok" or "failed")) return new BootstrapResponse(400, $"status must be ok or failed, not '{status}'");
        int? code = null;
        if (!string.IsNullOrEmpty(exitCode))
        {
            if (!int.TryParse(exitCode, out var c) || c < 0 || c > 255) return new BootstrapResponse(400, $"exit_code '{exitCode}' is not 0-255");
            code = c;
        }
        var state = await db.NodeStates.FirstOrDefaultAsync(s => s.ClusterUuid == credential.ClusterUuid && s.NodeName == credential.NodeName, ct);
        if (state is null) return new BootstrapResponse(410, "the node is no longer part of its cluster");
        var now = time.GetUtcNow();
        var tail = Sanitize(logTail);
        state.LastSeenAt = now;
        if (kubeletVersion is not null) state.KubeletVersion = kubeletVersion;
        if (phase == NodePhases.EtcdMemberRemoved)
        {
            if (member is null || member == state.NodeName) return await ReportEtcdLeftAsync(db, state, status == "ok", code, tail, now, ct);
            // A healthy control-plane node removed a dead one's member (the dead node cannot).
            if (state.Role == NodeRoles.Worker) return new BootstrapResponse(403, "only a control-plane node removes etcd members");
            var dead = await db.NodeStates.FirstOrDefaultAsync(s => s.ClusterUuid == state.ClusterUuid && s.NodeName == member, ct);
            if (dead is null) return new BootstrapResponse(404, $"no node {member} in this cluster");
            await db.SaveChangesAsync(ct); // the reporter's heartbeat
            return await ReportEtcdLeftAsync(db, dead, status == "ok", code, tail, now, ct, by: state.NodeName);
        }
        if (rotationStep is not null) return await ReportRotationAsync(db, state, rotationStep, status == "failed", code, tail, now, ct);
        if (NodePhases.Renewals.Contains(phase)) return await ReportRenewalAsync(db, state, phase, status == "ok", code, tail, now, ct);
        state.Phase = phase;
        state.Failed = status == "failed";
        state.ExitCode = state.Failed ? code : null;
        state.LogTail = state.Failed ? tail : null;
        state.LastReportAt = now;
        AddEvent(db, credential.ClusterUuid, state.Failed ? "Warning" : "Normal", state.Failed ? "NodeBootstrapFailed" : "NodeBootstrap",
            state.Failed ? $"node {state.NodeName}: {phase} failed" + (code is null ? "" : $" with exit code {code}") : $"node {state.NodeName}: {phase}");
        await db.SaveChangesAsync(ct);
        await PokeOperationAsync(db, credential.ClusterUuid, now, ct);
        return new BootstrapResponse(204);
    }

    /// <summary>What a node reported may move its cluster's running operation on: the conductor looks at it now.</summary>
    private async Task PokeOperationAsync(MagnetarDbContext db, string clusterUuid, DateTimeOffset now, CancellationToken ct)
    {
        await db.Clusters.Where(c => c.Uuid == clusterUuid && c.Operation != null)
            .ExecuteUpdateAsync(u => u.SetProperty(c => c.NextReconcileAt, now), ct);
        signal.Poke();
    }

    /// <summary>
    /// Judges the nodes the cloud reports for a cluster by what they reported: the first failure (node, phase, exit
    /// code, log tail), a node silent for longer than the timeout, or the nodes still on their way.
    /// </summary>
    public async Task<NodeVerdict> EvaluateAsync(MagnetarDbContext db, Cluster cluster, ClusterObservation obs,
        IReadOnlyDictionary<string, NodeBootstrapState> states, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var timeout = TimeSpan.FromSeconds(options.NodeReportTimeoutSeconds);
        var within = options.NodeReportTimeoutSeconds switch { 60 => "1 minute", var n when n % 60 == 0 => $"{n / 60} minutes", var n => $"{n} seconds" };
        var leaving = cluster.NodeGroups.Where(n => n.DeleteRequested).Select(n => n.Name).ToHashSet();
        // Nodes being retired (replaced by an upgrade or healing) are on their way out: they are not waited for.
        var expected = obs.NodeGroups.Where(g => !leaving.Contains(g.Name)).SelectMany(g => g.Nodes.Select(n => (Group: g.Name, Node: n.Name)))
            .Where(x => states.GetValueOrDefault(x.Node) is not { } s || (s.RetireStep is null && s.RetireReason is null) || (s.Failed && s.RetireStep == NodeRetireSteps.LeaveEtcd)).ToList();
        var fetched = (await FetchedNodesAsync(db, cluster.Uuid, ct)).ToHashSet();

        // Nodes that are gone (scaled down, nodegroup deleted) stop counting; the first control-plane node's row stays
        // so that no later server runs kubeadm init a second time.
        var observed = obs.NodeGroups.SelectMany(g => g.Nodes).Select(n => n.Name).ToHashSet();
        // Their credentials go with them: a node that is gone takes no part in CA rotations or renewals.
        foreach (var gone in states.Values.Where(s => !observed.Contains(s.NodeName) && s.CreatedAt < now - TimeSpan.FromMinutes(1)))
        {
            if (gone.Role != NodeRoles.Init) db.NodeStates.Remove(gone);
            else if (gone.ServingCertificateExpiresAt is null && gone.ControlPlaneCertificatesExpireAt is null) continue; // retired by an earlier pass
            else (gone.ServingCertificateExpiresAt, gone.ControlPlaneCertificatesExpireAt) = (null, null);
            await db.NodeCredentials.Where(c => c.ClusterUuid == cluster.Uuid && c.NodeName == gone.NodeName).ExecuteDeleteAsync(ct);
        }

        // A node that said why it failed is named before one that went quiet: its reason is the precise one.
        foreach (var (group, node) in expected)
        {
            if (states.GetValueOrDefault(node) is not { Failed: true } s) continue;
            var failure = $"node {node} (nodegroup {group}, {s.Role}) failed at phase {s.Phase}"
                + (s.ExitCode is null ? "" : $" with exit code {s.ExitCode}")
                + (string.IsNullOrWhiteSpace(s.LogTail) ? "" : "; last log lines:\n" + LastLines(s.LogTail, 15));
            return new NodeVerdict(failure, new HashSet<string>(), new ConditionObservation(ConditionTypes.NodesReady, false, "Failed", failure));
        }

        var waiting = new List<string>();
        var waitingNodes = new HashSet<string>();
        foreach (var (group, node) in expected)
        {
            var s = states.GetValueOrDefault(node);
            if (s is null) { waiting.Add($"{node} (no bootstrap record)"); waitingNodes.Add(node); continue; }
            if (s.Phase == NodePhases.Ready) continue;
            var since = s.LastReportAt ?? s.CreatedAt;
            if (now - since > timeout)
            {
                var failure = s.LastReportAt is null
                    ? fetched.Contains(node)
                        ? $"node {node} (nodegroup {group}) fetched its bootstrap bundle but reported nothing within {within}"
                        : $"node {node} (nodegroup {group}) never contacted Magnetar within {within} of its server being requested (its bootstrap credential is unused: did it boot, run cloud-init, reach {options.Url}?)"
                    : $"node {node} (nodegroup {group}) reported nothing for {within} after phase {s.Phase}";
                return new NodeVerdict(failure, waitingNodes, new ConditionObservation(ConditionTypes.NodesReady, false, "Failed", failure));
            }
            waiting.Add($"{node} ({s.Phase})");
            waitingNodes.Add(node);
        }
        var condition = waiting.Count == 0
            ? new ConditionObservation(ConditionTypes.NodesReady, true, "Ready")
            : new ConditionObservation(ConditionTypes.NodesReady, false, "Waiting", "waiting for nodes to report Ready: " + string.Join(", ", waiting));
        var init = states.Values.FirstOrDefault(s => s.Role == NodeRoles.Init && observed.Contains(s.NodeName));
        var addons = init is null || init.Phase == NodePhases.Pending ? null
            : init.Phase is NodePhases.AddonsApplied or NodePhases.Ready
                ? new ConditionObservation(ConditionTypes.AddonsReady, true, "Applied", $"applied by {init.NodeName}")
                : new ConditionObservation(ConditionTypes.AddonsReady, false, "Waiting", $"{init.NodeName} applies them after kubeadm init (now: {init.Phase})");
        return new NodeVerdict(null, waitingNodes, condition) { Addons = addons };
    }

    /// <summary>The nodes of a cluster that fetched their bundle (their fetch credential is used): they hold its certificates.</summary>
    public static Task<List<string>> FetchedNodesAsync(MagnetarDbContext db, string clusterUuid, CancellationToken ct)
        => db.NodeCredentials.AsNoTracking().Where(c => c.ClusterUuid == clusterUuid && c.Kind == NodeCredentialKinds.Fetch && c.UsedAt != null)
            .Select(c => c.NodeName).ToListAsync(ct);

    /// <summary>Removes every bootstrap record of a deleted cluster.</summary>
    public static async Task DeleteAsync(MagnetarDbContext db, string clusterUuid, CancellationToken ct)
    {
        await db.NodeCredentials.Where(c => c.ClusterUuid == clusterUuid).ExecuteDeleteAsync(ct);
        await db.NodeStates.Where(s => s.ClusterUuid == clusterUuid).ExecuteDeleteAsync(ct);
    }

    private async Task<byte[]> BuildBundleAsync(MagnetarDbContext db, Cluster cluster, NodeBootstrapState state, Uri api, DateTimeOffset now, CancellationToken ct)
    {
        var template = await db.ClusterTemplates.AsNoTracking().FirstOrDefaultAsync(t => t.Uuid == cluster.ClusterTemplateId, ct);
        var networkDriver = template?.NetworkDriver ?? ClusterDefaults.NetworkDriver;
        var labels = cluster.Labels;
        // The version the node's server was made for (during an upgrade the cluster's label is already the new one).
        var version = state.KubernetesVersion ?? Labels.KubernetesVersion(labels, conductorOptions.DefaultKubernetesVersion);
        var node = await certificates.GetNodeSecretsAsync(db, cluster, ct);
        var endpoint = $"{api.Host}:{(api.IsDefaultPort ? KubeadmConfigRenderer.ApiServerPort : api.Port)}";
        var sans = new List<string> { api.Host };
        sans.AddRange(cluster.NodeGroups.Where(n => n.Role == NodeGroupRoles.Master).SelectMany(n => n.NodeAddresses).Where(a => !sans.Contains(a)));
        var controlPlane = state.Role != NodeRoles.Worker;
        var cloud = await CloudConfigAsync(db, cluster, template, ct);
        var kubeadm = KubeadmConfigRenderer.Render(new KubeadmInputs(
            cluster.Name, version, endpoint, sans, Labels.PodCidr(labels, networkDriver), Labels.ServiceCidr(labels), Labels.DnsDomain(labels),
            state.NodeName,
            KubeadmRoleOf(state.Role),
            state.Role == NodeRoles.Init ? node.BootstrapToken : null,
            ExternalCloudProvider: cloud is not null, options.BootstrapTokenTtl));

        var serving = NodeCertificates.KubeletServing(node.ClusterCa, state.NodeName, state.Addresses!.Split(','), ServingValidity);
        var files = new List<(string Path, string Content, UnixFileMode Mode)>
        {
            ("etc/kubernetes/magnetar/kubeadm.yaml", kubeadm, Private),
            (KubeadmConfigRenderer.KubeletServingCertPath.TrimStart('/'), serving.CertificatePem, Public),
            (KubeadmConfigRenderer.KubeletServingKeyPath.TrimStart('/'), serving.PrivateKeyPem, Private),
        };
        if (state.Role != NodeRoles.Init)
            files.Add((KubeadmConfigRenderer.JoinKubeconfigPath.TrimStart('/'), NodeCertificates.JoinKubeconfig(node.ClusterCa, $"https://{endpoint}",
                cluster.Name, state.NodeName, TimeSpan.FromMinutes(options.JoinCertificateMinutes)), Private));
        // A worker gets the CA only inside its join kubeconfig: kubeadm join refuses to start on a worker where
        // /etc/kubernetes/pki/ca.crt exists (preflight FileAvailable--etc-kubernetes-pki-ca.crt) and writes it itself.
        if (controlPlane)
        {
            files.Add(("etc/kubernetes/pki/ca.crt", node.ClusterCa.CertificatePem, Public));
            files.Add(("etc/kubernetes/pki/ca.key", node.ClusterCa.PrivateKeyPem, Private));
            files.Add(("etc/kubernetes/pki/sa.key", node.ServiceAccount.PrivateKeyPem, Private));
            files.Add(("etc/kubernetes/pki/sa.pub", node.ServiceAccount.PublicKeyPem, Public));
            files.Add(("etc/kubernetes/pki/front-proxy-ca.crt", node.FrontProxyCa.CertificatePem, Public));
            files.Add(("etc/kubernetes/pki/front-proxy-ca.key", node.FrontProxyCa.PrivateKeyPem, Private));
            files.Add(("etc/kubernetes/pki/etcd/ca.crt", node.EtcdCa.CertificatePem, Public));
            files.Add(("etc/kubernetes/pki/etcd/ca.key", node.EtcdCa.PrivateKeyPem, Private));
        }
        if (state.Role == NodeRoles.Init)
        {
            // The cluster's autoscaler gets a client certificate of its own for Magnetar's externalgrpc endpoint.
            var autoscalerConfig = Labels.Flag(labels, AddonLabels.AutoScalingEnabled, false) && autoscaler is not null
                ? await autoscaler.IssueAsync(cluster.Uuid, ct) : null;
            var addons = AddonRenderer.Render(new AddonValues(cluster.Uuid, cluster.Name, version, networkDriver,
                Labels.PodCidr(labels, networkDriver), Labels.ServiceCidr(labels), labels, cloud, autoscalerConfig));
            foreach (var addon in addons) files.Add(($"etc/kubernetes/magnetar/addons/{addon.FileName}", addon.Yaml, Private));
        }
        var reportToken = NewCredential(db, cluster.Uuid, state.NodeName, NodeCredentialKinds.Report, now + TimeSpan.FromHours(options.ReportCredentialHours));
        files.Add(("etc/magnetar/report-token", reportToken + "\n", Private));
        return Tar(files, now);
    }

    private async Task<OpenStackCloudConfig?> CloudConfigAsync(MagnetarDbContext db, Cluster cluster, ClusterTemplate? template, CancellationToken ct)
    {
        if (!Labels.Flag(cluster.Labels, "cloud_provider_enabled", true) || string.IsNullOrEmpty(options.CloudAuthUrl)) return null;
        var row = await db.CloudCredentials.AsNoTracking().FirstOrDefaultAsync(c => c.ClusterUuid == cluster.Uuid, ct);
        if (row is null) return null;
        var secret = secrets.Unprotect(row.ProtectedSecret, ClusterReconciler.CloudCredentialPurpose(cluster.Uuid));
        return new OpenStackCloudConfig(options.CloudAuthUrl, options.CloudRegion, row.CredentialId, secret,
            template?.ExternalNetworkId, SubnetId: null, NetworkId: null);
    }

    private static KubeadmRole KubeadmRoleOf(string role) => role switch
    {
        NodeRoles.Init => KubeadmRole.Init,
        NodeRoles.ControlPlane => KubeadmRole.JoinControlPlane,
        _ => KubeadmRole.Worker,
    };

    private const UnixFileMode Public = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private static byte[] Tar(IEnumerable<(string Path, string Content, UnixFileMode Mode)> files, DateTimeOffset now)
    {
        using var buffer = new MemoryStream();
        using (var gzip = new GZipStream(buffer, CompressionLevel.Optimal, leaveOpen: true))
        using (var tar = new TarWriter(gzip, TarEntryFormat.Pax, leaveOpen: false))
        {
            foreach (var (path, content, mode) in files)
            {
                var entry = new PaxTarEntry(TarEntryType.RegularFile, path)
                {
                    Mode = mode, ModificationTime = now, Uid = 0, Gid = 0,
                    DataStream = new MemoryStream(Encoding.UTF8.GetBytes(content)),
                };
                tar.WriteEntry(entry);
            }
        }
        return buffer.ToArray();
    }

    private string NewCredential(MagnetarDbContext db, string clusterUuid, string nodeName, string kind, DateTimeOffset expires)
    {
        var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        var secret = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        db.NodeCredentials.Add(new NodeBootstrapCredential
        {
            TokenId = id, SecretHash = Hash(secret), Kind = kind, ClusterUuid = clusterUuid, NodeName = nodeName,
            CreatedAt = time.GetUtcNow(), ExpiresAt = expires,
        });
        return $"{TokenPrefix}.{id}.{secret}";
    }

    private async Task<(NodeBootstrapCredential?, string?)> AuthenticateAsync(MagnetarDbContext db, string? authorization, string kind, CancellationToken ct)
    {
        const string bearer = "Bearer ";
        if (authorization is null || !authorization.StartsWith(bearer, StringComparison.OrdinalIgnoreCase))
            return (null, "a bootstrap credential is required (Authorization: Bearer mgb1.<id>.<secret>)");
        var parts = authorization[bearer.Length..].Trim().Split('.');
        if (parts.Length != 3 || parts[0] != TokenPrefix || parts[1].Length != 16) return (null, "malformed bootstrap credential");
        var id = parts[1];
        var credential = await db.NodeCredentials.AsNoTracking().FirstOrDefaultAsync(c => c.TokenId == id, ct);
        if (credential is null || credential.Kind != kind ||
            !CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(credential.SecretHash), Encoding.ASCII.GetBytes(Hash(parts[2]))))
            return (null, "unknown bootstrap credential");
        if (credential.ExpiresAt < time.GetUtcNow()) return (null, "this bootstrap credential has expired");
        return (credential, null);
    }

    private static string Hash(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));

    private static string Sanitize(string text)
    {
        if (text.Length > MaxLogTail) text = text[^MaxLogTail..];
        var sb = new StringBuilder(text.Length);
        foreach (var ch in text) sb.Append(ch == '\n' || ch == '\t' || !char.IsControl(ch) ? ch : '?');
        return sb.ToString().TrimEnd();
    }

    private static string LastLines(string text, int n)
    {
        var lines = text.Split('\n');
        return string.Join('\n', lines.Skip(Math.Max(0, lines.Length - n)));
    }

    private void AddEvent(MagnetarDbContext db, string clusterUuid, string type, string reason, string message)
        => db.ClusterEvents.Add(new ClusterEvent { ClusterUuid = clusterUuid, At = time.GetUtcNow(), Type = type, Reason = reason, Message = message });
}
