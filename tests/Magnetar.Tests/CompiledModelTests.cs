using System.Globalization;
using System.Linq.Expressions;
using System.Text;
using Magnetar.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Metadata;
using Microsoft.Extensions.DependencyInjection;
using Npgsql.EntityFrameworkCore.PostgreSQL.Metadata.Internal;

namespace Magnetar.Tests;

/// <summary>
/// The server runs on EF Core compiled models (src/Magnetar.Persistence/CompiledModels, made by
/// <c>scripts/ef-compiled-models</c>), not on the model <see cref="MagnetarDbContext"/>'s configuration builds. These
/// tests fail when a compiled model no longer matches the code: an entity, property, column, type, length,
/// nullability, converter, key, index or foreign key changed in the code and the models were not made again. What a
/// compiled model does not keep (an index's sort order, the model's collation: EF refuses to read them from it) only
/// migrations use, and they build the model from the code. No database is reached (the design-time factories only
/// configure the providers).
/// </summary>
public sealed class CompiledModelTests
{
    public static TheoryData<string> Providers => new() { "sqlite", "postgres" };

    private static MagnetarDbContext Context(string provider)
        => provider == "sqlite" ? new SqliteDesignTimeFactory().CreateDbContext([]) : new PostgresDesignTimeFactory().CreateDbContext([]);

    private const string Remedy = "the compiled model is stale: run scripts/ef-compiled-models and commit src/Magnetar.Persistence/CompiledModels";

    [Theory]
    [MemberData(nameof(Providers))]
    public void The_compiled_model_matches_the_model_the_code_builds(string provider)
    {
        using var db = Context(provider);
        var compiled = db.Model;
        // Asked for the design-time model while configured with a compiled one, EF builds it from OnModelCreating and
        // the provider's conventions, as migrations do.
        var code = db.GetService<IDesignTimeModel>().Model;
        Assert.IsAssignableFrom<RuntimeModel>(compiled);
        Assert.IsNotAssignableFrom<RuntimeModel>(code);

        var expected = Describe(code, provider);
        var actual = Describe(compiled, provider);
        var missing = expected.Except(actual).ToList();
        var extra = actual.Except(expected).ToList();
        Assert.True(missing.Count == 0 && extra.Count == 0,
            $"{provider}: {Remedy}.\n  in the code, not in the compiled model:\n    {string.Join("\n    ", missing)}" +
            $"\n  in the compiled model, not in the code:\n    {string.Join("\n    ", extra)}");
    }

    [Theory]
    [MemberData(nameof(Providers))]
    public void The_server_uses_the_compiled_model(string provider)
    {
        var services = new ServiceCollection().AddMagnetarPersistence(new DatabaseOptions
        {
            Provider = provider,
            ConnectionString = provider == "sqlite" ? "Data Source=:memory:" : "Host=127.0.0.1;Database=unused",
        }).BuildServiceProvider();
        using var db = services.GetRequiredService<IDbContextFactory<MagnetarDbContext>>().CreateDbContext();
        Assert.Same(provider == "sqlite" ? Persistence.CompiledModels.Sqlite.SqliteMagnetarDbContextModel.Instance
            : Persistence.CompiledModels.Postgres.PostgresMagnetarDbContextModel.Instance, db.Model);
    }

