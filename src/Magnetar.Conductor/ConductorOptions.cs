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
}
