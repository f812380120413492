using Magnetar.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Magnetar.Tests;

/// <summary>
/// Expand-then-contract (docs/rolling-upgrade.md): every migration is expand-only unless declared
/// <see cref="ContractMigrationAttribute"/>, judged from EF's own migration operations; and the verdicts
/// <c>magnetar migrate --check</c> gives from the live replicas.
/// </summary>
public sealed class SchemaPolicyTests
{
    /// <summary>This build's newest migration, without its timestamp (what a replica says it was built with).</summary>
    public static string NewestMigration()
    {
        using var context = new SqliteMagnetarDbContext(new DbContextOptionsBuilder<SqliteMagnetarDbContext>().UseSqlite("Data Source=:memory:").Options);
        var newest = context.Database.GetMigrations().Last();
        return newest[(newest.IndexOf('_') + 1)..];
    }

    private static MagnetarDbContext Sqlite() => new SqliteDesignTimeFactory().CreateDbContext([]);
    private static MagnetarDbContext Postgres() => new PostgresDesignTimeFactory().CreateDbContext([]);

    public static TheoryData<string> Providers => new() { "sqlite", "postgres" };

    [Theory]
    [MemberData(nameof(Providers))]
    public void Every_migration_not_declared_contract_only_adds(string provider)
    {
        using var db = provider == "sqlite" ? Sqlite() : Postgres();
        var migrations = SchemaPolicy.Migrations(db);
        Assert.Contains(migrations, m => m.Name == SchemaPolicy.RegistryMigration);
        Assert.Contains(migrations, m => m.Name == SchemaPolicy.LegacyNewest);
        foreach (var m in migrations)
        {
            if (!m.Declared)
                Assert.True(m.ContractOperations.Count == 0 && m.Kind == MigrationKind.Expand,
                    $"{provider} migration {m.Id} is not declared [ContractMigration] but it {string.Join("; ", m.ContractOperations)}. " +
                    "Split it: add now (expand), drop or tighten a release later in a migration declared [ContractMigration(requiresBuiltWith, reason)].");
            else
            {
                var required = migrations.ToList().FindIndex(x => x.Name == m.RequiresBuiltWith);
                Assert.True(required >= 0 && required < m.Position,
                    $"{m.Id} requires replicas built with '{m.RequiresBuiltWith}', which must be an earlier migration of this build");
                Assert.False(string.IsNullOrWhiteSpace(m.Reason), $"{m.Id} gives no reason");
            }
        }
    }

    [Fact]
    public void Both_providers_have_the_same_migrations_in_the_same_order_and_kind()
    {
        using var s = Sqlite();
        using var p = Postgres();
        Assert.Equal(SchemaPolicy.Migrations(s).Select(m => (m.Name, m.Kind, m.RequiresBuiltWith)), SchemaPolicy.Migrations(p).Select(m => (m.Name, m.Kind, m.RequiresBuiltWith)));
    }

    [Fact]
    public void The_registry_migration_is_itself_expand_and_the_newest_this_release_adds()
    {
        using var db = Postgres();
        var migrations = SchemaPolicy.Migrations(db);
        var registry = migrations.Single(m => m.Name == SchemaPolicy.RegistryMigration);
        Assert.Equal(MigrationKind.Expand, registry.Kind);
        Assert.False(registry.Declared);
        Assert.Empty(registry.ContractOperations);
        // LegacyNewest is what a replica without a registry row was built with at most: the migration just before it.
        Assert.Equal(SchemaPolicy.LegacyNewest, migrations[registry.Position - 1].Name);
    }

    private sealed class Ops(Action<MigrationBuilder> up) : Migration
    {
        protected override void Up(MigrationBuilder b) => up(b);
    }

    private static IReadOnlyList<string> Judge(Action<MigrationBuilder> up) => SchemaPolicy.ContractOperations(new Ops(up));

