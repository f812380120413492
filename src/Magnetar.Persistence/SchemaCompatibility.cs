using System.Data.Common;
using System.Text;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.EntityFrameworkCore.Storage;

namespace Magnetar.Persistence;

/// <summary>A live replica as the compatibility check sees it: registered (a fresh row in <c>replicas</c>) or legacy.</summary>
public sealed record ReplicaView(string Id, string Host, int? Pid, string Version, string SchemaNewest, string SchemaOldest,
    DateTimeOffset? HeartbeatAt, bool Registered)
{
    public static ReplicaView Legacy(string id, string host, int? pid)
        => new(id, host, pid, "older than the replica registry", SchemaPolicy.LegacyNewest, "", null, false);
}

/// <summary>One pending migration and the live replicas it would break (none for an expand migration).</summary>
public sealed record PendingVerdict(MigrationInfo Migration, IReadOnlyList<ReplicaView> Blocking);

/// <summary>What <c>magnetar migrate --check</c> reports: the schema, the live replicas, and each pending migration's verdict.</summary>
public sealed class SchemaAssessment
{
    public required IReadOnlyList<MigrationInfo> Build { get; init; }
    public required IReadOnlyList<string> Applied { get; init; }
    public required IReadOnlyList<ReplicaView> Replicas { get; init; }
    public required IReadOnlyList<PendingVerdict> Pending { get; init; }
    /// <summary>Incompatibilities that no migration of this build causes or cures (e.g. a replica older than an applied contract migration).</summary>
    public required IReadOnlyList<string> Problems { get; init; }
    public required TimeSpan StaleAfter { get; init; }

    /// <summary>Applied migrations this build does not know: the database was migrated by a newer release.</summary>
    public IEnumerable<string> UnknownApplied => Applied.Where(a => Build.All(m => m.Id != a));
    public bool Compatible => Problems.Count == 0 && Pending.All(p => p.Blocking.Count == 0);
    /// <summary>The first pending migration that some live replica forbids; everything before it may run now.</summary>
    public PendingVerdict? FirstBlocked => Pending.FirstOrDefault(p => p.Blocking.Count > 0);

    public string Render(DateTimeOffset now)
    {
        var s = new StringBuilder();
        var newest = Applied.Count == 0 ? "none" : SchemaPolicy.NameOf(Applied[^1]);
        s.AppendLine($"schema: {Applied.Count} migration(s) applied (newest {newest}); this build has {Build.Count} (newest {Build[^1].Name})");
        var unknown = UnknownApplied.ToList();
        if (unknown.Count > 0)
            s.AppendLine($"  the database has {unknown.Count} migration(s) this build does not know ({string.Join(", ", unknown)}): a newer release migrated it");
        s.AppendLine($"live replicas: {Replicas.Count} (heartbeat within {StaleAfter.TotalSeconds:0} s; sessions for releases before the registry)");
        foreach (var r in Replicas)
        {
            if (r.Registered)
                s.AppendLine($"  {r.Id}  host {r.Host}  pid {r.Pid}  version {r.Version}  built with {r.SchemaNewest}  needs {r.SchemaOldest}  " +
                             $"heartbeat {(now - r.HeartbeatAt!.Value).TotalSeconds:0} s ago");
            else
                s.AppendLine($"  unregistered: {r.Id}  (a release before {SchemaPolicy.RegistryMigration}: built with {r.SchemaNewest} at most)");
        }
        if (Pending.Count == 0) s.AppendLine("pending migrations: none");
        else s.AppendLine($"pending migrations: {Pending.Count}");
        foreach (var p in Pending)
        {
            var m = p.Migration;
            var kind = m.Kind == MigrationKind.Expand ? "expand" : $"contract (needs every replica built with {m.RequiresBuiltWith} or newer: {m.Reason})";
            var verdict = p.Blocking.Count == 0 ? "safe with every live replica" : "NOT safe with " + string.Join(", ", p.Blocking.Select(b => b.Id));
            s.AppendLine($"  {m.Id}  {kind}: {verdict}");
        }
        foreach (var problem in Problems) s.AppendLine("problem: " + problem);
        s.Append(Compatible ? "compatible: the pending migrations are safe with every live replica"
            : "incompatible: stop or upgrade the replicas named above first (or 'magnetar migrate --force' to break them)");
        return s.ToString();
    }
}