    /// <summary>What of a model the database and the materialisation depend on, one line per fact.</summary>
    private static List<string> Describe(IModel model, string provider)
    {
        var lines = new List<string>();
        static string Names(IEnumerable<IReadOnlyProperty> properties) => string.Join(",", properties.Select(p => p.Name));
        static string? Text(object? o) => o switch
        {
            null => null,
            IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
            _ => o.ToString(),
        };
        foreach (var e in model.GetEntityTypes().OrderBy(e => e.Name, StringComparer.Ordinal))
        {
            var table = StoreObjectIdentifier.Create(e, StoreObjectType.Table);
            lines.Add($"{e.Name}: clr {e.ClrType}, table {e.GetSchema()}.{e.GetTableName()}, base {e.BaseType?.Name}");
            foreach (var p in e.GetProperties().OrderBy(p => p.Name, StringComparer.Ordinal))
            {
                var line = new StringBuilder($"{e.Name}.{p.Name}: clr {p.ClrType}");
                line.Append($", column {(table is { } t ? p.GetColumnName(t) : p.GetColumnName())} {p.GetColumnType()}");
                line.Append(p.IsNullable ? " null" : " not null");
                line.Append($", max length {Text(p.GetMaxLength())}, precision {Text(p.GetPrecision())}, scale {Text(p.GetScale())}, unicode {Text(p.IsUnicode())}");
                line.Append($", shadow {p.IsShadowProperty()}, concurrency token {p.IsConcurrencyToken}, generated {p.ValueGenerated}");
                line.Append($", default {Text(p.GetDefaultValue())} sql {p.GetDefaultValueSql()}, computed {p.GetComputedColumnSql()}");
                line.Append($", provider clr {p.GetProviderClrType()}");
                if (p.GetValueConverter() is { } c)
                    line.Append($", converter {c.GetType()} ({Code(c.ConvertToProviderExpression)}) ({Code(c.ConvertFromProviderExpression)})");
                var comparer = p.GetValueComparer();
                line.Append($", comparer ({Code(comparer.EqualsExpression)}) ({Code(comparer.HashCodeExpression)}) ({Code(comparer.SnapshotExpression)})");
                // The compiled model writes out the strategy the code's model leaves to the convention (None): compared as EF reads it.
                if (provider == "postgres") line.Append($", strategy {NpgsqlPropertyExtensions.GetValueGenerationStrategy(p)}");
                foreach (var a in p.GetAnnotations().Where(a => a.Name.StartsWith("Npgsql:") || a.Name.StartsWith("Sqlite:")).OrderBy(a => a.Name, StringComparer.Ordinal))
                    if (a.Name != NpgsqlAnnotationNames.ValueGenerationStrategy) line.Append($", {a.Name} {Text(a.Value)}");
                lines.Add(line.ToString());
            }
            foreach (var k in e.GetKeys())
                lines.Add($"{e.Name} {(k.IsPrimaryKey() ? "primary" : "alternate")} key ({Names(k.Properties)}) {k.GetName()}");
            foreach (var i in e.GetIndexes())
                lines.Add($"{e.Name} index ({Names(i.Properties)}) {i.GetDatabaseName()}{(i.IsUnique ? " unique" : "")}, filter {i.GetFilter()}");
            foreach (var f in e.GetForeignKeys())
                lines.Add($"{e.Name} foreign key ({Names(f.Properties)}) -> {f.PrincipalEntityType.Name} ({Names(f.PrincipalKey.Properties)}) " +
                          $"{f.GetConstraintName()}, on delete {f.DeleteBehavior}, required {f.IsRequired}, unique {f.IsUnique}");
            foreach (var n in e.GetNavigations())
                lines.Add($"{e.Name} navigation {n.Name} -> {n.TargetEntityType.Name}{(n.IsCollection ? " (collection)" : "")}");
        }
        return lines;
    }

    /// <summary>
    /// An expression as text, without the casts to object that the generated code writes and the code's lambdas do not
    /// (<c>((object)JsonSerializer.Serialize(v, Json)).GetHashCode()</c>: the same call).
    /// </summary>
    private static string Code(Expression e) => new WithoutObjectCasts().Visit(e).ToString();

    private sealed class WithoutObjectCasts : ExpressionVisitor
    {
        protected override Expression VisitUnary(UnaryExpression node)
            => node.NodeType == ExpressionType.Convert && node.Type == typeof(object) && !node.Operand.Type.IsValueType
                ? Visit(node.Operand)
                : base.VisitUnary(node);
    }
}
