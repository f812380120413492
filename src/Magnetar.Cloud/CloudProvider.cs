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
    IReadOnlyList<NodeGroupSpec> NodeGroups,
    CloudCredential? Credential = null,
    string? DnsNameserver = null)
{
    /// <summary>
    /// No earlier pass, in any process, reached the cloud for this cluster (the conductor saves a mark before the first
    /// does): nothing of it can exist yet, so a provider need not look before it creates. A pass that is not the first
    /// must look, whatever it remembers.
    /// </summary>
    public bool FirstPass { get; init; }
}

/// <summary>
/// A cluster's own cloud credential (OpenStack: a restricted Keystone application credential of the user who created
/// the cluster), used to provision the cluster's resources in its project and by its cloud integration.
/// </summary>
public sealed record CloudCredential(string Id, string Secret, string UserId)
{
    public override string ToString() => $"CloudCredential {{ Id = {Id}, UserId = {UserId} }}"; // never the secret
}

/// <summary>A cluster being deleted: enough to find everything it owns and the credential to remove it with.</summary>
public sealed record ClusterRef(string Uuid, string Name, string ProjectId, CloudCredential? Credential)
{
    /// <summary>The user who created the cluster (whose credential it would have been).</summary>
    public string? UserId { get; init; }
}

/// <summary>Who asks for a new cluster, with the token of their request (only used while the request lasts).</summary>
public sealed record CredentialRequest(string ClusterUuid, string ClusterName, string UserId, string ProjectId, string CallerToken, IReadOnlyList<string> CallerRoles);

/// <summary>
/// A nodegroup's desired state. <see cref="Deleting"/> asks for all its nodes to go. <see cref="NodesToRemove"/> are
/// preferred when the group has more servers than <see cref="NodeCount"/> (a resize); <see cref="Replace"/> names
/// servers to delete whatever the count — nodes retired by an upgrade or by healing, whose successors exist — and
/// <see cref="NodeCount"/> counts the servers to keep besides them.
/// </summary>
public sealed record NodeGroupSpec(
    string Name,
    string Role,
    string FlavorId,
    string ImageId,
    int NodeCount,
    IReadOnlyList<string> NodesToRemove,
    bool Deleting,
    NodeUserDataFactory UserData)
{
    public IReadOnlyList<string> Replace { get; init; } = [];
    /// <summary>Servers of nodes being retired (e.g. healed for being in ERROR): their state is known and fails nothing.</summary>
    public IReadOnlyList<string> Retiring { get; init; } = [];

    /// <summary>
    /// Which of the nodegroup's servers (in index order, none of them being deleted already) go now: the replaced ones
    /// whatever the count, then, beyond <see cref="NodeCount"/> (none while <see cref="Deleting"/>), those the tenant
    /// named in <see cref="NodesToRemove"/> (by name or id), then the newest.
    /// </summary>
    public List<T> ServersToDelete<T>(IReadOnlyList<T> servers, Func<T, string> name, Func<T, string> id)
    {
        var victims = servers.Where(s => Replace.Contains(name(s))).ToList();
        var kept = servers.Except(victims).ToList();
        var surplus = kept.Count - (Deleting ? 0 : NodeCount);
        if (surplus <= 0) return victims;
        var named = kept.Where(s => NodesToRemove.Contains(name(s)) || NodesToRemove.Contains(id(s))).ToList();
        victims.AddRange(named.Concat(kept.Except(named).Reverse()).Take(surplus));
        return victims;
    }
}

/// <summary>
/// Renders the user-data of one server about to be created. Called once per server creation, never per pass: the
/// user-data carries a single-use bootstrap credential minted for that node.
/// </summary>
public delegate Task<string> NodeUserDataFactory(string nodeName, CancellationToken cancellationToken);

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

/// <summary>A server of a nodegroup: Address is the one Magnum shows (floating if any, else fixed); Addresses all of them.</summary>
public sealed record NodeObservation(string Name, string Id, string? Address, string Status, IReadOnlyList<string>? Addresses = null);

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

/// <summary>A cluster's server as the cloud shows it (the health monitor's view: no change is made).</summary>
public sealed record ServerState(string Name, string? NodeGroup, string Status);

/// <summary>Cloud resources a template or cluster names, checked before anything is accepted (as Magnum does).</summary>
public sealed record CloudReferences(string? ImageId, IReadOnlyList<string> FlavorIds, string? ExternalNetworkId, string? Keypair)
{
    /// <summary>The caller's token: references are checked with the caller's own rights (keypairs are per user).</summary>
    public string? CallerToken { get; init; }
    /// <summary>The cluster about to be created with these references: its first pass may use what the check found.</summary>
    public string? ForCluster { get; init; }
}

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
    Task<DeletionObservation> DeleteAsync(ClusterRef cluster, CancellationToken cancellationToken);

    /// <summary>
    /// Creates the cluster's own cloud credential while the creating request (and its token) lasts; null when this
    /// cloud needs none. DeleteAsync revokes it once everything else is gone.
    /// </summary>
    Task<CloudCredential?> IssueCredentialAsync(CredentialRequest request, CancellationToken cancellationToken);

    /// <summary>
    /// The servers of each cluster as they are now, changing nothing (the health monitor asks this for many clusters at
    /// once). A cluster the cloud could not be asked about is absent from the answer.
    /// </summary>
    Task<IReadOnlyDictionary<string, IReadOnlyList<ServerState>>> ObserveServersAsync(IReadOnlyList<ClusterRef> clusters, CancellationToken cancellationToken);

    /// <summary>Checks that image, flavors, external network and keypair exist for the caller's project; null when they do.</summary>
    Task<CloudReferenceError?> ValidateReferencesAsync(CloudReferences references, string projectId, CancellationToken cancellationToken);
}
