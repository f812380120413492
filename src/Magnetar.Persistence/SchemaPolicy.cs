using System.Reflection;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.EntityFrameworkCore.Migrations.Operations;

namespace Magnetar.Persistence;

/// <summary>
/// Declares a migration <b>contract</b>: it drops, renames or tightens something that replicas of an older release
/// still use, so it may only run once every live replica was built with <paramref name="requiresBuiltWith"/> (a
/// migration name without its timestamp, e.g. <c>ReplicaRegistry</c>) or a newer one. Put it on both providers'
/// migration classes. A migration without it must be <b>expand</b>-only (<see cref="SchemaPolicy.ContractOperations"/>
/// is empty), which a test checks for every migration.
/// </summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class ContractMigrationAttribute(string requiresBuiltWith, string reason) : Attribute
{
    public string RequiresBuiltWith { get; } = requiresBuiltWith;
    public string Reason { get; } = reason;
}

public enum MigrationKind { Expand, Contract }

/// <summary>A migration of this build, classified.</summary>
/// <param name="Id">EF's id (timestamp_Name); the timestamps differ between providers.</param>
/// <param name="Name">The name without the timestamp: what replicas record and contract migrations refer to.</param>
/// <param name="ContractOperations">Up operations that are not expand-only (empty for an expand migration).</param>
/// <param name="Declared">Whether it carries <see cref="ContractMigrationAttribute"/>. One that does not but has contract
/// operations (a test fails on it) is still treated as contract, requiring every replica to have been built with it.</param>
public sealed record MigrationInfo(string Id, string Name, int Position, MigrationKind Kind, string? RequiresBuiltWith, string? Reason,
    IReadOnlyList<string> ContractOperations, bool Declared = false);

/// <summary>
/// Expand-then-contract (docs/rolling-upgrade.md). <b>Expand</b> operations only add: new tables, new indexes, new
/// columns that are nullable or have a database default (an older replica's INSERT names none of them), relaxing a
/// column to nullable. Everything else — drops, renames, type changes, NOT NULL on an existing column, raw SQL, a
/// unique index or foreign key on an existing table — is <b>contract</b>: an older replica may read or write exactly
/// what it changes.
/// </summary>
public static class SchemaPolicy
{
    /// <summary>
    /// The newest migration of the releases that predate the <c>replicas</c> table: a replica serving without a row
    /// there (seen only by its database sessions) was built with this migration at most.
    /// </summary>
    public const string LegacyNewest = "NodeReplacement";

    /// <summary>The migration that creates the <c>replicas</c> table.</summary>
    public const string RegistryMigration = "ReplicaRegistry";

    public static string NameOf(string migrationId)
    {
        var i = migrationId.IndexOf('_');
        return i >= 0 ? migrationId[(i + 1)..] : migrationId;
    }

    /// <summary>This build's migrations for the context's provider, oldest first, classified.</summary>
    public static IReadOnlyList<MigrationInfo> Migrations(DbContext db)
    {
        var assembly = db.GetService<IMigrationsAssembly>();
        var provider = db.Database.ProviderName!;
        var list = new List<MigrationInfo>();
        foreach (var (id, type) in assembly.Migrations.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var migration = assembly.CreateMigration(type, provider);
            var contract = type.GetCustomAttribute<ContractMigrationAttribute>();
            var ops = ContractOperations(migration);
            var kind = contract is null && ops.Count == 0 ? MigrationKind.Expand : MigrationKind.Contract;
            list.Add(new MigrationInfo(id, NameOf(id), list.Count, kind,
                contract?.RequiresBuiltWith ?? (kind == MigrationKind.Contract ? NameOf(id) : null),
                contract?.Reason ?? (kind == MigrationKind.Contract ? "undeclared, it " + string.Join("; ", ops) : null), ops, contract is not null));
        }
        return list;
    }

