using Magnetar.Bootstrap.Pki;
using Magnetar.Domain;
using Magnetar.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace Magnetar.Conductor;

/// <summary>
/// The work a booted node's agent (magnetar-node-agent.timer → <c>magnetar-node task</c>) is handed after bootstrap, with
/// its report credential: the steps of a CA rotation (<see cref="CaRotation"/>), and renewals of the certificates that
/// would otherwise expire — kubeadm's control-plane certificates and the kubelet serving certificate.
/// </summary>
public sealed partial class NodeBootstrapper
{
    /// <summary>A node renewed (or failed to renew) certificates it was handed: the expiry moves on; a failure is a Warning event.</summary>
    private async Task<BootstrapResponse> ReportRenewalAsync(MagnetarDbContext db, NodeBootstrapState state, string phase, bool ok, int? code, string tail,
        DateTimeOffset now, CancellationToken ct)
    {
        // Not a bootstrap phase: the node stays Ready; a failure is an event, and the agent is handed the renewal again.
        var serving = phase == NodePhases.KubeletServingRenewed;
        if (ok && serving) state.ServingCertificateExpiresAt = now + ServingValidity;
        if (ok && !serving) state.ControlPlaneCertificatesExpireAt = now + KubeadmCertificateValidity;
        var what = serving ? "kubelet serving certificate" : "control-plane certificates";
        AddEvent(db, state.ClusterUuid, ok ? "Normal" : "Warning", serving ? "KubeletServingCertificate" : "ControlPlaneCertificates", ok
            ? $"node {state.NodeName}: {what} renewed"
            : $"node {state.NodeName}: renewing the {what} failed" + (code is null ? "" : $" with exit code {code}") +
              (string.IsNullOrWhiteSpace(tail) ? "" : ": " + LastLines(tail, 3)));
        await db.SaveChangesAsync(ct);
        return new BootstrapResponse(204);
    }

    /// <summary>
    /// A retiring control-plane node left etcd (its server may go now), or failed to: then the node is failed with its
    /// own words, which stops the upgrade or healing that retires it with the node, step and log tail named.
    /// </summary>
    /// <param name="by">the healthy control-plane node that removed a dead node's member (null: the node itself)</param>
    private async Task<BootstrapResponse> ReportEtcdLeftAsync(MagnetarDbContext db, NodeBootstrapState state, bool ok, int? code, string tail,
        DateTimeOffset now, CancellationToken ct, string? by = null)
    {
        if (state.RetireStep != NodeRetireSteps.LeaveEtcd)
            return new BootstrapResponse(409, $"node {state.NodeName} is not asked to leave etcd (retirement step: {state.RetireStep ?? "none"})");
        if (ok)
        {
            state.RetireStep = NodeRetireSteps.Remove;
            state.RetireStepAt = now;
        }
        else
        {
            state.Phase = NodePhases.EtcdMemberRemoved;
            state.Failed = true;
            state.ExitCode = code;
            state.LogTail = by is null ? tail : $"(on {by}) {tail}";
        }
        var who = by is null ? $"node {state.NodeName}" : $"node {by}";
        AddEvent(db, state.ClusterUuid, ok ? "Normal" : "Warning", ok ? "NodeLeftEtcd" : "NodeLeaveEtcdFailed", ok
            ? $"{who} removed the etcd member of {state.NodeName}"
            : $"{who}: removing the etcd member of {state.NodeName} failed" + (code is null ? "" : $" with exit code {code}"));
        await db.SaveChangesAsync(ct);
        await PokeOperationAsync(db, state.ClusterUuid, now, ct);
        return new BootstrapResponse(204);
    }

