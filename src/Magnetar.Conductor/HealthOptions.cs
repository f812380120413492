namespace Magnetar.Conductor;

/// <summary>Settings of the health monitor and of auto-healing (<c>Magnetar:Health</c>).</summary>
public sealed class HealthOptions
{
    /// <summary>Run the health monitor in this process (one replica at a time runs it, under a lease).</summary>
    public bool Enabled { get; set; } = true;
    /// <summary>How often every idle cluster's health is looked at again.</summary>
    public int IntervalSeconds { get; set; } = 60;
    /// <summary>Clusters read and judged together (one query each for clusters, node records, credentials, and one cloud call for all).</summary>
    public int BatchSize { get; set; } = 500;
    /// <summary>Cluster APIs asked at the same time.</summary>
    public int MaxParallelApiChecks { get; set; } = 16;
    /// <summary>
    /// A bootstrapped node whose agent has not asked for work for this long is unhealthy ("silent"). The agent asks
    /// every 30 s, so the default allows three missed polls.
    /// </summary>
    public int HeartbeatTimeoutSeconds { get; set; } = 120;
    /// <summary>How long a node must stay unhealthy before auto-healing replaces it; label <c>auto_healing_unhealthy_seconds</c> overrides it per cluster.</summary>
    public int UnhealthySeconds { get; set; } = 300;
    /// <summary>
    /// No healing in a nodegroup when more than this share of its nodes is unhealthy at once (likely a network partition
    /// or a cloud outage, which replacing nodes would make worse); label <c>auto_healing_max_unhealthy_percent</c>.
    /// </summary>
    public int MaxUnhealthyPercent { get; set; } = 40;
    /// <summary>At most one node replaced by healing per cluster in this interval (a rate limit).</summary>
    public int HealIntervalSeconds { get; set; } = 300;
}
