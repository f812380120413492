using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;
using Microsoft.Extensions.DependencyInjection;

namespace Magnetar.Persistence;

public sealed class DatabaseOptions
{
    /// <summary><c>sqlite</c> (standalone default) or <c>postgres</c> (required for several replicas).</summary>
    public string Provider { get; set; } = "sqlite";
    /// <summary>ADO.NET connection string. For SQLite the default is a file in the data directory.</summary>
    public string? ConnectionString { get; set; }

    public bool IsPostgres => Provider.Equals("postgres", StringComparison.OrdinalIgnoreCase)
                              || Provider.Equals("postgresql", StringComparison.OrdinalIgnoreCase)
                              || Provider.Equals("npgsql", StringComparison.OrdinalIgnoreCase);
}

public static class PersistenceServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="MagnetarDbContext"/> (scoped) and <see cref="IDbContextFactory{MagnetarDbContext}"/>
    /// (singleton, for the conductor) on the chosen provider.
    /// </summary>
    public static IServiceCollection AddMagnetarPersistence(this IServiceCollection services, DatabaseOptions options)
    {
        if (string.IsNullOrWhiteSpace(options.ConnectionString))
            throw new InvalidOperationException("Magnetar:Database:ConnectionString is not set.");
        services.AddSingleton(options);
        if (options.IsPostgres)
        {
            services.AddPooledDbContextFactory<PostgresMagnetarDbContext>(o => ConfigurePostgres(o, options.ConnectionString));
            services.AddSingleton<IDbContextFactory<MagnetarDbContext>>(sp =>
                new Upcast<PostgresMagnetarDbContext>(sp.GetRequiredService<IDbContextFactory<PostgresMagnetarDbContext>>()));
        }
        else if (options.Provider.Equals("sqlite", StringComparison.OrdinalIgnoreCase))
        {
            services.AddPooledDbContextFactory<SqliteMagnetarDbContext>(o => ConfigureSqlite(o, options.ConnectionString));
            services.AddSingleton<IDbContextFactory<MagnetarDbContext>>(sp =>
                new Upcast<SqliteMagnetarDbContext>(sp.GetRequiredService<IDbContextFactory<SqliteMagnetarDbContext>>()));
        }
        else
        {
            throw new InvalidOperationException($"Unknown database provider '{options.Provider}': use sqlite or postgres.");
        }
        services.AddScoped(sp => sp.GetRequiredService<IDbContextFactory<MagnetarDbContext>>().CreateDbContext());
        return services;
    }

    /// <remarks>
    /// Both providers (this and <see cref="ConfigureSqlite"/>) run on their compiled model (<c>CompiledModels/</c>, made by
    /// <c>scripts/ef-compiled-models</c>): building the model from <see cref="MagnetarDbContext"/>'s configuration took a
    /// third of a second of every start. A compiled model that no longer matches the code fails <c>CompiledModelTests</c>.
    /// Migrations are still made and checked against the model built from the code (EF builds it whenever the
    /// design-time model is asked for), not against the compiled one.
    /// </remarks>
    internal static void ConfigurePostgres(DbContextOptionsBuilder o, string cs)
        => o.UseNpgsql(Tuned(Named(cs)), n => n.EnableRetryOnFailure(3)).UseModel(CompiledModels.Postgres.PostgresMagnetarDbContextModel.Instance);

    /// <summary>
    /// Npgsql settings for the way Magnetar uses its connections, each unless the operator's connection string names it:
    /// <list type="bullet">
    /// <item><c>Max Auto Prepare=32</c>: the statements every request runs (the list version a cached page is checked
    /// against, a cluster by uuid, a page of clusters) are prepared on each pooled connection after a few uses, parsed and
    /// planned once. EF names every column it reads, so an expand migration another replica applies (a column added)
    /// does not change a prepared statement's result.</item>
    /// <item><c>No Reset On Close=true</c>: a connection returned to the pool is not reset (Npgsql otherwise sends
    /// DISCARD ALL — or, with prepared statements, the statements that reset all but them — before its next use). Magnetar
    /// leaves no session state on a connection: no SET, LISTEN, temporary table or session advisory lock (EF's migration
    /// lock is a LOCK TABLE inside the migration's transaction), and Npgsql still rolls back an unfinished transaction.</item>
    /// </list>
    /// Measured with the read bench on PostgreSQL (bench/results.md, 2026-12-03): a show served from the rendered cache
    /// 3 280 → 4 859 req/s, a page of 50 1 937 → 3 126 req/s — each still reads the list version, one round trip.
    /// </summary>
    public static string Tuned(string cs)
    {
        var given = new System.Data.Common.DbConnectionStringBuilder { ConnectionString = cs };
        bool Names(params string[] keys) => keys.Any(given.ContainsKey);
        var b = new Npgsql.NpgsqlConnectionStringBuilder(cs);
        if (!Names("Max Auto Prepare", "MaxAutoPrepare")) b.MaxAutoPrepare = 32;
        if (!Names("No Reset On Close", "NoResetOnClose")) b.NoResetOnClose = true;
        return b.ConnectionString;
    }

    /// <summary>
    /// Magnetar's sessions are named (<c>application_name</c>), so that sessions of releases that predate the replica
    /// registry — unnamed — can be told apart (<see cref="LegacyReplicas"/>). An operator's own name is kept after ours.
    /// </summary>
    public static string Named(string cs)
    {
        var b = new Npgsql.NpgsqlConnectionStringBuilder(cs);
        if (b.ApplicationName is { Length: > 0 } given && given.StartsWith("magnetar", StringComparison.Ordinal)) return cs;
        b.ApplicationName = string.IsNullOrEmpty(b.ApplicationName) ? "magnetar" : "magnetar " + b.ApplicationName;
        return b.ConnectionString;
    }

    internal static void ConfigureSqlite(DbContextOptionsBuilder o, string cs)
        => o.UseSqlite(cs).UseModel(CompiledModels.Sqlite.SqliteMagnetarDbContextModel.Instance);

    /// <summary>
    /// Applies the pending migrations that are safe with the live replicas (every expand migration; a contract one only
    /// once no live replica needs the old schema): <see cref="SchemaCompatibility.MigrateAsync"/>.
    /// </summary>
    public static async Task MigrateAsync(this IDbContextFactory<MagnetarDbContext> factory, CancellationToken ct = default)
        => await SchemaCompatibility.MigrateAsync(factory, ReplicaOptions.DefaultStale, DateTimeOffset.UtcNow, force: false, ct);

    private sealed class Upcast<T>(IDbContextFactory<T> inner) : IDbContextFactory<MagnetarDbContext> where T : MagnetarDbContext
    {
        public MagnetarDbContext CreateDbContext() => inner.CreateDbContext();
    }
}

/// <summary>Used by <c>dotnet ef migrations add … --context SqliteMagnetarDbContext</c>.</summary>
public sealed class SqliteDesignTimeFactory : IDesignTimeDbContextFactory<SqliteMagnetarDbContext>
{
    public SqliteMagnetarDbContext CreateDbContext(string[] args)
    {
        var b = new DbContextOptionsBuilder<SqliteMagnetarDbContext>();
        PersistenceServiceCollectionExtensions.ConfigureSqlite(b, "Data Source=design-time.db");
        return new SqliteMagnetarDbContext(b.Options);
    }
}

/// <summary>Used by <c>dotnet ef migrations add … --context PostgresMagnetarDbContext</c> (no connection is opened).</summary>
public sealed class PostgresDesignTimeFactory : IDesignTimeDbContextFactory<PostgresMagnetarDbContext>
{
    public PostgresMagnetarDbContext CreateDbContext(string[] args)
    {
        var b = new DbContextOptionsBuilder<PostgresMagnetarDbContext>();
        PersistenceServiceCollectionExtensions.ConfigurePostgres(b, "Host=localhost;Database=design_time");
        return new PostgresMagnetarDbContext(b.Options);
    }
}
