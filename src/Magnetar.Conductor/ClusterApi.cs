namespace Magnetar.Conductor;

/// <summary>
/// How Magnetar reaches one tenant cluster's Kubernetes API: its URL, the cluster CA that signs the API server's
/// serving certificate, and a client certificate Magnetar issued itself from that CA (short-lived, O=system:masters).
/// </summary>
public sealed record ClusterApiAccess(string ClusterUuid, Uri Server, string CaPem, string ClientCertificatePem, string ClientKeyPem)
{
    public override string ToString() => $"ClusterApiAccess {{ {ClusterUuid} @ {Server} }}"; // never the key
}

/// <summary>A Node object as the API server shows it.</summary>
/// <param name="Ready">its Ready condition is True</param>
/// <param name="ReadyReason">the Ready condition's reason (e.g. KubeletNotReady, NodeStatusUnknown), null when absent</param>
/// <param name="KubeletVersion">status.nodeInfo.kubeletVersion (e.g. v1.32.1)</param>
public sealed record KubeNode(string Name, bool Ready, string? ReadyReason, string? KubeletVersion, bool Unschedulable);

/// <summary>What one look at a cluster's API found.</summary>
/// <param name="Reachable">the API server answered at all (TCP + TLS + HTTP); false: <paramref name="Error"/> says why</param>
/// <param name="Ready">GET /readyz answered 200</param>
/// <param name="Detail">the first lines of /readyz's body when it was not 200, or the error</param>
public sealed record ClusterApiHealth(bool Reachable, bool Ready, string? Detail, IReadOnlyList<KubeNode> Nodes)
{
    public static ClusterApiHealth Unreachable(string error) => new(false, false, error, []);
}

/// <summary>One round of draining a node.</summary>
/// <param name="Drained">no pod that must leave is left on the node (DaemonSet pods and mirror/static pods stay, as kubectl drain leaves them)</param>
/// <param name="NodeMissing">the API has no Node of that name (nothing to drain)</param>
/// <param name="RemainingPods">namespace/name of the pods still to leave</param>
/// <param name="Blocked">a pod whose eviction was refused, with the API's words: "namespace/name: Cannot evict pod as it would violate the pod's disruption budget."</param>
public sealed record DrainProgress(bool Drained, bool NodeMissing, IReadOnlyList<string> RemainingPods, string? Blocked);

/// <summary>
/// Magnetar's client of its clusters' Kubernetes APIs: health (readyz + nodes), and the node operations that node
/// replacement needs (cordon and drain through the Eviction API, which honours PodDisruptionBudgets; delete the Node).
/// Every call is bounded by a short timeout and never throws for an API that is down or answers with an error:
/// that is reported in the result (or, for <see cref="DeleteNodeAsync"/>, as false).
/// </summary>
public interface IClusterApi
{
    Task<ClusterApiHealth> GetHealthAsync(ClusterApiAccess access, CancellationToken cancellationToken);

    /// <summary>Cordons the node (spec.unschedulable) and asks for the eviction of every pod that must leave; returns what is left.</summary>
    Task<DrainProgress> DrainAsync(ClusterApiAccess access, string nodeName, CancellationToken cancellationToken);

    /// <summary>Deletes the Node object (404 counts as done). False when the API could not be reached or refused.</summary>
    Task<bool> DeleteNodeAsync(ClusterApiAccess access, string nodeName, CancellationToken cancellationToken);

    /// <summary>
    /// Sets <c>kubernetesVersion</c> in <c>kube-system/kubeadm-config</c>'s ClusterConfiguration — what <c>kubeadm join
    /// --control-plane</c> reads to choose the control plane's images — as Cluster API's control-plane controller does
    /// before machines of a new version join. Null when done (or already so), else why not.
    /// </summary>
    Task<string?> SetKubeadmKubernetesVersionAsync(ClusterApiAccess access, string version, CancellationToken cancellationToken);

    /// <summary>
    /// Points the <c>kube-system/kube-proxy</c> DaemonSet (kubeadm's addon) at the version's image, as <c>kubeadm upgrade
    /// apply</c> does once the control plane runs it. Null when done, already so, or there is no kube-proxy (a CNI that
    /// replaces it); else why not.
    /// </summary>
    Task<string?> SetKubeProxyVersionAsync(ClusterApiAccess access, string version, CancellationToken cancellationToken);
}
