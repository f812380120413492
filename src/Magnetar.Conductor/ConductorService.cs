using Magnetar.Domain;
using Magnetar.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Magnetar.Conductor;

/// <summary>
/// The conductor loop. The database is the queue: a cluster is due when <c>NextReconcileAt</c> has passed, and a
/// replica works on it only after claiming a lease with a conditional UPDATE (portable to SQLite and PostgreSQL).
/// A lease that is not released — the replica died — expires, and any replica picks the cluster up again.
/// </summary>
public sealed class ConductorService(
    IServiceProvider services,
    IDbContextFactory<MagnetarDbContext> dbFactory,
    ReconcileSignal signal,
    ConductorOptions options,
    ConductorIdentity identity,
    TimeProvider time,
    ILogger<ConductorService> logger) : BackgroundService
{
    private readonly SemaphoreSlim _slots = new(Math.Max(1, options.MaxParallel));
    private readonly HashSet<long> _running = new();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        logger.LogInformation("Conductor {Owner} started (lease {Lease}s, {Parallel} in parallel)", identity.Owner, options.LeaseSeconds, options.MaxParallel);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await DispatchDueAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { break; }
            catch (Exception ex)
            {
                logger.LogError(ex, "Conductor poll failed; retrying");
            }
            try { await signal.WaitAsync(TimeSpan.FromMilliseconds(options.PollIntervalMs), stoppingToken); }
            catch (OperationCanceledException) { break; }
        }
        // Graceful stop: let in-flight passes finish (each is short) so their leases are released, not left to expire.
        for (int i = 0; i < options.MaxParallel; i++) await _slots.WaitAsync(TimeSpan.FromSeconds(10));
    }

    private async Task DispatchDueAsync(CancellationToken ct)
    {
        var now = time.GetUtcNow();
        List<long> due;
        await using (var db = await dbFactory.CreateDbContextAsync(ct))
        {
            due = await db.Clusters.AsNoTracking()
                .Where(c => c.NextReconcileAt != null && c.NextReconcileAt <= now && (c.LeaseExpiresAt == null || c.LeaseExpiresAt < now))
                .OrderBy(c => c.NextReconcileAt)
                .Select(c => c.Id)
                .Take(options.MaxParallel * 4)
                .ToListAsync(ct);
        }
        foreach (var id in due)
        {
            lock (_running) if (_running.Contains(id)) continue;
            await _slots.WaitAsync(ct);
            if (!await TryClaimAsync(id, ct)) { _slots.Release(); continue; }
            lock (_running) _running.Add(id);
            _ = Task.Run(() => RunPassAsync(id, ct), CancellationToken.None);
        }
    }

    private async Task<bool> TryClaimAsync(long id, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var until = now.AddSeconds(options.LeaseSeconds);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var claimed = await db.Clusters
            .Where(c => c.Id == id && c.NextReconcileAt != null && c.NextReconcileAt <= now && (c.LeaseExpiresAt == null || c.LeaseExpiresAt < now))
            .ExecuteUpdateAsync(s => s.SetProperty(c => c.LeaseOwner, identity.Owner).SetProperty(c => c.LeaseExpiresAt, until), ct);
        return claimed == 1;
    }

    private async Task RunPassAsync(long id, CancellationToken ct)
    {
        try
        {
            using var scope = services.CreateScope();
            var reconciler = scope.ServiceProvider.GetRequiredService<ClusterReconciler>();
            using var passTimeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            passTimeout.CancelAfter(TimeSpan.FromSeconds(Math.Max(5, options.LeaseSeconds - 2)));
            await reconciler.ReconcileAsync(id, passTimeout.Token);
        }
        catch (DbUpdateConcurrencyException)
        {
            // The API changed the cluster while this pass ran: look again at once with the new desired state.
            await ReleaseAsync(id, TimeSpan.Zero);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            await ReleaseAsync(id, TimeSpan.Zero);
        }
        catch (Exception ex)
        {
            logger.LogError(ex, "Reconcile pass for cluster {Id} failed; retrying in 5s", id);
            await ReleaseAsync(id, TimeSpan.FromSeconds(5));
        }
        finally
        {
            lock (_running) _running.Remove(id);
            _slots.Release();
        }
    }

    private async Task ReleaseAsync(long id, TimeSpan after)
    {
        try
        {
            var next = time.GetUtcNow() + after;
            await using var db = await dbFactory.CreateDbContextAsync(CancellationToken.None);
            await db.Clusters.Where(c => c.Id == id && c.LeaseOwner == identity.Owner)
                .ExecuteUpdateAsync(s => s.SetProperty(c => c.LeaseOwner, (string?)null)
                    .SetProperty(c => c.LeaseExpiresAt, (DateTimeOffset?)null)
                    .SetProperty(c => c.NextReconcileAt, next));
            signal.Poke();
        }
        catch (Exception ex)
        {
            logger.LogWarning(ex, "Could not release lease on cluster {Id}; it expires by itself", id);
        }
    }
}

/// <summary>Who this conductor is in leases and in the service list.</summary>
public sealed class ConductorIdentity
{
    public string Host { get; } = Environment.MachineName;
    public string Owner { get; } = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid().ToString("N")[..8]}";
}

/// <summary>Keeps this process's row in the service list (Magnum's magnum_service table) fresh.</summary>
public sealed class ServiceHeartbeat(
    IDbContextFactory<MagnetarDbContext> dbFactory,
    ConductorIdentity identity,
    ConductorOptions options,
    TimeProvider time,
    ILogger<ServiceHeartbeat> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var db = await dbFactory.CreateDbContextAsync(stoppingToken);
                var now = time.GetUtcNow();
                var row = await db.Services.FirstOrDefaultAsync(s => s.Host == identity.Host && s.Binary == "magnum-conductor", stoppingToken);
                if (row is null)
                {
                    db.Services.Add(new ServiceRecord { Host = identity.Host, Binary = "magnum-conductor", CreatedAt = now, LastSeenUp = now, ReportCount = 1 });
                }
                else
                {
                    row.LastSeenUp = now;
                    row.UpdatedAt = now;
                    row.ReportCount++;
                }
                await db.SaveChangesAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { break; }
            catch (Exception ex) { logger.LogWarning(ex, "Service heartbeat failed"); }
            try { await Task.Delay(TimeSpan.FromSeconds(options.HeartbeatSeconds), time, stoppingToken); }
            catch (OperationCanceledException) { break; }
        }
    }
}
