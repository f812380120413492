using Magnetar.Domain;
using Magnetar.Persistence;
using Microsoft.EntityFrameworkCore;

namespace Magnetar.Conductor;

/// <summary>
/// Who takes part in a cluster's CA rotation and whose turn it is. The participants are the nodes that fetched their
/// bootstrap bundle (they hold certificates of the cluster CA; a node that never booted has nothing to rotate). In
/// every step the control-plane nodes go one at a time — the first control-plane node first, so that its cluster-wide
/// work (restarting workloads, publishing the new CA in kube-public/cluster-info) happens before the others' — and the
/// workers all at once after them. The conductor and the task endpoint ask the same question here, so a node is
/// handed a step exactly when the conductor waits for it.
/// </summary>
public static class CaRotation
{
    /// <summary>The cluster's participating nodes in rotation order: the first control-plane node, the others, then the workers.</summary>
    public static async Task<List<NodeBootstrapState>> ParticipantsAsync(MagnetarDbContext db, string clusterUuid, CancellationToken ct)
    {
        var fetched = await NodeBootstrapper.FetchedNodesAsync(db, clusterUuid, ct);
        var states = await db.NodeStates.AsNoTracking().Where(s => s.ClusterUuid == clusterUuid && fetched.Contains(s.NodeName)).ToListAsync(ct);
        return states.OrderBy(s => s.Role == NodeRoles.Init ? 0 : s.Role == NodeRoles.Worker ? 2 : 1).ThenBy(s => s.NodeName, StringComparer.Ordinal).ToList();
    }

    /// <summary>The nodes that are to carry out <paramref name="step"/> now (empty: every participant finished it).</summary>
    public static List<NodeBootstrapState> Turn(IReadOnlyList<NodeBootstrapState> participants, string step)
    {
        var controlPlane = participants.FirstOrDefault(p => p.Role != NodeRoles.Worker && p.RotationStep != step);
        if (controlPlane is not null) return [controlPlane];
        return participants.Where(p => p.RotationStep != step).ToList();
    }

    /// <summary>The node that does a step's cluster-wide work: the first participating control-plane node.</summary>
    public static bool IsLead(IReadOnlyList<NodeBootstrapState> participants, NodeBootstrapState node)
        => participants.FirstOrDefault(p => p.Role != NodeRoles.Worker) is { } lead && lead.NodeName == node.NodeName;
}
