using System.Text.Json;
using Magnetar.Domain;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.ChangeTracking;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Microsoft.EntityFrameworkCore.Storage.ValueConversion;

namespace Magnetar.Persistence;

/// <summary>
/// Magnetar's only source of truth. Provider-specific subclasses exist solely so that each database
/// has its own migrations (SQLite for standalone, PostgreSQL for replicas).
/// </summary>
public abstract class MagnetarDbContext(DbContextOptions options) : DbContext(options)
{
    public DbSet<ClusterTemplate> ClusterTemplates => Set<ClusterTemplate>();
    public DbSet<Cluster> Clusters => Set<Cluster>();
    public DbSet<NodeGroup> NodeGroups => Set<NodeGroup>();
    public DbSet<Quota> Quotas => Set<Quota>();
    public DbSet<ServiceRecord> Services => Set<ServiceRecord>();
    public DbSet<ClusterCertificateAuthority> CertificateAuthorities => Set<ClusterCertificateAuthority>();
    public DbSet<ClusterEvent> ClusterEvents => Set<ClusterEvent>();
    public DbSet<ClusterCloudCredential> CloudCredentials => Set<ClusterCloudCredential>();
    public DbSet<SimulatedResource> SimulatedResources => Set<SimulatedResource>();
    public DbSet<NodeBootstrapCredential> NodeCredentials => Set<NodeBootstrapCredential>();
    public DbSet<NodeBootstrapState> NodeStates => Set<NodeBootstrapState>();
    public DbSet<SingletonLease> SingletonLeases => Set<SingletonLease>();
    public DbSet<ReplicaRecord> Replicas => Set<ReplicaRecord>();
    public DbSet<ListVersion> ListVersions => Set<ListVersion>();

    /// <summary>How JSON columns are (de)serialised (public: the compiled models reference it).</summary>
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    protected override void OnModelCreating(ModelBuilder b)
    {
        b.Entity<ClusterTemplate>(e =>
        {
            e.ToTable("cluster_templates");
            e.HasKey(x => x.Id);
            e.HasIndex(x => x.Uuid).IsUnique();
            e.HasIndex(x => new { x.ProjectId, x.Name });
            e.Property(x => x.Uuid).HasMaxLength(36);
            e.Property(x => x.Name).HasMaxLength(255);
            e.Property(x => x.ProjectId).HasMaxLength(64);
            e.Property(x => x.UserId).HasMaxLength(64);
            JsonColumn(e.Property(x => x.Labels));
        });

        b.Entity<Cluster>(e =>
        {
            e.ToTable("clusters");
            e.HasKey(x => x.Id);
            e.HasIndex(x => x.Uuid).IsUnique();
            // Names are unique per project among clusters that are not being deleted: a tenant may re-create
            // "mycluster" while the old one is still being torn down (the filter is valid SQL for SQLite and PostgreSQL).
            e.HasIndex(x => new { x.ProjectId, x.Name }).IsUnique()
                .HasFilter("\"Operation\" IS NULL OR (\"Operation\" <> 'delete' AND \"Status\" <> 'DELETE_FAILED')");
            e.HasIndex(x => x.ClusterTemplateId);
            e.HasIndex(x => x.NextReconcileAt);
            e.Property(x => x.Uuid).HasMaxLength(36);
            e.Property(x => x.Name).HasMaxLength(255);
            e.Property(x => x.ProjectId).HasMaxLength(64);
            e.Property(x => x.UserId).HasMaxLength(64);
            e.Property(x => x.Status).HasMaxLength(32);
            e.Property(x => x.CaRotationStep).HasMaxLength(16);
            JsonColumn(e.Property(x => x.Labels));
            JsonColumn(e.Property(x => x.HealthStatusReason));
            JsonColumn(e.Property(x => x.Conditions));
            e.HasMany(x => x.NodeGroups).WithOne().HasForeignKey(n => n.ClusterDbId).OnDelete(DeleteBehavior.Cascade);
            e.Property<long>("RowVersion").IsConcurrencyToken();
        });

        b.Entity<NodeGroup>(e =>
        {
            e.ToTable("nodegroups");
            e.HasKey(x => x.Id);
            e.HasIndex(x => x.Uuid).IsUnique();
            e.HasIndex(x => new { x.ClusterDbId, x.Name }).IsUnique();
            e.Property(x => x.Uuid).HasMaxLength(36);
            e.Property(x => x.Name).HasMaxLength(255);
            JsonColumn(e.Property(x => x.Labels));
            JsonColumn(e.Property(x => x.NodeAddresses));
            JsonColumn(e.Property(x => x.NodesToRemove));
        });

        b.Entity<Quota>(e =>
        {
            e.ToTable("quotas");
            e.HasKey(x => x.Id);
            e.HasIndex(x => new { x.ProjectId, x.Resource }).IsUnique();
        });

        b.Entity<ServiceRecord>(e =>
        {
            e.ToTable("magnum_services");
            e.HasKey(x => x.Id);
            e.HasIndex(x => new { x.Host, x.Binary }).IsUnique();
        });

        b.Entity<ClusterCertificateAuthority>(e =>
        {
            e.ToTable("cluster_cas");
            e.HasKey(x => x.Id);
            e.HasIndex(x => new { x.ClusterUuid, x.CaType }).IsUnique();
        });

        b.Entity<ClusterCloudCredential>(e =>
        {
            e.ToTable("cluster_cloud_credentials");
            e.HasKey(x => x.Id);
            e.HasIndex(x => x.ClusterUuid).IsUnique();
        });

        b.Entity<ClusterEvent>(e =>
        {
            e.ToTable("cluster_events");
            e.HasKey(x => x.Id);
            e.HasIndex(x => new { x.ClusterUuid, x.Id });
        });

        b.Entity<NodeBootstrapCredential>(e =>
        {
            e.ToTable("node_credentials");
            e.HasKey(x => x.Id);
            e.HasIndex(x => x.TokenId).IsUnique();
            e.HasIndex(x => new { x.ClusterUuid, x.NodeName });
            e.Property(x => x.TokenId).HasMaxLength(32);
            e.Property(x => x.SecretHash).HasMaxLength(64);
            e.Property(x => x.Kind).HasMaxLength(16);
        });

        b.Entity<NodeBootstrapState>(e =>
        {
            e.ToTable("node_states");
            e.HasKey(x => x.Id);
            e.HasIndex(x => new { x.ClusterUuid, x.NodeName }).IsUnique();
            e.Property(x => x.Phase).HasMaxLength(32);
            e.Property(x => x.LogTail).HasMaxLength(8192);
            e.Property(x => x.Addresses).HasMaxLength(1024);
            e.Property(x => x.RotationStep).HasMaxLength(16);
            e.Property(x => x.RotationFailure).HasMaxLength(9216);
            e.Property(x => x.KubernetesVersion).HasMaxLength(64);
            e.Property(x => x.Revision).HasMaxLength(512);
            e.Property(x => x.KubeletVersion).HasMaxLength(64);
            e.Property(x => x.RetireStep).HasMaxLength(16);
            e.Property(x => x.RetireReason).HasMaxLength(512);
            e.Property(x => x.UnhealthyReason).HasMaxLength(512);
        });

        b.Entity<SingletonLease>(e =>
        {
            e.ToTable("singleton_leases");
            e.HasKey(x => x.Id);
            e.HasIndex(x => x.Name).IsUnique();
            e.Property(x => x.Name).HasMaxLength(64);
            e.Property(x => x.Owner).HasMaxLength(256);
        });

        // Added by an expand migration (ReplicaRegistry): a new table, which replicas of the release before ignore.
        b.Entity<ReplicaRecord>(e =>
        {
            e.ToTable("replicas");
            e.HasKey(x => x.Id);
            e.HasIndex(x => x.HeartbeatAt);
            e.Property(x => x.Id).HasMaxLength(128);
            e.Property(x => x.Host).HasMaxLength(256);
            e.Property(x => x.Version).HasMaxLength(256);
            e.Property(x => x.SchemaNewest).HasMaxLength(150);
            e.Property(x => x.SchemaOldest).HasMaxLength(150);
        });

        b.Entity<ListVersion>(e =>
        {
            e.ToTable("list_versions");
            e.HasKey(x => x.Name);
            e.Property(x => x.Name).HasMaxLength(32);
        });

        b.Entity<SimulatedResource>(e =>
        {
            e.ToTable("simulated_resources");
            e.HasKey(x => x.Id);
            e.HasIndex(x => new { x.ClusterUuid, x.Kind, x.Name }).IsUnique();
        });
    }

