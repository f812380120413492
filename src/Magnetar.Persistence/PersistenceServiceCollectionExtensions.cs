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

    internal static void ConfigurePostgres(DbContextOptionsBuilder o, string cs)
        => o.UseNpgsql(cs, n => n.EnableRetryOnFailure(3));

    internal static void ConfigureSqlite(DbContextOptionsBuilder o, string cs)
        => o.UseSqlite(cs);

    /// <summary>Applies pending migrations of the configured provider.</summary>
    public static async Task MigrateAsync(this IDbContextFactory<MagnetarDbContext> factory, CancellationToken ct = default)
    {
        await using var db = await factory.CreateDbContextAsync(ct);
        await db.Database.MigrateAsync(ct);
        if (db.Database.IsSqlite())
        {
            // WAL lets API reads proceed while the conductor writes; busy_timeout makes writers wait instead of failing.
            await db.Database.ExecuteSqlRawAsync("PRAGMA journal_mode=WAL;", ct);
        }
    }

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
