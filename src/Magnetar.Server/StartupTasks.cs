using Magnetar.Identity;
using Magnetar.Persistence;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.EntityFrameworkCore;

namespace Magnetar.Server;

/// <summary>
/// Runs before the server accepts requests: applies database migrations, and in standalone (built-in identity)
/// mode seeds the admin and demo users and writes the openrc files next to the database.
/// </summary>
public sealed class StartupTasks(
    IDbContextFactory<MagnetarDbContext> dbFactory,
    IConfiguration config,
    IServiceProvider services,
    IHostApplicationLifetime lifetime,
    DatabaseWarmUp warmUp,
    ILogger<StartupTasks> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken ct)
    {
        // Begun on another core while the host started (serve only); the check below decides, as without it.
        await warmUp.Done.WaitAsync(ct);
        // Expand migrations run here even while older replicas serve; a contract migration only once none needs the old schema.
        var (before, applied) = await SchemaCompatibility.MigrateAsync(dbFactory, services.GetRequiredService<ReplicaOptions>().StaleAfter, DateTimeOffset.UtcNow, force: false, ct);
        if (applied.Count > 0) logger.LogInformation("Applied migration(s) {Migrations}", string.Join(", ", applied));
        if (before.FirstBlocked is { } blocked)
            logger.LogWarning("Migration {Migration} (contract) is held back: live replica(s) {Replicas} still need the old schema; run 'magnetar migrate' once they are upgraded",
                blocked.Migration.Id, string.Join(", ", blocked.Blocking.Select(b => b.Id)));
        if (before.UnknownApplied.Any())
            logger.LogWarning("The database was migrated by a newer release ({Migrations}); this replica serves on the expanded schema until it is upgraded",
                string.Join(", ", before.UnknownApplied));
        logger.LogInformation("Database ready ({Provider})", services.GetRequiredService<DatabaseOptions>().Provider);
        // Off the start path: checking the existing users' passwords is PBKDF2 (a few hundred ms of CPU), and nothing
        // waits for the files but a person about to source them.
        lifetime.ApplicationStarted.Register(() => _ = Task.Run(() =>
        {
            try { WriteOpenrc(); }
            catch (Exception e) { logger.LogError(e, "Could not write the openrc files"); }
        }));
        // RSA keys for new clusters' CAs, made ahead (Magnetar:Pki:KeyPool keys, 0 = off), after the server is serving.
        var pool = config.GetValue("Magnetar:Pki:KeyPool", 16);
        var delay = TimeSpan.FromSeconds(config.GetValue("Magnetar:Pki:KeyPoolDelaySeconds", 10.0));
        lifetime.ApplicationStarted.Register(() => Magnetar.Bootstrap.Pki.RsaKeyPool.Shared.Start(pool, delay));
    }

    private void WriteOpenrc()
    {
        if (!string.Equals(config["Magnetar:Identity:Mode"] ?? "builtin", "builtin", StringComparison.OrdinalIgnoreCase)) return;
        var server = services.GetRequiredService<IServer>();
        var address = server.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault() ?? "http://127.0.0.1:9511";
        var publicUrl = config["Magnetar:PublicUrl"] ?? address.Replace("0.0.0.0", "127.0.0.1").Replace("[::]", "127.0.0.1");
        var dataDir = config["Magnetar:DataDir"]!;
        var files = services.GetRequiredService<BuiltInIdentityStore>().SeedStandalone(dataDir, publicUrl.TrimEnd('/'));
        foreach (var f in files) logger.LogInformation("Wrote {File}: source it and run 'openstack coe cluster list'", f);
    }

    public Task StopAsync(CancellationToken ct) => Task.CompletedTask;
}
