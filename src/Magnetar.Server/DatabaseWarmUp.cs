using Magnetar.Persistence;
using Microsoft.EntityFrameworkCore;

namespace Magnetar.Server;

/// <summary>
/// The database side of a start, begun on another core as soon as the services exist, while the request pipeline is
/// configured and the host starts (<c>serve</c> only): EF's services for a context, the compiled model's relational
/// mapping (made on first use: SaveChanges and queries need it) and a first, pooled connection (on PostgreSQL a login
/// and Npgsql's type loading, ≈ 0.1 s). <see cref="StartupTasks"/> waits for it before checking the schema, which
/// still decides everything: no table is read or written here, and a failure is only logged (the check meets it again).
/// </summary>
public sealed class DatabaseWarmUp(IDbContextFactory<MagnetarDbContext> dbFactory, ILogger<DatabaseWarmUp> logger)
{
    private Task? _warming;

    /// <summary>Begins the warm-up on the thread pool, once (a host that never calls it waits for nothing).</summary>
    public void Start() => _warming ??= Task.Run(WarmAsync);

    /// <summary>Completes when the warm-up has ended, whether or not it succeeded (never faults).</summary>
    public Task Done => _warming ?? Task.CompletedTask;

    private async Task WarmAsync()
    {
        try
        {
            await using var db = await dbFactory.CreateDbContextAsync();
            _ = db.Model.GetRelationalModel();
            // Not through the retrying execution strategy: a database that is down is for the check to report, at once.
            var connection = db.Database.GetDbConnection();
            await connection.OpenAsync();
            await connection.CloseAsync();
        }
        catch (Exception e)
        {
            logger.LogDebug(e, "Database warm-up failed; the schema check will tell");
        }
    }
}
