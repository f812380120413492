using Magnetar.Cloud;
using Magnetar.Domain;
using Magnetar.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace Magnetar.Conductor;

/// <summary>What a nodegroup asks of the cloud in this pass while nodes are replaced.</summary>
/// <param name="CloudCount">servers to keep: the asked count plus the surge (new nodes made before old ones go)</param>
/// <param name="Replace">retired nodes whose servers go now</param>
/// <param name="Retiring">nodes on their way out (drain, leaving etcd): a server of theirs in ERROR fails nothing</param>
public sealed record NodeGroupPlan(int CloudCount, IReadOnlyList<string> Replace, IReadOnlyList<string> Retiring);

/// <summary>Where the replacement of nodes stands after a pass.</summary>
/// <param name="Busy">some nodegroup still has nodes to replace, or new nodes to see join</param>
/// <param name="Rolling">the nodegroups not done yet (their version must not change)</param>
public sealed record ReplacementVerdict(bool Busy, string? Reason, string? Failure, IReadOnlySet<string> Rolling);

/// <summary>
/// Node replacement, the machinery of rolling upgrades and of auto-healing (as Cluster API's machine rollouts): a node
/// whose server was made from another revision (Kubernetes version, image) than its nodegroup's, or that healing marked,
/// is replaced by a new server. New servers come first (<c>max_batch_size</c> beyond the asked count for workers, one
/// for the control plane), and an old node is retired only while the nodes that serve — reported Ready, new ones with
/// the new kubelet version — stay at least the asked count. Retiring: cordon and drain through the cluster's API
/// (PodDisruptionBudgets honoured), a control-plane node then removes its own etcd member through its agent (its
/// successor joined etcd before), then its server is deleted and its Node object removed. The control plane goes
/// first; workers wait until it is done. Every step is recorded on the node's record, so a pass killed anywhere
/// resumes where it was, and a node is never replaced twice: its successor carries the new revision.
/// </summary>
public sealed class NodeReplacer(
    IClusterApi clusterApi,
    ClusterApiAccessProvider apiAccess,
    BootstrapOptions bootstrapOptions,
    ConductorOptions options,
    TimeProvider time,
    ILogger<NodeReplacer> logger)
{
    /// <summary>How <see cref="NodeBootstrapState.RetireReason"/> begins for a node auto-healing replaces (it does not serve).</summary>
    public const string HealingReason = "auto-healing:";

    /// <summary>What a node's server is made from: a node is replaced when this differs from its nodegroup's.</summary>
    public static string Revision(string kubernetesVersion, string imageId) => $"{kubernetesVersion}|{imageId}";

    /// <summary>The image part of a <see cref="Revision"/>.</summary>
    private static string ImageOf(string revision) => revision[(revision.IndexOf('|') + 1)..];

    /// <summary>The Kubernetes version a nodegroup is to run: its own kube_tag label, else the cluster's.</summary>
    public static string DesiredVersion(Cluster cluster, NodeGroup ng, string fallback)
        => Labels.KubernetesVersion(ng.Labels, Labels.KubernetesVersion(cluster.Labels, fallback));

    /// <summary>
    /// The cloud's part of this pass, from the node records alone (before the cloud is asked): per nodegroup the number
    /// of servers to keep and the retired servers to delete.
    /// </summary>
    /// <param name="holdControlPlane">no new control-plane server yet (the cluster's kubeadm-config does not name the new version)</param>
    public static Dictionary<string, NodeGroupPlan> Plan(Cluster cluster, IReadOnlyCollection<NodeBootstrapState> states, Func<NodeGroup, string> revisionOf,
        bool holdControlPlane = false)
    {
        var plans = new Dictionary<string, NodeGroupPlan>();
        // No worker of a new revision while the control plane is being replaced: a kubelet must never be newer than the
        // API servers it joins (kubeadm join refuses it), so worker surges wait until every control-plane node was replaced.
        var controlPlaneRolling = cluster.NodeGroups.Where(n => n.Role == NodeGroupRoles.Master && !n.DeleteRequested)
            .Any(n => states.Any(s => s.NodeGroup == n.Name && !InitMarker.Is(s) && s.RetireStep != NodeRetireSteps.Remove && IsOutdated(s, revisionOf(n))));
        foreach (var ng in cluster.NodeGroups)
        {
            var mine = states.Where(s => s.NodeGroup == ng.Name && !InitMarker.Is(s)).ToList();
            // A control-plane node healed for being dead: its server goes now (it serves nothing), its etcd member is
            // removed by a healthy member, and only then is its successor made — adding a member while a dead one still
            // counts would leave etcd without quorum until the new one has joined.
            var dead = ng.Role == NodeGroupRoles.Master ? mine.Where(s => s.RetireStep == NodeRetireSteps.LeaveEtcd && IsHealing(s)).ToList() : [];
            var replace = mine.Where(s => s.RetireStep == NodeRetireSteps.Remove).Concat(dead).Select(s => s.NodeName).ToList();
            var revision = revisionOf(ng);
            var outdated = mine.Count(s => s.RetireStep != NodeRetireSteps.Remove && IsOutdated(s, revision) && !dead.Contains(s));
            var surge = ng.Role == NodeGroupRoles.Master ? (holdControlPlane || dead.Count > 0 ? 0 : Math.Min(BatchSize(cluster, ng), outdated))
                : controlPlaneRolling ? 0 : Math.Min(BatchSize(cluster, ng), outdated);
            var retiring = mine.Where(s => s.RetireStep is NodeRetireSteps.Drain or NodeRetireSteps.LeaveEtcd).Select(s => s.NodeName).ToList();
            plans[ng.Name] = new NodeGroupPlan(ng.NodeCount - dead.Count + surge, replace, retiring);
        }
        return plans;
    }

    /// <summary>
    /// Before a control-plane node of a new Kubernetes version is made: the cluster's kubeadm-config must name that
    /// version, or <c>kubeadm join --control-plane</c> would start the old version's control plane on it (Cluster API
    /// does the same). Null when nothing needs holding back; else why new control-plane servers wait.
    /// </summary>
    public async Task<string?> PrepareControlPlaneAsync(MagnetarDbContext db, Cluster cluster, IReadOnlyCollection<NodeBootstrapState> states,
        Func<NodeGroup, string> versionOf, CancellationToken ct)
    {
        if (cluster.Operation != ClusterOperations.Upgrade || !apiAccess.Enabled) return null;
        foreach (var ng in cluster.NodeGroups.Where(n => n.Role == NodeGroupRoles.Master && !n.DeleteRequested))
        {
            var version = versionOf(ng);
            var pending = states.Any(s => s.NodeGroup == ng.Name && !InitMarker.Is(s) && s.RetireStep != NodeRetireSteps.Remove
                && s.KubernetesVersion is not null && s.KubernetesVersion != version && !states.Any(n => n.NodeGroup == ng.Name && n.KubernetesVersion == version));
            if (!pending) continue;
            if (await apiAccess.GetAsync(db, cluster, ct) is not { } access) return $"waiting for the cluster's API address to record {version} in kube-system/kubeadm-config";
            if (await clusterApi.SetKubeadmKubernetesVersionAsync(access, version, ct) is { } error)
                return $"recording {version} in kube-system/kubeadm-config before a control-plane node of that version joins: {error}";
        }
        return null;
    }

    private static int BatchSize(Cluster cluster, NodeGroup ng) => ng.Role == NodeGroupRoles.Master ? 1 : Math.Max(1, cluster.UpgradeMaxBatchSize ?? 1);

    /// <summary>A node auto-healing replaces (it does not serve).</summary>
    public static bool IsHealing(NodeBootstrapState s) => s.RetireReason?.StartsWith(HealingReason, StringComparison.Ordinal) == true;

    /// <summary>A node that must be replaced: made from another revision, or marked by healing.</summary>
    private static bool IsOutdated(NodeBootstrapState s, string revision) => s.Revision != revision || s.RetireReason is not null;


    /// <summary>
    /// After the cloud was asked: starts retiring the nodes that may go now, moves retiring nodes on (drain, leave etcd,
    /// remove), forgets the ones whose servers are gone, and says whether the replacement is done, waits, or failed.
    /// </summary>
    public async Task<ReplacementVerdict> AdvanceAsync(MagnetarDbContext db, Cluster cluster, ClusterObservation obs,
        IReadOnlyDictionary<string, NodeBootstrapState> states, Func<NodeGroup, string> revisionOf, Func<NodeGroup, string> versionOf,
        Action<string, string, string> addEvent, CancellationToken ct, string? controlPlaneHeld = null)
    {
        var now = time.GetUtcNow();
        var reports = bootstrapOptions.ReadinessFromReports;
        var observed = obs.NodeGroups.SelectMany(g => g.Nodes).ToDictionary(n => n.Name);
        var rolling = new HashSet<string>();
        string? reason = null;
        var progressed = false;

        // Retired nodes whose servers are gone: their Node objects go too, then their records (the first control-plane
        // node's stays, renamed, as the mark that the cluster was initialised).
        foreach (var gone in states.Values.Where(s => s.RetireStep == NodeRetireSteps.Remove && !observed.ContainsKey(s.NodeName) && !InitMarker.Is(s)).ToList())
        {
            if (await apiAccess.GetAsync(db, cluster, ct) is { } access && !await clusterApi.DeleteNodeAsync(access, gone.NodeName, ct))
                logger.LogWarning("Cluster {Uuid}: the Node object of replaced node {Node} could not be deleted now; the cloud controller manager removes it", cluster.Uuid, gone.NodeName);
            addEvent("Normal", "NodeReplaced", $"node {gone.NodeName} ({gone.RetireReason ?? "upgrade"}) is gone: the deletion of its server was requested");
            await db.NodeCredentials.Where(c => c.ClusterUuid == cluster.Uuid && c.NodeName == gone.NodeName).ExecuteDeleteAsync(ct);
            if (gone.Role == NodeRoles.Init) InitMarker.Keep(gone, now);
            else db.NodeStates.Remove(gone);
            progressed = true;
        }

        // The control plane first: workers are replaced only once every control-plane node runs its revision.
        var controlPlaneRolling = false;
        foreach (var ng in cluster.NodeGroups.Where(n => !n.DeleteRequested).OrderBy(n => n.Role == NodeGroupRoles.Master ? 0 : 1).ThenBy(n => n.Id))
        {
            var revision = revisionOf(ng);
            var version = versionOf(ng);
            var nodes = states.Values.Where(s => s.NodeGroup == ng.Name && !InitMarker.Is(s) && observed.ContainsKey(s.NodeName)).OrderBy(s => NameIndex(s.NodeName)).ToList();
            foreach (var s in nodes.Where(s => s.Revision is null))
            {
                // Nodes made before revisions were recorded run what their nodegroup last completed.
                s.KubernetesVersion ??= ng.Version ?? version;
                s.Revision = Revision(s.KubernetesVersion, ImageOf(revision));
            }
            // A node serves when its server is ACTIVE, it reported Ready (mode "reports") and healing did not pick it for being unhealthy.
            bool Serving(NodeBootstrapState s) => observed[s.NodeName].Status == "ACTIVE" && (!reports || (s.Phase == NodePhases.Ready && !s.Failed))
                && !IsHealing(s);
            bool Joined(NodeBootstrapState s) => Serving(s) && (!reports || s.KubeletVersion == s.KubernetesVersion);
            var outdated = nodes.Where(s => s.RetireStep != NodeRetireSteps.Remove && IsOutdated(s, revision)).ToList();
            var removing = states.Values.Where(s => s.NodeGroup == ng.Name && s.RetireStep == NodeRetireSteps.Remove && !InitMarker.Is(s)).ToList();
            var fresh = nodes.Where(s => !IsOutdated(s, revision)).ToList();
            var joining = fresh.Where(s => !Joined(s)).ToList();
            if (outdated.Count == 0 && removing.Count == 0 && joining.Count == 0 && fresh.Count == ng.NodeCount) continue;
            if (outdated.Count == 0 && removing.Count == 0 && cluster.Operation is not (ClusterOperations.Upgrade or ClusterOperations.Heal)) continue; // a create or resize: not a replacement
            rolling.Add(ng.Name);
            if (ng.Role == NodeGroupRoles.Master) controlPlaneRolling = true;
            else if (controlPlaneRolling) { reason ??= $"{ng.Name} waits for the control plane's upgrade"; continue; }

            if (ng.Role == NodeGroupRoles.Master && controlPlaneHeld is not null) { reason ??= $"{Verb(cluster)} {ng.Name} to {version}: {controlPlaneHeld}"; continue; }

            // Start retiring: nodes that do not serve at once (nothing is lost), serving ones while enough others serve.
            var batch = BatchSize(cluster, ng);
            var retiring = outdated.Where(s => s.RetireStep is not null).ToList();
            var serving = nodes.Count(s => s.RetireStep is null && Serving(s) && (IsOutdated(s, revision) || Joined(s)));
            foreach (var s in outdated.Where(s => s.RetireStep is null).OrderBy(s => Serving(s) ? 1 : 0).ThenBy(s => s.RetireReason is null ? 1 : 0))
            {
                if (retiring.Count >= batch) break;
                var servingNow = Serving(s);
                if (servingNow && serving - 1 < ng.NodeCount) break;
                if (servingNow) serving--;
                s.RetireReason ??= $"upgrade to {version}";
                SetStep(s, NodeRetireSteps.Drain, now);
                retiring.Add(s);
                progressed = true;
                addEvent("Normal", "NodeRetiring", $"node {s.NodeName} is retired ({s.RetireReason}): its successor serves" + (servingNow ? "; draining it" : "; it does not serve, nothing to drain"));
            }

            // Move the retiring nodes on.
            var doing = new List<string>();
            foreach (var s in retiring)
            {
                var step = await AdvanceNodeAsync(db, cluster, s, Serving(s), reports, addEvent, now, ct);
                if (step.Failure is not null)
                    return new ReplacementVerdict(true, null, $"{Verb(cluster)} {ng.Name} to {version} stopped: {step.Failure}", rolling);
                if (step.Progressed) progressed = true;
                doing.Add(step.Doing);
            }
            var done = fresh.Count(Joined);
            var waitingJoin = joining.Select(s => s.NodeName).ToList();
            reason ??= $"{Verb(cluster)} {ng.Name} to {version}: {Math.Min(done, ng.NodeCount)}/{ng.NodeCount} nodes done"
                + (doing.Count > 0 ? ", " + string.Join(", ", doing) : "")
                + (removing.Count > 0 ? ", removing " + string.Join(", ", removing.Select(s => s.NodeName)) : "")
                + (waitingJoin.Count > 0 ? ", waiting for " + string.Join(", ", waitingJoin) + " to join" + (reports ? " and report " + version : "") : "");
        }

        // The control plane runs the new version: kube-proxy (kubeadm's addon on every node) follows, as kubeadm upgrade apply does it.
        if (!controlPlaneRolling && cluster.Operation == ClusterOperations.Upgrade && apiAccess.Enabled
            && cluster.NodeGroups.FirstOrDefault(n => n.Role == NodeGroupRoles.Master && !n.DeleteRequested) is { } cp
            && await apiAccess.GetAsync(db, cluster, ct) is { } proxyAccess
            && await clusterApi.SetKubeProxyVersionAsync(proxyAccess, versionOf(cp), ct) is { } proxyError)
        {
            rolling.Add(cp.Name);
            reason ??= $"{Verb(cluster)}: setting kube-proxy to {versionOf(cp)}: {proxyError}";
        }

        if (progressed || cluster.ProgressAt is null) cluster.ProgressAt = now;
        if (rolling.Count > 0 && now - cluster.ProgressAt > TimeSpan.FromSeconds(options.ReplaceStepTimeoutSeconds))
            return new ReplacementVerdict(true, reason, $"{Verb(cluster)} stopped: no progress for {options.ReplaceStepTimeoutSeconds} seconds; {reason}", rolling);
        return new ReplacementVerdict(rolling.Count > 0, reason, null, rolling);
    }

    private readonly record struct NodeStep(string Doing, bool Progressed, string? Failure = null);

    private async Task<NodeStep> AdvanceNodeAsync(MagnetarDbContext db, Cluster cluster, NodeBootstrapState s, bool serving, bool reports,
        Action<string, string, string> addEvent, DateTimeOffset now, CancellationToken ct)
    {
        if (s.RetireStep == NodeRetireSteps.Drain)
        {
            var access = serving ? await apiAccess.GetAsync(db, cluster, ct) : null;
            if (access is null)
            {
                addEvent("Normal", "NodeNotDrained", serving
                    ? $"node {s.NodeName} not drained: Magnetar does not reach this cluster's API (Magnetar:Conductor:ReachClusterApis is off, as on the simulated cloud where no Kubernetes runs)"
                    : $"node {s.NodeName} not drained: it does not serve");
                return AfterDrain(s, serving, reports, addEvent, now);
            }
            var drain = await clusterApi.DrainAsync(access, s.NodeName, ct);
            if (drain.Drained)
            {
                addEvent("Normal", "NodeDrained", drain.NodeMissing ? $"node {s.NodeName}: no Node object to drain" : $"node {s.NodeName} drained");
                return AfterDrain(s, serving, reports, addEvent, now);
            }
            var waited = now - (s.RetireStepAt ?? now);
            var blocker = drain.Blocked ?? (drain.RemainingPods.Count > 0 ? $"pods still leaving: {string.Join(", ", drain.RemainingPods.Take(5))}" : "the drain did not finish");
            if (waited > TimeSpan.FromSeconds(options.DrainTimeoutSeconds))
            {
                if (!string.Equals(options.DrainTimeoutAction, "proceed", StringComparison.OrdinalIgnoreCase))
                    return new NodeStep("", false, $"node {s.NodeName} could not be drained within {options.DrainTimeoutSeconds} seconds: {blocker} " +
                        "(resolve it — e.g. relax the PodDisruptionBudget — and upgrade again to resume)");
                addEvent("Warning", "NodeDrainTimedOut", $"node {s.NodeName} not drained within {options.DrainTimeoutSeconds} seconds ({blocker}); replaced anyway (Magnetar:Conductor:DrainTimeoutAction=proceed)");
                return AfterDrain(s, serving, reports, addEvent, now);
            }
            return new NodeStep($"draining {s.NodeName}" + (drain.Blocked is null ? "" : $" ({drain.Blocked})"), false);
        }
        if (s.RetireStep == NodeRetireSteps.LeaveEtcd)
            return new NodeStep($"waiting for {s.NodeName} to leave etcd", false);
        return new NodeStep($"removing {s.NodeName}", false);
    }

    /// <summary>After the drain: a serving control-plane node leaves etcd through its agent; any other node's server goes.</summary>
    private static NodeStep AfterDrain(NodeBootstrapState s, bool serving, bool reports, Action<string, string, string> addEvent, DateTimeOffset now)
    {
        if (s.Role != NodeRoles.Worker && reports && (serving || IsHealing(s)))
        {
            SetStep(s, NodeRetireSteps.LeaveEtcd, now);
            addEvent("Normal", "NodeLeavingEtcd", serving ? $"node {s.NodeName} is asked to remove its etcd member (its agent does it)"
                : $"node {s.NodeName}'s etcd member is to be removed by a healthy control-plane node's agent");
            return new NodeStep($"waiting for {s.NodeName} to leave etcd", true);
        }
        SetStep(s, NodeRetireSteps.Remove, now);
        return new NodeStep($"removing {s.NodeName}", true);
    }

    private static void SetStep(NodeBootstrapState s, string step, DateTimeOffset now)
    {
        s.RetireStep = step;
        s.RetireStepAt = now;
    }

    private static string Verb(Cluster cluster) => cluster.Operation == ClusterOperations.Heal ? "replacing unhealthy nodes of" : "upgrading";

    private static int NameIndex(string name)
    {
        var dash = name.LastIndexOf('-');
        return dash >= 0 && int.TryParse(name.AsSpan(dash + 1), out var i) ? i : int.MaxValue;
    }
}