/// <summary>
/// Decides which pending migrations may run while the live replicas serve, and runs them: every expand migration,
/// and a contract migration only once no live replica was built before the migration it requires.
/// </summary>
public static class SchemaCompatibility
{
    public static Task<SchemaAssessment> AssessAsync(MagnetarDbContext db, TimeSpan staleAfter, DateTimeOffset now, CancellationToken ct = default)
        => AssessAsync(db, staleAfter, now, replicasOnlyForContract: false, ct);

    /// <param name="replicasOnlyForContract">Look the live replicas up only when a contract migration is pending: no
    /// other verdict depends on them (an expand migration runs whoever serves). The assessment then lists no replicas
    /// and no <see cref="SchemaAssessment.Problems"/>.</param>
    private static async Task<SchemaAssessment> AssessAsync(MagnetarDbContext db, TimeSpan staleAfter, DateTimeOffset now, bool replicasOnlyForContract, CancellationToken ct)
    {
        var build = SchemaPolicy.Migrations(db);
        var applied = (await AppliedMigrationsAsync(db, ct)).OrderBy(x => x, StringComparer.Ordinal).ToList();
        var appliedNames = applied.Select(SchemaPolicy.NameOf).ToHashSet();
        var replicas = new List<ReplicaView>();
        if (replicasOnlyForContract && !build.Any(m => m.Kind == MigrationKind.Contract && !applied.Contains(m.Id)))
            return Judge(build, applied, replicas, staleAfter);
        if (appliedNames.Contains(SchemaPolicy.RegistryMigration))
        {
            var since = now - staleAfter;
            foreach (var r in await db.Replicas.AsNoTracking().Where(r => r.HeartbeatAt >= since).ToListAsync(ct))
                replicas.Add(new ReplicaView(r.Id, r.Host, r.Pid, r.Version, r.SchemaNewest, r.SchemaOldest, r.HeartbeatAt, true));
            replicas.Sort((a, b) => string.CompareOrdinal(a.Id, b.Id));
        }
        replicas.AddRange(await LegacyReplicas.FindAsync(db, ct));

        return Judge(build, applied, replicas, staleAfter);
    }

    /// <summary>
    /// The ids of the applied migrations. EF's own <c>GetAppliedMigrationsAsync</c> first builds a model of its history
    /// table with the whole convention set (to learn a column's name) and, on PostgreSQL, opens an unpooled connection
    /// to learn whether the database exists: 0.1-0.15 s of every start. The table is EF's, laid out as
    /// <see cref="HistoryRow"/>, so it is read directly; when that fails (no database or no history table yet, before
    /// the first migration) EF's own way answers, as before.
    /// </summary>
    private static async Task<IEnumerable<string>> AppliedMigrationsAsync(MagnetarDbContext db, CancellationToken ct)
    {
        // A SQLite database that does not exist is not made by looking (a file test, as EF's).
        if (db.Database.IsSqlite() && !await db.GetService<IRelationalDatabaseCreator>().ExistsAsync(ct)) return [];
        var sql = db.GetService<ISqlGenerationHelper>();
        var options = RelationalOptionsExtension.Extract(db.GetService<IDbContextOptions>());
        var table = sql.DelimitIdentifier(options.MigrationsHistoryTableName ?? HistoryRepository.DefaultTableName, options.MigrationsHistoryTableSchema);
        // The connection itself, as EF's history reads use it: not through the retrying execution strategy.
        var connection = db.Database.GetDbConnection();
        var opened = connection.State != System.Data.ConnectionState.Open;
        try
        {
            if (opened) await connection.OpenAsync(ct);
            try
            {
                await using var command = connection.CreateCommand();
                command.CommandText = $"SELECT {sql.DelimitIdentifier(nameof(HistoryRow.MigrationId))} FROM {table}";
                var ids = new List<string>();
                await using var reader = await command.ExecuteReaderAsync(ct);
                while (await reader.ReadAsync(ct)) ids.Add(reader.GetString(0));
                return ids;
            }
            finally { if (opened) await connection.CloseAsync(); }
        }
        catch (DbException)
        {
            return await db.Database.GetAppliedMigrationsAsync(ct);
        }
    }