    /// <summary>
    /// The dead control-plane node (healed) whose etcd member this control-plane node is to remove: the first healthy
    /// control-plane node by name does it, so that exactly one is asked. Null when none is due or another node's turn.
    /// </summary>
    private static async Task<string?> DeadMemberToRemoveAsync(MagnetarDbContext db, string clusterUuid, string nodeName, CancellationToken ct)
    {
        var dead = await db.NodeStates.AsNoTracking()
            .Where(s => s.ClusterUuid == clusterUuid && s.RetireStep == NodeRetireSteps.LeaveEtcd && s.RetireReason!.StartsWith(NodeReplacer.HealingReason))
            .OrderBy(s => s.NodeName).Select(s => s.NodeName).FirstOrDefaultAsync(ct);
        if (dead is null) return null;
        var helper = await db.NodeStates.AsNoTracking()
            .Where(s => s.ClusterUuid == clusterUuid && s.Role != NodeRoles.Worker && s.RetireStep == null && s.RetireReason == null
                && s.Phase == NodePhases.Ready && !s.Failed && s.UnhealthySince == null && !s.NodeName.Contains(InitMarker.Infix))
            .OrderBy(s => s.NodeName).Select(s => s.NodeName).FirstOrDefaultAsync(ct);
        return helper == nodeName ? dead : null;
    }

    /// <summary>A kubelet version as <c>kubelet --version</c> prints it (v1.32.1, v1.32.1-rc.0, …).</summary>
    private static bool IsVersion(string v) => v.Length <= 64 && System.Text.RegularExpressions.Regex.IsMatch(v, @"^v\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]*)?$");

    /// <summary>A node finished (or failed) a step of its cluster's CA rotation.</summary>
    private async Task<BootstrapResponse> ReportRotationAsync(MagnetarDbContext db, NodeBootstrapState state, string step, bool failed, int? code, string tail,
        DateTimeOffset now, CancellationToken ct)
    {
        var current = await db.Clusters.Where(c => c.Uuid == state.ClusterUuid).Select(c => new { c.CaRotationStep, c.Operation }).FirstOrDefaultAsync(ct);
        if (current?.CaRotationStep != step || current.Operation != ClusterOperations.RotateCa)
            return new BootstrapResponse(409, $"the cluster is not at CA rotation step {step} (now: {current?.CaRotationStep ?? "no rotation"})");
        if (failed)
        {
            state.RotationFailure = $"node {state.NodeName} ({state.Role}) failed at step {step}"
                + (code is null ? "" : $" with exit code {code}")
                + (string.IsNullOrWhiteSpace(tail) ? "" : "; last log lines:\n" + LastLines(tail, 15));
            AddEvent(db, state.ClusterUuid, "Warning", "NodeCaRotationFailed", $"node {state.NodeName}: CA rotation step {step} failed" + (code is null ? "" : $" with exit code {code}"));
        }
        else
        {
            state.RotationStep = step;
            state.RotationFailure = null;
            if (step == CaRotationSteps.Reissue)
            {
                // The step gave it a new serving certificate, and kubeadm re-issued a control-plane node's own.
                state.ServingCertificateExpiresAt = now + ServingValidity;
                if (state.Role != NodeRoles.Worker) state.ControlPlaneCertificatesExpireAt = now + KubeadmCertificateValidity;
            }
            AddEvent(db, state.ClusterUuid, "Normal", "NodeCaRotation", $"node {state.NodeName}: CA rotation step {step} done");
        }
        state.LastReportAt = now;
        await db.SaveChangesAsync(ct);
        await db.Clusters.Where(c => c.Uuid == state.ClusterUuid && c.Operation == ClusterOperations.RotateCa)
            .ExecuteUpdateAsync(u => u.SetProperty(c => c.NextReconcileAt, now).SetProperty(c => c.CaRotationProgressAt, now), ct);
        signal.Poke();
        return new BootstrapResponse(204);
    }

