using System.Reflection;
using Magnetar.Conductor;
using Magnetar.Persistence;
using Microsoft.EntityFrameworkCore;

namespace Magnetar.Server;

/// <summary>
/// Keeps this process's row in <c>replicas</c> while it serves: written before the API listens (after the startup
/// migrations, which create the table), refreshed every <see cref="ReplicaOptions.HeartbeatSeconds"/>, deleted on a
/// graceful stop. The id is the conductor's lease owner name, so a replica's leases can be told by its row.
/// </summary>
public sealed class ReplicaRegistration(
    IDbContextFactory<MagnetarDbContext> dbFactory,
    ConductorIdentity identity,
    ReplicaOptions options,
    TimeProvider time,
    ILogger<ReplicaRegistration> logger) : BackgroundService
{
    /// <summary>The build's informational version (the SDK appends the git commit when it builds from a repository).</summary>
    // Magnetar's own assembly, not the entry one (a test host's would be the test SDK's version).
    public static string Version { get; } = typeof(ReplicaRegistration).Assembly
        .GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

    private DateTimeOffset _started;
    private string _newest = "";

    public override async Task StartAsync(CancellationToken ct)
    {
        _started = time.GetUtcNow();
        await using (var db = await dbFactory.CreateDbContextAsync(ct))
        {
            // The newest migration's id is enough (SchemaPolicy.Migrations would make and classify every migration again).
            _newest = SchemaPolicy.NameOf(db.Database.GetMigrations().Order(StringComparer.Ordinal).Last());
            // This process's row cannot exist yet (its id is new): inserted without the heartbeat's look-up, and the rows
            // of replicas long gone are left to the first heartbeat: two statements fewer before the API listens.
            db.Replicas.Add(NewRow(_started));
            try
            {
                await db.SaveChangesAsync(ct);
                logger.LogInformation("Replica {Id} registered (version {Version}, schema {Schema})", identity.Owner, Version, _newest);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // Serving matters more than being listed: the heartbeat retries.
                logger.LogWarning(ex, "Replica registration failed; retrying with the heartbeat");
            }
        }
        await base.StartAsync(ct);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try { await Task.Delay(TimeSpan.FromSeconds(Math.Max(options.HeartbeatSeconds, 1)), time, stoppingToken); }
            catch (OperationCanceledException) { break; }
            try { await BeatAsync(stoppingToken); }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { break; }
            catch (Exception ex) { logger.LogWarning(ex, "Replica heartbeat failed"); }
        }
    }

    private async Task BeatAsync(CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var now = time.GetUtcNow();
        var row = await db.Replicas.FirstOrDefaultAsync(r => r.Id == identity.Owner, ct);
        if (row is null) db.Replicas.Add(NewRow(now));
        else row.HeartbeatAt = now;
        await db.SaveChangesAsync(ct);
        // Rows of replicas that crashed long ago: no longer live, and no longer worth listing.
        var forgotten = now - 10 * options.StaleAfter;
        await db.Replicas.Where(r => r.HeartbeatAt < forgotten).ExecuteDeleteAsync(ct);
    }

    private ReplicaRecord NewRow(DateTimeOffset heartbeat) => new()
    {
        Id = identity.Owner, Host = identity.Host, Pid = Environment.ProcessId, Version = Version.Length > 256 ? Version[..256] : Version,
        SchemaNewest = _newest, SchemaOldest = _newest, StartedAt = _started, HeartbeatAt = heartbeat,
    };

    public override async Task StopAsync(CancellationToken ct)
    {
        await base.StopAsync(ct);
        try
        {
            await using var db = await dbFactory.CreateDbContextAsync(ct);
            await db.Replicas.Where(r => r.Id == identity.Owner).ExecuteDeleteAsync(ct);
        }
        catch (Exception ex) { logger.LogWarning(ex, "Could not remove this replica's row; it expires with its heartbeat"); }
    }
}
