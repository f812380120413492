namespace Magnetar.Persistence;

/// <summary>
/// One serving Magnetar process (table <c>replicas</c>): written when it starts serving, refreshed by its heartbeat,
/// removed when it stops gracefully. A row whose heartbeat is older than the stale window (a crashed replica) no
/// longer counts. <c>magnetar migrate --check</c> reads it to tell whether pending migrations are safe with every
/// live replica (docs/rolling-upgrade.md).
/// </summary>
public sealed class ReplicaRecord
{
    /// <summary>host:pid:random, unique per process start.</summary>
    public string Id { get; set; } = "";
    public string Host { get; set; } = "";
    public int Pid { get; set; }
    /// <summary>The build's informational version (with the git commit where the build knew it).</summary>
    public string Version { get; set; } = "";
    /// <summary>The newest migration this build has (its name, without the timestamp, e.g. <c>ReplicaRegistry</c>).</summary>
    public string SchemaNewest { get; set; } = "";
    /// <summary>The oldest schema this build runs against: the database must have this migration applied.</summary>
    public string SchemaOldest { get; set; } = "";
    public DateTimeOffset StartedAt { get; set; }
    public DateTimeOffset HeartbeatAt { get; set; }
}

/// <summary><c>Magnetar:Replicas</c>: how often a replica refreshes its row, and when a row stops counting.</summary>
public sealed class ReplicaOptions
{
    public static readonly TimeSpan DefaultStale = TimeSpan.FromSeconds(30);
    public int HeartbeatSeconds { get; set; } = 10;
    /// <summary>A row whose heartbeat is older than this is a replica that is gone (crashed or cut off).</summary>
    public int StaleSeconds { get; set; } = 30;
    public TimeSpan StaleAfter => TimeSpan.FromSeconds(Math.Max(StaleSeconds, 1));
}
