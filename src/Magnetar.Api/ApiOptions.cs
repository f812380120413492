namespace Magnetar.Api;

/// <summary>API settings (<c>Magnetar:Api</c> and <c>Magnetar:PublicUrl</c>).</summary>
public sealed class ApiOptions
{
    /// <summary>Base URL clients reach this service at (links, catalog). Empty: derived from each request.</summary>
    public string? PublicUrl { get; set; }
    /// <summary>Whether the cluster-autoscaler endpoint is on (Magnetar:Autoscaler:Port): clusters may ask for auto_scaling_enabled.</summary>
    public bool AutoscalerEnabled { get; set; }
    /// <summary>Keystone URL announced in WWW-Authenticate on 401.</summary>
    public string? AuthUrl { get; set; }
    /// <summary>Magnum's [quotas] max_clusters_per_project: the limit for projects without an explicit quota.</summary>
    public int DefaultMaxClustersPerProject { get; set; } = 20;
    /// <summary>
    /// Report a stack_id for clusters (the cluster's uuid) and their default nodegroups. Set by the host only in standalone
    /// mode, where a read-only orchestration endpoint describes each cluster as a stack; elsewhere Magnetar has no Heat
    /// stack to point at and stack_id stays null.
    /// </summary>
    public bool ClusterStacks { get; set; }
    /// <summary>Largest accepted request body, in bytes.</summary>
    public long MaxRequestBodyBytes { get; set; } = 1024 * 1024;
    /// <summary>Requests per second each project may make on average (a token bucket per project; 0 turns limiting off).</summary>
    public int RateLimitPerSecond { get; set; } = 50;
    /// <summary>How many requests a project may make at once above that rate.</summary>
    public int RateLimitBurst { get; set; } = 200;
    /// <summary>
    /// Memory for rendered cluster lists and shows, kept while the database's list version (<c>list_versions</c>, bumped
    /// by triggers on every change they show) is unchanged; 0 renders every request.
    /// </summary>
    public long RenderedCacheBytes { get; set; } = 32 * 1024 * 1024;
}