    /// <summary>
    /// What a booted node's agent asks for (with its report credential): the files and settings of the CA rotation
    /// step it is to carry out now, or of a renewal that is due, as a tar.gz with <c>task.env</c>; 204 when there is
    /// nothing for it to do (also while a failed rotation waits to be resumed).
    /// </summary>
    public async Task<BootstrapResponse> ClaimTaskAsync(string? authorization, CancellationToken ct, string? kubeletVersion = null)
    {
        if (kubeletVersion is not null && !IsVersion(kubeletVersion)) return new BootstrapResponse(400, $"kubelet_version '{Sanitize(kubeletVersion)}' is not a version like v1.32.1");
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var (credential, error) = await AuthenticateAsync(db, authorization, NodeCredentialKinds.Report, ct);
        if (credential is null) return BootstrapResponse.Refused(error!);
        var cluster = await db.Clusters.AsNoTracking().FirstOrDefaultAsync(c => c.Uuid == credential.ClusterUuid, ct);
        if (cluster is null || cluster.Operation == ClusterOperations.Delete) return new BootstrapResponse(410, "the node's cluster is being deleted");
        // The poll is the node's heartbeat (the health monitor reads it), and says which kubelet it runs.
        var now = time.GetUtcNow();
        var heartbeat = db.NodeStates.Where(s => s.ClusterUuid == credential.ClusterUuid && s.NodeName == credential.NodeName);
        var self = await heartbeat.Select(s => new { s.Role, s.RetireStep, s.RetireReason, s.Phase, s.UnhealthySince, s.LastSeenAt, s.KubeletVersion })
            .FirstOrDefaultAsync(ct);
        // Written only when the last heartbeat is older than a third of the health monitor's heartbeat timeout (every other
        // 30 s poll at the default 120 s) or the kubelet version changed: a poll that changes nothing writes nothing.
        var stale = now - TimeSpan.FromSeconds(Math.Max(1, healthOptions.HeartbeatTimeoutSeconds / 3));
        if (self is not null && (self.LastSeenAt is null || self.LastSeenAt < stale || (kubeletVersion is not null && self.KubeletVersion != kubeletVersion)))
            await heartbeat.ExecuteUpdateAsync(u => u.SetProperty(s => s.LastSeenAt, now).SetProperty(s => s.KubeletVersion, s => kubeletVersion ?? s.KubeletVersion), ct);
        if (self?.RetireStep == NodeRetireSteps.LeaveEtcd)
        {
            logger.LogInformation("Cluster {Uuid}: node {Node} is retired and leaves etcd", cluster.Uuid, credential.NodeName);
            return new BootstrapResponse(200, null, Tar([("task.env", "MAGNETAR_TASK=leave-etcd\n", Public)], now));
        }
        if (self is { RetireStep: null, RetireReason: null, Phase: NodePhases.Ready, UnhealthySince: null } && self.Role != NodeRoles.Worker
            && await DeadMemberToRemoveAsync(db, cluster.Uuid, credential.NodeName, ct) is { } dead)
        {
            logger.LogInformation("Cluster {Uuid}: node {Node} removes the etcd member of dead node {Dead}", cluster.Uuid, credential.NodeName, dead);
            return new BootstrapResponse(200, null, Tar([("task.env", $"MAGNETAR_TASK=remove-etcd-member\nMAGNETAR_TASK_MEMBER={dead}\n", Public)], now));
        }
        if (cluster.Operation != ClusterOperations.RotateCa || cluster.CaRotationStep is not { } step)
            return cluster.CaRotationStep is null ? await RenewalTaskAsync(db, cluster, credential.NodeName, ct) : new BootstrapResponse(204);
        var participants = await CaRotation.ParticipantsAsync(db, cluster.Uuid, ct);
        var state = CaRotation.Turn(participants, step).FirstOrDefault(p => p.NodeName == credential.NodeName);
        if (state is null) return new BootstrapResponse(204);
        if (await certificates.GetRotationAuthoritiesAsync(db, cluster, ct) is not var (current, next))
            return new BootstrapResponse(503, "the cluster's rotation has no new CA yet; ask again");

        var controlPlane = state.Role != NodeRoles.Worker;
        var lead = CaRotation.IsLead(participants, state);
        var env = $"MAGNETAR_TASK=rotate-ca\nMAGNETAR_TASK_STEP={step}\nMAGNETAR_TASK_LEAD={(lead ? 1 : 0)}\n";
        var files = new List<(string Path, string Content, UnixFileMode Mode)>
        {
            ("task.env", env, Public),
            ("ca-current.crt", current.CertificatePem, Public),
            ("ca-next.crt", next.CertificatePem, Public),
        };
        if (step == CaRotationSteps.Reissue)
        {
            if (controlPlane) files.Add(("ca-next.key", next.PrivateKeyPem, Private));
            // The kubelet renews its client certificate itself (through the controller manager's signer, a year as kubeadm's).
            files.Add(("kubelet-client.pem", NodeCertificates.KubeletClientPem(next, state.NodeName, KubeadmCertificateValidity), Private));
            var serving = NodeCertificates.KubeletServing(next, state.NodeName, (state.Addresses ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries), ServingValidity);
            files.Add(("kubelet-serving.crt", serving.CertificatePem, Public));
            files.Add(("kubelet-serving.key", serving.PrivateKeyPem, Private));
        }
        logger.LogInformation("Cluster {Uuid}: node {Node} takes CA rotation step {Step}", cluster.Uuid, state.NodeName, step);
        return new BootstrapResponse(200, null, Tar(files, time.GetUtcNow()));
    }

