namespace Magnetar.Cloud;

/// <summary>What a cluster should look like in the cloud, resolved by the conductor from the database.</summary>
public sealed record ClusterSpec(
    string ClusterUuid,
    string ClusterName,
    string ProjectId,
    string KubernetesVersion,
    string ImageId,
    string? Keypair,
    string? ExternalNetworkId,
    string? FixedNetwork,
    string? FixedSubnet,
    string NetworkDriver,
    bool MasterLbEnabled,
    bool FloatingIpEnabled,
    int? DockerVolumeSize,
    IReadOnlyDictionary<string, string> Labels,
    IReadOnlyList<NodeGroupSpec> NodeGroups);

/// <summary>A nodegroup's desired state. <see cref="Deleting"/> asks for all its nodes to go.</summary>
public sealed record NodeGroupSpec(
    string Name,
    string Role,
    string FlavorId,
    string ImageId,
    int NodeCount,
    IReadOnlyList<string> NodesToRemove,
    bool Deleting,
    string UserData);

public enum ProvisionPhase
{
    /// <summary>Work is under way; ask again later.</summary>
    Progressing,
    /// <summary>Everything desired exists and is ready.</summary>
    Ready,
    /// <summary>A step failed for good; <see cref="ClusterObservation.Message"/> says which and why.</summary>
    Failed,
}

public sealed record ConditionObservation(string Type, bool Status, string Reason, string? Message = null);

public sealed record NodeObservation(string Name, string Id, string? Address, string Status);

public sealed record NodeGroupObservation(string Name, IReadOnlyList<NodeObservation> Nodes, bool Ready, bool Gone, string? FailureMessage = null);

/// <summary>What the cloud looked like after one reconcile pass.</summary>
public sealed record ClusterObservation(
    ProvisionPhase Phase,
    string? Message,
    IReadOnlyList<ConditionObservation> Conditions,
    string? ApiAddress,
    IReadOnlyList<NodeGroupObservation> NodeGroups)
{
    public TimeSpan? RequeueAfter { get; init; }
}

/// <summary>What remains of a cluster being deleted.</summary>
public sealed record DeletionObservation(ProvisionPhase Phase, string? Message, IReadOnlyList<string> Remaining)
{
    public bool Gone => Phase == ProvisionPhase.Ready;
    public TimeSpan? RequeueAfter { get; init; }
}

/// <summary>Cloud resources a template or cluster names, checked before anything is accepted (as Magnum does).</summary>
public sealed record CloudReferences(string? ImageId, IReadOnlyList<string> FlavorIds, string? ExternalNetworkId, string? Keypair);

/// <summary>A reference the cloud does not know, with the HTTP status and message Magnum answers with.</summary>
public sealed record CloudReferenceError(int StatusCode, string Message);

/// <summary>
/// The seam between the conductor and a cloud. Both calls are level-triggered: they look at what exists
/// (found by the cluster uuid tag), create or delete what differs from the desired state, and return at once
/// with what they saw. They are called again until they report Ready; any call may be the first after a crash.
/// </summary>
public interface ICloudProvider
{
    string Name { get; }
    Task<ClusterObservation> ReconcileAsync(ClusterSpec spec, CancellationToken cancellationToken);
    Task<DeletionObservation> DeleteAsync(string clusterUuid, string clusterName, CancellationToken cancellationToken);

    /// <summary>Checks that image, flavors, external network and keypair exist for the caller's project; null when they do.</summary>
    Task<CloudReferenceError?> ValidateReferencesAsync(CloudReferences references, string projectId, CancellationToken cancellationToken);
}
