namespace Magnetar.Conductor;

/// <summary>Settings of the reconciling conductor (<c>Magnetar:Conductor</c>).</summary>
public sealed class ConductorOptions
{
    /// <summary>Run the conductor in this process (API-only replicas set false).</summary>
    public bool Enabled { get; set; } = true;
    /// <summary>How often to look for due work when nothing pokes the conductor.</summary>
    public int PollIntervalMs { get; set; } = 1000;
    /// <summary>How long a claim on a cluster lasts; a crashed replica's work is taken over after this.</summary>
    public int LeaseSeconds { get; set; } = 60;
    /// <summary>Clusters reconciled at the same time by one process.</summary>
    public int MaxParallel { get; set; } = 8;
    /// <summary>Interval of the service heartbeat shown by <c>GET /v1/mservices</c>.</summary>
    public int HeartbeatSeconds { get; set; } = 10;
    /// <summary>Kubernetes version used when neither template nor cluster sets the kube_tag label.</summary>
    public string DefaultKubernetesVersion { get; set; } = "v1.31.1";

    /// <summary>
    /// Whether Magnetar talks to its clusters' Kubernetes APIs (health, drains). Default: yes on OpenStack; no on the
    /// simulated cloud, where no Kubernetes runs (drains are then skipped and health comes from the cloud and the nodes' agents).
    /// </summary>
    public bool? ReachClusterApis { get; set; }
    /// <summary>For tests only: the URL used for every cluster's API instead of its api_address (a stand-in API server).</summary>
    public string? ClusterApiUrlOverride { get; set; }
    /// <summary>How long draining one node may take before the upgrade or healing stops (see <see cref="DrainTimeoutAction"/>).</summary>
    public int DrainTimeoutSeconds { get; set; } = 600;
    /// <summary><c>fail</c> (default): the operation stops with UPDATE_FAILED naming the node and the pod that blocks; <c>proceed</c>: the node is replaced anyway.</summary>
    public string DrainTimeoutAction { get; set; } = "fail";
    /// <summary>How long an upgrade or healing may wait for one step (a new node to join and report its version, a node to leave etcd) before it stops.</summary>
    public int ReplaceStepTimeoutSeconds { get; set; } = 1800;
}