    /// <summary>The verdicts, from this build's migrations, the applied ids and the live replicas (no database).</summary>
    public static SchemaAssessment Judge(IReadOnlyList<MigrationInfo> build, IReadOnlyList<string> applied, IReadOnlyList<ReplicaView> replicas, TimeSpan staleAfter)
    {
        var appliedNames = applied.Select(SchemaPolicy.NameOf).ToHashSet();
        int Position(string name)
        {
            var i = build.ToList().FindIndex(m => m.Name == name);
            return i >= 0 ? i : int.MaxValue; // a migration this build does not know is newer than all of its own
        }
        bool Allows(MigrationInfo contract, ReplicaView r)
        {
            var required = Position(contract.RequiresBuiltWith ?? contract.Name);
            return Position(r.SchemaNewest) >= (required == int.MaxValue ? contract.Position : required);
        }

        var pending = build.Where(m => !applied.Contains(m.Id))
            .Select(m => new PendingVerdict(m, m.Kind == MigrationKind.Expand ? [] : replicas.Where(r => !Allows(m, r)).ToList()))
            .ToList();
        var problems = new List<string>();
        foreach (var m in build.Where(m => m.Kind == MigrationKind.Contract && applied.Contains(m.Id)))
            foreach (var r in replicas.Where(r => !Allows(m, r)))
                problems.Add($"contract migration {m.Id} is applied, but replica {r.Id} was built with {r.SchemaNewest}, before {m.RequiresBuiltWith}");
        foreach (var r in replicas.Where(r => r.Registered && r.SchemaOldest.Length > 0))
        {
            if (appliedNames.Contains(r.SchemaOldest) || pending.Any(p => p.Migration.Name == r.SchemaOldest)) continue;
            problems.Add($"replica {r.Id} needs migration {r.SchemaOldest}, which the database lacks and this build does not have (run the newer release's migrate)");
        }
        return new SchemaAssessment { Build = build, Applied = applied, Replicas = replicas, Pending = pending, Problems = problems, StaleAfter = staleAfter };
    }

    /// <summary>
    /// Applies the pending migrations that are safe with the live replicas — all of them with <paramref name="force"/>
    /// — and returns the assessment made before and the ids applied. Concurrent callers are serialised by EF's
    /// migration lock; each re-reads the history, so a migration runs once. Without <paramref name="force"/> the live
    /// replicas are looked up only when a contract migration is pending, as nothing else here depends on them (every
    /// start of <c>serve</c> comes here); otherwise the assessment returned names none.
    /// </summary>
    public static async Task<(SchemaAssessment Before, IReadOnlyList<string> Applied)> MigrateAsync(
        IDbContextFactory<MagnetarDbContext> factory, TimeSpan staleAfter, DateTimeOffset now, bool force, CancellationToken ct = default)
    {
        await using var db = await factory.CreateDbContextAsync(ct);
        var assessment = await AssessAsync(db, staleAfter, now, replicasOnlyForContract: !force, ct);
        var runnable = force ? assessment.Pending : assessment.Pending.TakeWhile(p => p.Blocking.Count == 0).ToList();
        // With nothing to run (every start but the first after an upgrade) EF is not asked: its Migrate would still build
        // the snapshot's model and compare it with the code's, ≈ half a second of a start, to learn what the assessment says.
        if (runnable.Count > 0)
        {
            if (runnable.Count == assessment.Pending.Count) await db.Database.MigrateAsync(ct);
            else await db.GetService<IMigrator>().MigrateAsync(runnable[^1].Migration.Id, ct);
        }
        if (db.Database.IsSqlite())
        {
            // WAL lets API reads proceed while the conductor writes; busy_timeout makes writers wait instead of failing.
            await db.Database.ExecuteSqlRawAsync("PRAGMA journal_mode=WAL;", ct);
        }
        return (assessment, runnable.Select(p => p.Migration.Id).ToList());
    }
}