    [Fact]
    public void The_classifier_flags_what_an_older_replica_cannot_survive()
    {
        // Expand: new table with a unique index and a foreign key, nullable column, NOT NULL with a default, index, relaxing NOT NULL.
        Assert.Empty(Judge(b =>
        {
            b.CreateTable("widgets", t => new { Id = t.Column<long>(nullable: false), Cluster = t.Column<long>(nullable: false) },
                constraints: t => t.PrimaryKey("PK_widgets", x => x.Id));
            b.CreateIndex("IX_widgets_Cluster", "widgets", "Cluster", unique: true);
            b.AddForeignKey("FK_widgets_clusters", "widgets", "Cluster", "clusters", principalColumn: "Id");
            b.AddColumn<string>("Note", "clusters", nullable: true);
            b.AddColumn<int>("Weight", "clusters", nullable: false, defaultValue: 0);
            b.AddColumn<DateTimeOffset>("Seen", "clusters", nullable: false, defaultValueSql: "now()");
            b.CreateIndex("IX_clusters_Note", "clusters", "Note");
            b.AlterColumn<string>("Name", "clusters", maxLength: 512, nullable: true, oldMaxLength: 255, oldNullable: false);
        }));

        // Contract, each on its own.
        var cases = new (string Expect, Action<MigrationBuilder> Up)[]
        {
            ("adds NOT NULL column clusters.Weight without a database default", b => b.AddColumn<int>("Weight", "clusters", nullable: false)),
            ("drops column clusters.Labels", b => b.DropColumn("Labels", "clusters")),
            ("drops table quotas", b => b.DropTable("quotas")),
            ("renames column clusters.Name to Title", b => b.RenameColumn("Name", "clusters", "Title")),
            ("renames table quotas to limits", b => b.RenameTable("quotas", newName: "limits")),
            ("alters column clusters.Note", b => b.AlterColumn<string>("Note", "clusters", nullable: false, oldNullable: true)),
            ("alters column clusters.Name", b => b.AlterColumn<string>("Name", "clusters", maxLength: 64, oldMaxLength: 255)),
            ("adds unique index IX_clusters_Name on existing table clusters", b => b.CreateIndex("IX_clusters_Name", "clusters", "Name", unique: true)),
            ("drops index IX_clusters_NextReconcileAt", b => b.DropIndex("IX_clusters_NextReconcileAt", "clusters")),
            ("runs SQL (UPDATE clusters SET \"Name\" = lower(\"Name\"))", b => b.Sql("UPDATE clusters\n SET \"Name\" = lower(\"Name\")")),
        };
        foreach (var (expect, up) in cases)
        {
            var found = Judge(up);
            Assert.True(found.Count == 1 && found[0].StartsWith(expect), $"expected '{expect}', got [{string.Join("; ", found)}]");
        }
    }

    // ---- verdicts (SchemaCompatibility.Judge): a build of four migrations whose last one is contract.

    private static readonly IReadOnlyList<MigrationInfo> Build =
    [
        new("1_Initial", "Initial", 0, MigrationKind.Expand, null, null, []),
        new("2_NodeReplacement", "NodeReplacement", 1, MigrationKind.Expand, null, null, []),
        new("3_ReplicaRegistry", "ReplicaRegistry", 2, MigrationKind.Expand, null, null, []),
        new("4_DropOldThing", "DropOldThing", 3, MigrationKind.Contract, "ReplicaRegistry", "nothing reads clusters.OldThing since ReplicaRegistry", ["drops column clusters.OldThing"]),
    ];

    private static ReplicaView Registered(string id, string newest, string? needs = null) => new(id, "h", 1, "v", newest, needs ?? newest, DateTimeOffset.UtcNow, true);

