using Magnetar.Bootstrap;
using Magnetar.Cloud;
using Magnetar.Domain;
using Magnetar.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace Magnetar.Conductor;

/// <summary>Outcome of one reconcile pass: when to look again (null: nothing left to do).</summary>
public readonly record struct ReconcileResult(TimeSpan? RequeueAfter);

/// <summary>
/// One level-triggered pass over one cluster: read the desired state from the database, ask the cloud provider to
/// converge, and record what it saw (status, reason, conditions, addresses, events). A pass assumes nothing about the
/// previous one, so killing the process at any point and running the pass again is harmless.
/// </summary>
public sealed class ClusterReconciler(
    IDbContextFactory<MagnetarDbContext> dbFactory,
    ICloudProvider cloud,
    IClusterCertificates certificates,
    NodeBootstrapper bootstrapper,
    NodeReplacer replacer,
    ClusterApiAccessProvider apiAccess,
    BootstrapOptions bootstrapOptions,
    Magnetar.Bootstrap.Secrets.ISecretProtector secrets,
    ConductorOptions options,
    TimeProvider time,
    ILogger<ClusterReconciler> logger)
{
    private static readonly TimeSpan IdleRecheck = TimeSpan.FromMinutes(5);

    public async Task<ReconcileResult> ReconcileAsync(long clusterId, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var cluster = await db.Clusters.Include(c => c.NodeGroups).FirstOrDefaultAsync(c => c.Id == clusterId, ct);
        if (cluster is null) return new ReconcileResult(null);

        var result = cluster.Operation switch
        {
            ClusterOperations.Delete => await ReconcileDeleteAsync(db, cluster, ct),
            ClusterOperations.Create or ClusterOperations.Update or ClusterOperations.Upgrade or ClusterOperations.Heal => await ReconcileNormalAsync(db, cluster, ct),
            ClusterOperations.RotateCa => await ReconcileCaRotationAsync(db, cluster, ct),
            _ => new ReconcileResult(null),
        };

        if (db.Entry(cluster).State != EntityState.Detached && db.Entry(cluster).State != EntityState.Deleted)
        {
            cluster.LeaseOwner = null;
            cluster.LeaseExpiresAt = null;
            cluster.NextReconcileAt = result.RequeueAfter is { } after ? time.GetUtcNow() + after : null;
        }
        await db.SaveChangesAsync(ct);
        return result;
    }

    private async Task<ReconcileResult> ReconcileDeleteAsync(MagnetarDbContext db, Cluster cluster, CancellationToken ct)
    {
        var credential = await LoadCredentialAsync(db, cluster.Uuid, ct);
        var obs = await cloud.DeleteAsync(new ClusterRef(cluster.Uuid, cluster.Name, cluster.ProjectId, credential) { UserId = cluster.UserId }, ct);
        switch (obs.Phase)
        {
            case ProvisionPhase.Ready:
                // Everything tagged with the cluster is confirmed gone: now (and only now) the records go.
                await certificates.DeleteAsync(db, cluster.Uuid, ct);
                await NodeBootstrapper.DeleteAsync(db, cluster.Uuid, ct);
                await db.CloudCredentials.Where(c => c.ClusterUuid == cluster.Uuid).ExecuteDeleteAsync(ct);
                await db.ClusterEvents.Where(e => e.ClusterUuid == cluster.Uuid).ExecuteDeleteAsync(ct);
                db.Clusters.Remove(cluster);
                ConductorMetrics.RecordOperation(cluster.Operation ?? "delete", "complete", time.GetUtcNow() - (cluster.OperationStartedAt ?? cluster.CreatedAt));
                logger.LogInformation("Cluster {Cluster} ({Uuid}) deleted: no cloud resource left", cluster.Name, cluster.Uuid);
                return new ReconcileResult(null);
            case ProvisionPhase.Failed:
                Transition(db, cluster, ClusterStatus.DeleteFailed, obs.Message, "DeleteFailed");
                cluster.Operation = null;
                return new ReconcileResult(null);
            default:
                cluster.StatusReason = obs.Message;
                return new ReconcileResult(obs.RequeueAfter ?? TimeSpan.FromSeconds(1));
        }
    }

    private async Task<ReconcileResult> ReconcileNormalAsync(MagnetarDbContext db, Cluster cluster, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var template = await db.ClusterTemplates.AsNoTracking().FirstOrDefaultAsync(t => t.Uuid == cluster.ClusterTemplateId, ct);
        if (template is null)
            return Fail(db, cluster, $"cluster template {cluster.ClusterTemplateId} no longer exists");

        var failedStatus = cluster.Operation == ClusterOperations.Create ? ClusterStatus.CreateFailed : ClusterStatus.UpdateFailed;
        var completeStatus = cluster.Operation == ClusterOperations.Create ? ClusterStatus.CreateComplete : ClusterStatus.UpdateComplete;

        // Certificates first: nodes need the CA before they can join, and the API serves it as soon as it exists.
        // The pass that makes the node secrets saves them before it reaches the cloud: so a pass that finds none made is
        // the first to provision the cluster, in any process, and the cloud has nothing of it to look for (issue #15).
        var firstPass = await certificates.EnsureCaAsync(db, cluster, ct) && cluster.Operation == ClusterOperations.Create;
        SetCondition(db, cluster, new ConditionObservation(ConditionTypes.CertificatesReady, true, "Ready"), now);
        if (firstPass) await db.SaveChangesAsync(ct);

        var version = Labels.KubernetesVersion(cluster.Labels, options.DefaultKubernetesVersion);
        string VersionOf(NodeGroup n) => NodeReplacer.DesiredVersion(cluster, n, options.DefaultKubernetesVersion);
        string RevisionOf(NodeGroup n) => NodeReplacer.Revision(VersionOf(n), n.ImageId ?? template.ImageId);
        // Nodes being replaced (upgrade, healing): how many servers each nodegroup keeps, and which retired ones go.
        var knownNodes = await db.NodeStates.AsNoTracking().Where(s => s.ClusterUuid == cluster.Uuid).ToListAsync(ct);
        var controlPlaneHeld = await replacer.PrepareControlPlaneAsync(db, cluster, knownNodes, VersionOf, ct);
        var plans = NodeReplacer.Plan(cluster, knownNodes, RevisionOf, holdControlPlane: controlPlaneHeld is not null);
        var networkDriver = template.NetworkDriver ?? ClusterDefaults.NetworkDriver;
        var spec = new ClusterSpec(
            cluster.Uuid, cluster.Name, cluster.ProjectId, version, template.ImageId, cluster.Keypair,
            template.ExternalNetworkId, cluster.FixedNetwork, cluster.FixedSubnet, networkDriver,
            cluster.MasterLbEnabled, cluster.FloatingIpEnabled, cluster.DockerVolumeSize, cluster.Labels,
            cluster.NodeGroups.OrderBy(n => n.Id).Select(n => new NodeGroupSpec(
                n.Name, n.Role,
                n.FlavorId ?? (n.Role == NodeGroupRoles.Master ? cluster.MasterFlavorId : cluster.FlavorId) ?? ClusterDefaults.Flavor,
                n.ImageId ?? template.ImageId,
                plans[n.Name].CloudCount, n.NodesToRemove, n.DeleteRequested,
                (nodeName, token) => bootstrapper.RenderUserDataAsync(cluster, n, nodeName, VersionOf(n), RevisionOf(n), token))
                { Replace = plans[n.Name].Replace, Retiring = plans[n.Name].Retiring })
                .ToList(),
            await LoadCredentialAsync(db, cluster.Uuid, ct),
            template.DnsNameserver) { FirstPass = firstPass };

        var obs = await cloud.ReconcileAsync(spec, ct);
        now = time.GetUtcNow();
        foreach (var c in obs.Conditions) SetCondition(db, cluster, c, now);
        if (obs.ApiAddress is not null) cluster.ApiAddress = obs.ApiAddress;
        var nodeStates = await bootstrapper.RecordAddressesAsync(db, cluster, obs, ct);
        var replacement = obs.Phase == ProvisionPhase.Failed ? null
            : await replacer.AdvanceAsync(db, cluster, obs, nodeStates, RevisionOf, VersionOf, (type, reason, message) => AddEvent(db, cluster, type, reason, message), ct, controlPlaneHeld);

        // Readiness "reports": a node counts when it said so through the bootstrap protocol, not when its server is ACTIVE.
        NodeVerdict? nodes = null;
        if (bootstrapOptions.ReadinessFromReports)
        {
            nodes = await bootstrapper.EvaluateAsync(db, cluster, obs, nodeStates, ct);
            SetCondition(db, cluster, nodes.Condition, now);
            if (nodes.Addons is not null) SetCondition(db, cluster, nodes.Addons, now);
        }
        foreach (var ngObs in obs.NodeGroups)
        {
            var ng = cluster.NodeGroups.FirstOrDefault(n => n.Name == ngObs.Name);
            if (ng is null) continue;
            var addresses = ngObs.Nodes.Where(n => n.Address is not null).Select(n => n.Address!).ToList();
            if (!addresses.SequenceEqual(ng.NodeAddresses)) { ng.NodeAddresses = addresses; ng.UpdatedAt = now; }
            if (ngObs.Gone && ng.DeleteRequested)
            {
                cluster.NodeGroups.Remove(ng);
                db.NodeGroups.Remove(ng);
                AddEvent(db, cluster, "Normal", "NodeGroupDeleted", $"nodegroup {ng.Name} deleted");
            }
            else if (ngObs.FailureMessage is not null && ClusterStatus.IsInProgress(ng.Status))
            {
                ng.Status = ng.Status.Replace("_IN_PROGRESS", "_FAILED");
                ng.StatusReason = ngObs.FailureMessage;
                ng.UpdatedAt = now;
            }
            else if (ngObs.Ready && ClusterStatus.IsInProgress(ng.Status) && !(nodes?.WaitingNodes.Overlaps(ngObs.Nodes.Select(x => x.Name)) ?? false)
                     && !(replacement?.Rolling.Contains(ng.Name) ?? false))
            {
                ng.Status = ng.Status.Replace("_IN_PROGRESS", "_COMPLETE");
                ng.StatusReason = null;
                ng.NodesToRemove = new List<string>();
                // Only now, when every node of it was seen to run it (reported by the nodes themselves in mode "reports").
                ng.Version = VersionOf(ng);
                ng.UpdatedAt = now;
                if (ng.Role == NodeGroupRoles.Master) cluster.CoeVersion = ng.Version; // coe_version is what the control plane runs
            }
        }

        if (nodes?.Failure is not null) return Fail(db, cluster, nodes.Failure, failedStatus);
        if (replacement?.Failure is not null) return Fail(db, cluster, replacement.Failure, failedStatus);
        switch (obs.Phase)
        {
            case ProvisionPhase.Failed:
                return Fail(db, cluster, obs.Message ?? "the cloud provider reported a failure", failedStatus);

            case ProvisionPhase.Ready when replacement is { Busy: true }:
                if (cluster.StatusReason != replacement.Reason) cluster.StatusReason = replacement.Reason;
                return new ReconcileResult(TimeSpan.FromSeconds(2));

            case ProvisionPhase.Ready when nodes is { WaitingNodes.Count: > 0 }:
                cluster.StatusReason = nodes.Condition.Message;
                return new ReconcileResult(TimeSpan.FromSeconds(3));

            case ProvisionPhase.Ready when cluster.NodeGroups.Any(n => n.DeleteRequested):
                // Complete only once every nodegroup asked to go was observed gone (its row removed above).
                cluster.StatusReason = "waiting for nodegroup(s) " + string.Join(", ", cluster.NodeGroups.Where(n => n.DeleteRequested).Select(n => n.Name)) + " to be deleted";
                return new ReconcileResult(obs.RequeueAfter ?? TimeSpan.FromSeconds(1));

            case ProvisionPhase.Ready:
                Transition(db, cluster, completeStatus, CompletionReason(cluster), "Completed");
                foreach (var ng in cluster.NodeGroups.Where(n => !n.DeleteRequested))
                {
                    if (ClusterStatus.IsInProgress(ng.Status)) ng.Status = ng.Status.Replace("_IN_PROGRESS", "_COMPLETE");
                    ng.NodesToRemove = new List<string>();
                    ng.Version = VersionOf(ng);
                }
                // coe_version is what the control plane runs (a named worker nodegroup's upgrade leaves it as it is).
                cluster.CoeVersion = cluster.NodeGroups.Where(n => n.Role == NodeGroupRoles.Master && !n.DeleteRequested).Select(n => n.Version).FirstOrDefault() ?? version;
                cluster.ObservedGeneration = cluster.Generation;
                cluster.Operation = null;
                cluster.OperationStartedAt = null;
                cluster.UpgradeToTemplateId = null;
                cluster.UpgradeMaxBatchSize = null;
                cluster.ProgressAt = null;
                cluster.HealthStatus = HealthStatus.Healthy;
                cluster.HealthStatusReason = BuildHealthReason(obs);
                return new ReconcileResult(null);

            default:
                var started = cluster.OperationStartedAt ?? cluster.CreatedAt;
                // Upgrades and healing are bounded per step (NodeReplacer), not as a whole: they take as long as the nodes need.
                if (cluster.Operation is ClusterOperations.Create or ClusterOperations.Update && cluster.CreateTimeout > 0 && now - started > TimeSpan.FromMinutes(cluster.CreateTimeout))
                    return Fail(db, cluster, $"timed out after {cluster.CreateTimeout} minutes; last progress: {obs.Message}", failedStatus);
                if (cluster.StatusReason != obs.Message) cluster.StatusReason = obs.Message;
                return new ReconcileResult(obs.RequeueAfter ?? TimeSpan.FromSeconds(1));
        }
    }

    /// <summary>
    /// A pass of a CA rotation: the cloud is not touched (no server changes); the nodes' agents carry out the steps
    /// and report, and this pass moves the cluster from step to step once every participant finished the current one
    /// (<see cref="CaRotation"/>), fails it with the node's own words when a node failed, or when no node made
    /// progress within the step timeout — keeping the step, so that rotating again resumes there.
    /// </summary>
    private async Task<ReconcileResult> ReconcileCaRotationAsync(MagnetarDbContext db, Cluster cluster, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var step = cluster.CaRotationStep ??= CaRotationSteps.Trust;
        var participants = await CaRotation.ParticipantsAsync(db, cluster.Uuid, ct);
        const string resume = "The cluster keeps working meanwhile (its nodes trust the CA their API servers serve from); rotating the CA again resumes at this step.";
        if (participants.FirstOrDefault(p => p.RotationFailure is not null) is { } failed)
            return Fail(db, cluster, $"CA rotation stopped at step {step}: {failed.RotationFailure}\n{resume}", ClusterStatus.UpdateFailed);

        var turn = CaRotation.Turn(participants, step);
        if (turn.Count == 0)
        {
            if (CaRotationSteps.Next(step) is { } next)
            {
                cluster.CaRotationStep = next;
                cluster.CaRotationProgressAt = now;
                cluster.StatusReason = $"CA rotation: step {next} begins";
                AddEvent(db, cluster, "Normal", "CaRotationStep", $"CA rotation: every node finished step {step}; step {next} begins");
                return new ReconcileResult(TimeSpan.FromMilliseconds(100));
            }
            await certificates.CompleteRotationAsync(db, cluster, ct);
            cluster.CaRotationStep = null;
            cluster.CaRotationProgressAt = null;
            Transition(db, cluster, ClusterStatus.UpdateComplete,
                participants.Count == 0 ? "CA rotation completed (no node had bootstrapped with the old CA)"
                    : $"CA rotation completed: the cluster's {participants.Count} node(s) trust only the new CA", "Completed");
            cluster.Operation = null;
            cluster.OperationStartedAt = null;
            return new ReconcileResult(null);
        }

        var waiting = string.Join(", ", turn.Select(n => n.NodeName));
        if (now - (cluster.CaRotationProgressAt ?? cluster.OperationStartedAt ?? now) > TimeSpan.FromSeconds(bootstrapOptions.CaRotationStepTimeoutSeconds))
            return Fail(db, cluster, $"CA rotation stopped at step {step}: no node completed it within {bootstrapOptions.CaRotationStepTimeoutSeconds} seconds; " +
                $"waiting for {waiting} (a node's agent, magnetar-node-agent.timer, asks {bootstrapOptions.Url} for work every 30 s: is the node up, can it reach Magnetar?)\n{resume}",
                ClusterStatus.UpdateFailed);
        var reason = $"CA rotation step {step} ({Array.IndexOf(CaRotationSteps.All, step) + 1}/{CaRotationSteps.All.Length}): waiting for {waiting}";
        if (cluster.StatusReason != reason) cluster.StatusReason = reason;
        return new ReconcileResult(TimeSpan.FromSeconds(3));
    }

    private static string CompletionReason(Cluster cluster) => cluster.Operation switch
    {
        ClusterOperations.Upgrade => "UPGRADE completed successfully: " + string.Join(", ", cluster.NodeGroups.Where(n => !n.DeleteRequested).OrderBy(n => n.Id)
            .Select(n => $"{n.Name} runs {n.Version}")),
        ClusterOperations.Heal => "unhealthy nodes replaced",
        var op => $"{op!.ToUpperInvariant()} completed successfully",
    };

    /// <summary>The cluster's cloud credential with its secret unsealed, or null when its cloud uses none.</summary>
    private async Task<CloudCredential?> LoadCredentialAsync(MagnetarDbContext db, string clusterUuid, CancellationToken ct)
    {
        var row = await db.CloudCredentials.AsNoTracking().FirstOrDefaultAsync(c => c.ClusterUuid == clusterUuid, ct);
        return row is null ? null : new CloudCredential(row.CredentialId, secrets.Unprotect(row.ProtectedSecret, CloudCredentialPurpose(clusterUuid)), row.UserId);
    }

    /// <summary>The authenticated-data label sealing a cluster's cloud credential secret.</summary>
    public static string CloudCredentialPurpose(string clusterUuid) => $"cloud-credential:{clusterUuid}";

    private ReconcileResult Fail(MagnetarDbContext db, Cluster cluster, string reason, string? status = null)
    {
        status ??= cluster.Operation == ClusterOperations.Create ? ClusterStatus.CreateFailed : ClusterStatus.UpdateFailed;
        Transition(db, cluster, status, reason, "Failed", warning: true);
        foreach (var ng in cluster.NodeGroups.Where(n => ClusterStatus.IsInProgress(n.Status)))
        {
            ng.Status = ng.Status.Replace("_IN_PROGRESS", "_FAILED");
            ng.StatusReason ??= reason;
        }
        cluster.Operation = null;
        cluster.OperationStartedAt = null;
        cluster.ProgressAt = null;
        cluster.HealthStatus = HealthStatus.Unknown;
        logger.LogWarning("Cluster {Cluster} ({Uuid}) {Status}: {Reason}", cluster.Name, cluster.Uuid, status, reason);
        return new ReconcileResult(null);
    }

    private void Transition(MagnetarDbContext db, Cluster cluster, string status, string? reason, string eventReason, bool warning = false)
    {
        var now = time.GetUtcNow();
        if (!ClusterStatus.IsInProgress(status) && ClusterStatus.IsInProgress(cluster.Status))
            ConductorMetrics.RecordOperation(cluster.Operation ?? "unknown", status.EndsWith("_FAILED") ? "failed" : "complete",
                now - (cluster.OperationStartedAt ?? cluster.CreatedAt));
        cluster.Status = status;
        cluster.StatusReason = reason;
        cluster.UpdatedAt = now;
        AddEvent(db, cluster, warning ? "Warning" : "Normal", eventReason, $"{status}: {reason}");
    }

    private void SetCondition(MagnetarDbContext db, Cluster cluster, ConditionObservation obs, DateTimeOffset now)
    {
        var existing = cluster.Conditions.FirstOrDefault(c => c.Type == obs.Type);
        if (existing is not null && existing.Status == obs.Status && existing.Reason == obs.Reason && existing.Message == obs.Message) return;
        var list = cluster.Conditions.Where(c => c.Type != obs.Type).ToList();
        list.Add(new ClusterCondition
        {
            Type = obs.Type, Status = obs.Status, Reason = obs.Reason, Message = obs.Message,
            LastTransitionAt = existing is not null && existing.Status == obs.Status ? existing.LastTransitionAt : now,
        });
        cluster.Conditions = list.OrderBy(c => ConditionOrder(c.Type)).ToList();
        if (existing is null || existing.Status != obs.Status)
            AddEvent(db, cluster, obs.Status ? "Normal" : obs.Reason == "Failed" ? "Warning" : "Normal", obs.Type, obs.Status ? $"{obs.Type}" : $"{obs.Type}=False: {obs.Message}");
    }

    private static int ConditionOrder(string type) => type switch
    {
        ConditionTypes.CertificatesReady => 0,
        ConditionTypes.NetworkReady => 1,
        ConditionTypes.SecurityGroupsReady => 2,
        ConditionTypes.LoadBalancerReady => 3,
        ConditionTypes.ControlPlaneReady => 4,
        ConditionTypes.WorkersReady => 5,
        ConditionTypes.NodesReady => 6,
        ConditionTypes.AddonsReady => 7,
        _ => 8,
    };

    private void AddEvent(MagnetarDbContext db, Cluster cluster, string type, string reason, string message)
        => db.ClusterEvents.Add(new ClusterEvent { ClusterUuid = cluster.Uuid, At = time.GetUtcNow(), Type = type, Reason = reason, Message = message });

    /// <summary>Health as the completing pass saw it (every server ACTIVE, nodes Ready); the health monitor looks at the API next.</summary>
    private Dictionary<string, string> BuildHealthReason(ClusterObservation obs)
    {
        var reason = new Dictionary<string, string> { ["api"] = apiAccess.Enabled ? "not checked yet" : HealthMonitor.ApiNotChecked };
        foreach (var node in obs.NodeGroups.SelectMany(g => g.Nodes)) reason[$"{node.Name}.Ready"] = node.Status == "ACTIVE" ? "True" : "False";
        return reason;
    }
}
