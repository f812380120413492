namespace Magnetar.Persistence;

/// <summary>
/// State of the <b>simulated cloud</b> (Magnetar.Cloud.Simulated): one row per fake cloud resource.
/// It lives in Magnetar's database so that the simulation survives restarts and is shared by replicas,
/// the way a real cloud's state outlives the service that drives it. Never used with a real cloud.
/// </summary>
public sealed class SimulatedResource
{
    public long Id { get; set; }
    /// <summary>The tag every resource carries: the owning cluster's uuid.</summary>
    public string ClusterUuid { get; set; } = "";
    public string Kind { get; set; } = "";
    public string Name { get; set; } = "";
    public string ResourceId { get; set; } = "";
    public string? NodeGroup { get; set; }
    public string Status { get; set; } = "BUILD";
    public string? Address { get; set; }
    public string? FloatingAddress { get; set; }
    public string? Detail { get; set; }
    /// <summary>A simulated server's user-data, kept as Nova keeps it (a test node reads it back).</summary>
    public string? UserData { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset ReadyAt { get; set; }
    public DateTimeOffset? DeleteRequestedAt { get; set; }
    public DateTimeOffset? GoneAt { get; set; }
}