    /// <summary>The Up operations of <paramref name="migration"/> that an older replica may not survive, described.</summary>
    public static IReadOnlyList<string> ContractOperations(Migration migration)
    {
        var ops = migration.UpOperations;
        var created = ops.OfType<CreateTableOperation>().Select(t => (t.Schema, t.Name)).ToHashSet();
        bool New(string? schema, string table) => created.Contains((schema, table));
        var found = new List<string>();
        foreach (var op in ops)
        {
            switch (op)
            {
                case CreateTableOperation or EnsureSchemaOperation or CreateSequenceOperation or AlterDatabaseOperation or InsertDataOperation:
                    break;
                case AlterTableOperation:
                    break; // a table's comment and provider annotations only
                case AddColumnOperation c when New(c.Schema, c.Table) || c.IsNullable || c.DefaultValue is not null || c.DefaultValueSql is not null || c.ComputedColumnSql is not null:
                    break;
                case AddColumnOperation c:
                    found.Add($"adds NOT NULL column {c.Table}.{c.Name} without a database default (an older replica's INSERT fails)");
                    break;
                case CreateIndexOperation i when !i.IsUnique || New(i.Schema, i.Table):
                    break;
                case CreateIndexOperation i:
                    found.Add($"adds unique index {i.Name} on existing table {i.Table} (an older replica's writes may violate it)");
                    break;
                case AddForeignKeyOperation f when New(f.Schema, f.Table):
                    break;
                case AddForeignKeyOperation f:
                    found.Add($"adds foreign key {f.Name} on existing table {f.Table}");
                    break;
                case AlterColumnOperation a when Relaxes(a):
                    break;
                case AlterColumnOperation a:
                    found.Add($"alters column {a.Table}.{a.Name} (type, length or NOT NULL)");
                    break;
                case DropColumnOperation d: found.Add($"drops column {d.Table}.{d.Name}"); break;
                case DropTableOperation d: found.Add($"drops table {d.Name}"); break;
                case RenameColumnOperation r: found.Add($"renames column {r.Table}.{r.Name} to {r.NewName}"); break;
                case RenameTableOperation r: found.Add($"renames table {r.Name} to {r.NewName}"); break;
                case RenameIndexOperation r: found.Add($"renames index {r.Name} to {r.NewName}"); break;
                case DropIndexOperation d: found.Add($"drops index {d.Name}"); break;
                case SqlOperation s when AddsTrigger(s.Sql):
                    break;
                case SqlOperation s: found.Add($"runs SQL ({Shorten(s.Sql)}), which the policy cannot judge"); break;
                default: found.Add($"{op.GetType().Name.Replace("Operation", "")} on {Describe(op)}"); break;
            }
        }
        return found;
    }

    /// <summary>
    /// SQL that only creates a trigger or a trigger function (ListVersionTriggers): it adds a side effect on a table this
    /// release added, which older replicas' writes fire without noticing. Anything else in raw SQL stays unjudged.
    /// </summary>
    private static bool AddsTrigger(string sql)
    {
        var text = sql.TrimStart();
        return text.StartsWith("CREATE TRIGGER ", StringComparison.Ordinal) || text.StartsWith("CREATE CONSTRAINT TRIGGER ", StringComparison.Ordinal)
            || text.StartsWith("CREATE FUNCTION magnetar_", StringComparison.Ordinal);
    }

    /// <summary>Same type, no shorter, and either NOT NULL dropped or kept as it was; defaults may change.</summary>
    private static bool Relaxes(AlterColumnOperation a)
        => a.ClrType == a.OldColumn.ClrType && a.ColumnType == a.OldColumn.ColumnType
           && (a.OldColumn.MaxLength is null || (a.MaxLength is { } m && m >= a.OldColumn.MaxLength))
           && (a.IsNullable || !a.OldColumn.IsNullable)
           && a.ComputedColumnSql == a.OldColumn.ComputedColumnSql;

    private static string Describe(MigrationOperation op) => op switch
    {
        ColumnOperation c => c.Table + "." + c.Name,
        TableOperation t => t.Name,
        _ => op.GetType().GetProperty("Table")?.GetValue(op) as string ?? op.GetType().GetProperty("Name")?.GetValue(op) as string ?? "?",
    };

    private static string Shorten(string sql)
    {
        var one = string.Join(' ', sql.Split((char[])['\n', '\r', '\t', ' '], StringSplitOptions.RemoveEmptyEntries));
        return one.Length <= 60 ? one : one[..57] + "...";
    }
}