    private TimeSpan ServingValidity => TimeSpan.FromDays(options.KubeletServingCertificateDays);
    /// <summary>kubeadm's default validity of the certificates it issues (ClusterConfiguration certificateValidityPeriod, 8760h).</summary>
    public static readonly TimeSpan KubeadmCertificateValidity = TimeSpan.FromDays(365);
    /// <summary>Control-plane certificates are renewed when less than this is left of them.</summary>
    public static readonly TimeSpan ControlPlaneRenewBefore = TimeSpan.FromDays(90);

    /// <summary>
    /// The renewals due on a node outside CA rotations; 204 when none is. Control-plane certificates (kubeadm's, one
    /// year): <c>kubeadm certs renew all</c> and a control-plane restart, one control-plane node at a time — the one
    /// whose certificates expire first — so that the cluster's API stays up. The kubelet serving certificate (the kubelet
    /// does not renew a certificate it was given): a new one when less than a third of its validity is left.
    /// </summary>
    private async Task<BootstrapResponse> RenewalTaskAsync(MagnetarDbContext db, Cluster cluster, string nodeName, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        // Every node asks every 30 s: one indexed read when nothing is due, the other control-plane nodes only when this one is.
        var state = await db.NodeStates.AsNoTracking().FirstOrDefaultAsync(s => s.ClusterUuid == cluster.Uuid && s.NodeName == nodeName, ct);
        if (state is null) return new BootstrapResponse(204);
        var dueBefore = now + ControlPlaneRenewBefore;
        if (state.ControlPlaneCertificatesExpireAt < dueBefore)
        {
            var first = await db.NodeStates.AsNoTracking()
                .Where(s => s.ClusterUuid == cluster.Uuid && s.ControlPlaneCertificatesExpireAt != null && s.ControlPlaneCertificatesExpireAt < dueBefore)
                .OrderBy(s => s.ControlPlaneCertificatesExpireAt).ThenBy(s => s.NodeName).Select(s => s.NodeName).FirstAsync(ct);
            if (first == nodeName) // else another control-plane node renews first
            {
                logger.LogInformation("Cluster {Uuid}: node {Node} renews its control-plane certificates (they expire {Expires:u})", cluster.Uuid, nodeName, state.ControlPlaneCertificatesExpireAt);
                return new BootstrapResponse(200, null, Tar([("task.env", "MAGNETAR_TASK=renew-control-plane-certs\n", Public)], now));
            }
        }
        if (state.ServingCertificateExpiresAt is not { } expires || expires - now > ServingValidity / 3 || string.IsNullOrEmpty(state.Addresses))
            return new BootstrapResponse(204);
        var node = await certificates.GetNodeSecretsAsync(db, cluster, ct);
        var serving = NodeCertificates.KubeletServing(node.ClusterCa, nodeName, state.Addresses.Split(','), ServingValidity);
        logger.LogInformation("Cluster {Uuid}: node {Node} is handed a renewed kubelet serving certificate (the current one expires {Expires:u})", cluster.Uuid, nodeName, expires);
        return new BootstrapResponse(200, null, Tar(
        [
            ("task.env", "MAGNETAR_TASK=renew-kubelet-serving\n", Public),
            ("kubelet-serving.crt", serving.CertificatePem, Public),
            ("kubelet-serving.key", serving.PrivateKeyPem, Private),
        ], now));
    }
}