    [Fact]
    public void Expand_migrations_are_safe_with_any_replica_and_a_contract_one_waits_for_every_replica_to_be_new_enough()
    {
        var stale = TimeSpan.FromSeconds(30);
        var legacy = ReplicaView.Legacy("pid 42 on this host", "h", 42);

        // An old replica (and a legacy one) live: the expand migration is safe, the contract one is not.
        var a = SchemaCompatibility.Judge(Build, ["1_Initial", "2_NodeReplacement"], [Registered("old", "NodeReplacement"), legacy, Registered("new", "DropOldThing")], stale);
        Assert.Empty(a.Pending[0].Blocking);
        Assert.Equal(["old", "pid 42 on this host"], a.Pending[1].Blocking.Select(r => r.Id));
        Assert.Equal("4_DropOldThing", a.FirstBlocked!.Migration.Id);
        Assert.False(a.Compatible);
        Assert.Contains("NOT safe with old, pid 42 on this host", a.Render(DateTimeOffset.UtcNow));

        // Every replica built with ReplicaRegistry or newer (or with a migration this build does not know: newer): safe.
        var b = SchemaCompatibility.Judge(Build, ["1_Initial", "2_NodeReplacement", "3_ReplicaRegistry"],
            [Registered("r1", "ReplicaRegistry"), Registered("r2", "DropOldThing"), Registered("future", "SomethingLater", needs: "ReplicaRegistry")], stale);
        Assert.True(b.Compatible, b.Render(DateTimeOffset.UtcNow));
        Assert.Null(b.FirstBlocked);

        // A contract migration already applied (forced) while an old replica is live: reported, not compatible.
        var c = SchemaCompatibility.Judge(Build, ["1_Initial", "2_NodeReplacement", "3_ReplicaRegistry", "4_DropOldThing"], [Registered("old", "NodeReplacement")], stale);
        Assert.Empty(c.Pending);
        Assert.False(c.Compatible);
        Assert.Contains("4_DropOldThing is applied, but replica old", string.Join("\n", c.Problems));

        // A replica that needs a migration the database lacks and this build cannot apply.
        var d = SchemaCompatibility.Judge(Build, ["1_Initial", "2_NodeReplacement", "3_ReplicaRegistry", "4_DropOldThing", "5_SomethingLater"],
            [Registered("future", "SomethingEvenLater")], stale);
        Assert.False(d.Compatible);
        Assert.Contains("needs migration SomethingEvenLater", string.Join("\n", d.Problems));
        Assert.Contains("this build does not know (5_SomethingLater)", d.Render(DateTimeOffset.UtcNow));
    }
}

/// <summary>
/// <c>magnetar migrate --check</c> on the real binary with SQLite: a serving replica is listed from its registry row
/// (pid, version, schema), which its SIGTERM removes; bad arguments and an unreachable database are clear errors.
/// </summary>
[Trait("Category", "Integration")]
public sealed class MigrateCheckCliTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("migrate-check-").FullName;
    private static readonly string Dll = Path.Combine(AppContext.BaseDirectory, "magnetar.dll");

    public Task InitializeAsync() => Task.CompletedTask;
    public Task DisposeAsync() { try { Directory.Delete(_dir, true); } catch { } return Task.CompletedTask; }

    private Task<(int Code, string Output)> Magnetar(params string[] args)
        => PreviousRelease.RunAsync("dotnet", [Dll, .. args], null, 120);

    [Fact]
    public async Task Check_lists_a_serving_replica_by_its_registry_row_until_it_stops()
    {
        var data = Path.Combine(_dir, "data");
        var (code, text) = await Magnetar("migrate", "--check", "--data-dir", data);
        Assert.True(code == 0, text);
        Assert.Matches(@"_ReplicaRegistry\s+expand: safe with every live replica", text);
        Assert.Contains("live replicas: 0", text);

        await using var server = new MagnetarProcess($"http://127.0.0.1:{MagnetarProcess.FreePort()}", data, "--Magnetar:Replicas:HeartbeatSeconds=1");
        await server.StartAsync();
        (code, text) = await Magnetar("migrate", "--check", "--data-dir", data);
        Assert.True(code == 0, text);
        Assert.Contains("live replicas: 1", text);
        // Built with (and needing) this build's newest migration, whichever that is.
        var newest = SchemaPolicyTests.NewestMigration();
        Assert.Matches($@"host \S+\s+pid {server.Pid}\s+version \S+\s+built with {newest}\s+needs {newest}", text);
        Assert.Contains("pending migrations: none", text);
        (code, text) = await Magnetar("migrate", "--data-dir", data);
        Assert.True(code == 0 && text.Contains("nothing to apply"), text);

        await server.TerminateAsync();
        (code, text) = await Magnetar("migrate", "--check", "--data-dir", data);
        Assert.True(code == 0, text);
        Assert.Contains("live replicas: 0", text);
    }

    [Fact]
    public async Task Bad_arguments_and_an_unreachable_database_are_clear_errors()
    {
        var (code, text) = await Magnetar("migrate", "--check", "--force", "--data-dir", Path.Combine(_dir, "x"));
        Assert.Equal(2, code);
        Assert.Contains("--check changes nothing", text);
        (code, text) = await Magnetar("migrate", "--check", "--data-dir", Path.Combine(_dir, "y"), "--Magnetar:Database:Provider=postgres",
            $"--Magnetar:Database:ConnectionString=Host=127.0.0.1;Port={MagnetarProcess.FreePort()};Database=x;Username=u;Password=p;Timeout=2");
        Assert.Equal(1, code);
        Assert.Contains("migrate: the database:", text);
        Assert.DoesNotContain("Unhandled exception", text);
    }
}
