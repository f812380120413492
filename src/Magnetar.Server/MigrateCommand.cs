using Magnetar.Persistence;
using Microsoft.EntityFrameworkCore;

namespace Magnetar.Server;

/// <summary>
/// <c>magnetar migrate [--check] [--force]</c>: applies the pending migrations that are safe with the live replicas
/// (docs/rolling-upgrade.md). <c>--check</c> changes nothing: it lists the live replicas and each pending migration's
/// verdict, exit 0 when all are safe, 3 when not. Without <c>--check</c>, every expand migration runs and a contract
/// migration that a live replica still needs is refused (exit 3, the migrations before it applied) unless <c>--force</c>.
/// </summary>
public static class MigrateCommand
{
    public const int Incompatible = 3;

    public static async Task<int> RunAsync(string[] args)
    {
        var check = args.Contains("--check");
        var force = args.Contains("--force");
        if (check && force) { Console.Error.WriteLine("migrate: --check changes nothing; --force is for migrate alone"); return 2; }
        var rest = args.Where(a => a is not ("--check" or "--force")).ToArray();
        WebApplication app;
        try { app = MagnetarHost.Build(rest); }
        catch (Exception e) when (e is InvalidOperationException or FormatException or ArgumentException or IOException)
        {
            Console.Error.WriteLine($"migrate: {e.Message}");
            return 2;
        }
        await using var _ = app;
        var factory = app.Services.GetRequiredService<IDbContextFactory<MagnetarDbContext>>();
        var stale = app.Services.GetRequiredService<ReplicaOptions>().StaleAfter;
        try
        {
            if (check)
            {
                await using var db = await factory.CreateDbContextAsync();
                var assessment = await SchemaCompatibility.AssessAsync(db, stale, DateTimeOffset.UtcNow);
                Console.WriteLine(assessment.Render(DateTimeOffset.UtcNow));
                return assessment.Compatible ? 0 : Incompatible;
            }
            var (before, applied) = await SchemaCompatibility.MigrateAsync(factory, stale, DateTimeOffset.UtcNow, force);
            Console.WriteLine(applied.Count == 0 ? "nothing to apply" : $"applied {applied.Count} migration(s): {string.Join(", ", applied)}");
            if (before.FirstBlocked is { } blocked && !force)
            {
                Console.WriteLine(before.Render(DateTimeOffset.UtcNow));
                Console.Error.WriteLine($"migrate: refused contract migration {blocked.Migration.Id}: live replica(s) {string.Join(", ", blocked.Blocking.Select(b => b.Id))} " +
                                        $"were built before {blocked.Migration.RequiresBuiltWith}. Upgrade or stop them and run migrate again, or --force.");
                return Incompatible;
            }
            if (force && !before.Compatible)
                Console.Error.WriteLine("migrate: --force: applied despite live replicas that need the old schema:\n" + before.Render(DateTimeOffset.UtcNow));
            Console.WriteLine("database migrated");
            return 0;
        }
        catch (Exception e) when (e is System.Data.Common.DbException or TimeoutException or InvalidOperationException)
        {
            Console.Error.WriteLine($"migrate: the database: {e.GetBaseException().Message}");
            return 1;
        }
    }
}