    public override int SaveChanges(bool acceptAllChangesOnSuccess)
    {
        BumpRowVersions();
        return base.SaveChanges(acceptAllChangesOnSuccess);
    }

    public override Task<int> SaveChangesAsync(bool acceptAllChangesOnSuccess, CancellationToken cancellationToken = default)
    {
        BumpRowVersions();
        return base.SaveChangesAsync(acceptAllChangesOnSuccess, cancellationToken);
    }

    /// <summary>Optimistic concurrency on clusters: API writes and conductor writes never silently overwrite each other.</summary>
    private void BumpRowVersions()
    {
        foreach (var entry in ChangeTracker.Entries<Cluster>())
        {
            if (entry.State is EntityState.Modified or EntityState.Added)
            {
                var prop = entry.Property<long>("RowVersion");
                prop.CurrentValue = prop.OriginalValue + 1;
            }
        }
    }

    private static void JsonColumn<T>(PropertyBuilder<T> property)
    {
        var converter = new ValueConverter<T, string>(
            v => JsonSerializer.Serialize(v, Json),
            v => JsonSerializer.Deserialize<T>(v, Json)!);
        var comparer = new ValueComparer<T>(
            (a, c) => JsonSerializer.Serialize(a, Json) == JsonSerializer.Serialize(c, Json),
            v => JsonSerializer.Serialize(v, Json).GetHashCode(),
            v => JsonSerializer.Deserialize<T>(JsonSerializer.Serialize(v, Json), Json)!);
        property.HasConversion(converter, comparer);
    }
}

public sealed class SqliteMagnetarDbContext(DbContextOptions<SqliteMagnetarDbContext> options) : MagnetarDbContext(options)
{
    protected override void ConfigureConventions(ModelConfigurationBuilder configurationBuilder)
    {
        // SQLite has no native timestamp type; store ticks so comparisons and ORDER BY run in the database.
        configurationBuilder.Properties<DateTimeOffset>().HaveConversion<DateTimeOffsetToBinaryConverter>();
    }
}

public sealed class PostgresMagnetarDbContext(DbContextOptions<PostgresMagnetarDbContext> options) : MagnetarDbContext(options);
