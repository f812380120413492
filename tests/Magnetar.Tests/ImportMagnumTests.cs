using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Magnetar.Identity;
using MySqlConnector;
using Npgsql;
using Xunit.Abstractions;

namespace Magnetar.Tests;

/// <summary>
/// Runs with the suite's MariaDB (MAGNETAR_TEST_MARIADB, from deploy/mariadb.sh env), and Magnum's own migrations
/// (magnum-db-manage, Debian's magnum-common); required when MAGNETAR_REQUIRE_INTEGRATION=1.
/// </summary>
public sealed class MariaDbFactAttribute : FactAttribute
{
    public MariaDbFactAttribute()
    {
        if (ImportMagnumTests.MariaDb is null && Environment.GetEnvironmentVariable("MAGNETAR_REQUIRE_INTEGRATION") != "1")
            Skip = "MAGNETAR_TEST_MARIADB is not set (scripts/test starts MariaDB with deploy/mariadb.sh)";
    }

    /// <summary>The test also needs the suite's PostgreSQL (MAGNETAR_TEST_POSTGRES).</summary>
    public bool AlsoPostgres
    {
        get => field;
        init
        {
            field = value;
            if (value && Skip is null && TestHost.PostgresConnectionString is null && Environment.GetEnvironmentVariable("MAGNETAR_REQUIRE_INTEGRATION") != "1")
                Skip = "MAGNETAR_TEST_POSTGRES is not set (scripts/test starts PostgreSQL)";
        }
    }
}

/// <summary>
/// <c>magnetar import-magnum</c> (issue #16, "Moving over from Magnum") on the real binary, against a real Magnum 15
/// database: made by Magnum's own migrations (<c>magnum-db-manage upgrade</c>) on MariaDB and filled through Magnum's
/// own DB layer (Fixtures/magnum/seed.py). The dry run writes nothing and says what it would do; --apply imports the
/// templates (same uuids, owners, flags, labels) and quotas, which Magnetar's API and the OpenStack CLI then serve and a
/// cluster is created from; a second --apply imports nothing twice. Bad URLs and databases that are not Magnum 15's
/// are refused with one line that never shows the password.
/// </summary>
[Trait("Category", "Integration")]
public sealed class ImportMagnumTests(ITestOutputHelper output, MagnumSource source) : IAsyncLifetime, IClassFixture<MagnumSource>
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private void Step(string what) => output.WriteLine($"{_clock.Elapsed.TotalSeconds,6:F1}s {what}");

    public static string? MariaDb => Environment.GetEnvironmentVariable("MAGNETAR_TEST_MARIADB") is { Length: > 0 } cs ? cs : null;

    private readonly string _dir = Directory.CreateTempSubdirectory("import-magnum-").FullName;
    private readonly List<string> _databases = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var db in _databases)
        {
            try { await Sql(null, $"DROP DATABASE IF EXISTS `{db}`"); } catch { }
        }
        try { Directory.Delete(_dir, true); } catch { }
    }

    [MariaDbFact]
    public Task Sqlite_dry_run_then_apply_imports_templates_and_quotas_once()
        // With the autoscaler endpoint on: the many-label template asks for autoscaling, and a cluster is made from it.
        => ImportsOnce([$"--Magnetar:Autoscaler:Port={MagnetarProcess.FreePort()}", "--Magnetar:Autoscaler:Listen=127.0.0.1"], cliAndCluster: true);

    [MariaDbFact(AlsoPostgres = true)]
    public async Task Postgres_dry_run_then_apply_imports_templates_and_quotas_once()
    {
        var pg = TestHost.PostgresConnectionString ?? throw new InvalidOperationException("MAGNETAR_TEST_POSTGRES is not set");
        var database = "magnetar_import_" + Guid.NewGuid().ToString("N")[..10];
        async Task Pg(string sql)
        {
            await using var conn = new NpgsqlConnection(pg);
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand(sql, conn);
            await cmd.ExecuteNonQueryAsync();
        }
        await Pg($"CREATE DATABASE \"{database}\"");
        try
        {
            var cs = new NpgsqlConnectionStringBuilder(pg) { Database = database, Pooling = false }.ConnectionString;
            await ImportsOnce(["--Magnetar:Database:Provider=postgres", $"--Magnetar:Database:ConnectionString={cs}"], cliAndCluster: false);
        }
        finally { await PgDatabases.DropAsync(pg, database); }
    }

    /// <summary>The whole move; <paramref name="configArgs"/> configure both the server and the import (its database, …).</summary>
    private async Task ImportsOnce(string[] configArgs, bool cliAndCluster)
    {
        var src = source;
        Assert.True(src.Ready, src.Failure);
        var (projA, projB, alice, bob, adminProject) = (src.ProjectA, src.ProjectB, src.Alice, src.Bob, MagnumSource.AdminProject);
        var (tPublic, tA, tHidden, tSwarm, tClash, tB, heat) = (src.Public, src.PrivateA, src.Hidden, src.Swarm, src.Clash, src.PrivateB, src.HeatCluster);
        var (magnumUrl, spec, manyLabels) = (src.Url, src.Spec, src.ManyLabels);
        // The tenants of the Magnum rows, in Magnetar's built-in identity (made once by the fixture).
        var data = Path.Combine(_dir, "data");
        Directory.CreateDirectory(data);
        File.Copy(Path.Combine(src.IdentityDir, "identity.json"), Path.Combine(data, "identity.json"));

        // Magnetar already holds a template named "mine" in proj-a and a quota for proj-b (10 clusters).
        var url = $"http://127.0.0.1:{MagnetarProcess.FreePort()}";
        string[] serverArgs = ["--Magnetar:Cloud:Simulated:StepDelayMs=20", "--Magnetar:Conductor:PollIntervalMs=100", .. configArgs];
        await using var server = new MagnetarProcess(url, data, serverArgs);
        await server.StartAsync(() => File.Exists(Path.Combine(data, "openrc-demo")));
        var demoRc = File.ReadAllText(Path.Combine(data, "openrc-demo"));
        foreach (var (user, project) in new[] { ("alice", "proj-a"), ("bob", "proj-b") })
            File.WriteAllText(Path.Combine(data, "openrc-" + user), demoRc
                .Replace("OS_USERNAME=demo", "OS_USERNAME=" + user).Replace("OS_PROJECT_NAME=demo", "OS_PROJECT_NAME=" + project)
                .Replace(OpenStackCli.ReadOpenrc(Path.Combine(data, "openrc-demo"))["OS_PASSWORD"], MagnumSource.Password(user)));
        var asAdmin = new MagnumSession(await Client(server, "openrc"), () => server.Log);
        var asAlice = new MagnumSession(await Client(server, "openrc-alice"), () => server.Log);
        var asBob = new MagnumSession(await Client(server, "openrc-bob"), () => server.Log);
        Step("server started");
        var mine = (await asAlice.Api(HttpMethod.Post, "/v1/clustertemplates", new JsonObject
        {
            ["name"] = "mine", ["coe"] = "kubernetes", ["image_id"] = "fedora-coreos-40", ["external_network_id"] = "public",
        }, HttpStatusCode.Created))["uuid"]!.GetValue<string>();
        await asAdmin.Api(HttpMethod.Post, "/v1/quotas", new JsonObject { ["project_id"] = projB, ["resource"] = "Cluster", ["hard_limit"] = 10 }, HttpStatusCode.Created);

        Step("pre-existing state");
        // Dry run: everything listed, nothing written.
        var (rc, dry) = Magnetar(["import-magnum", "--connection", magnumUrl, "--data-dir", data, .. configArgs]);
        Assert.True(rc == 0, dry);
        Assert.Contains("Dry run: nothing is written", dry);
        Assert.Contains($"would import     {tPublic}  name 'k8s-public'  project {adminProject}  public  coe kubernetes", dry);
        Assert.Contains($"would import     {tA}  name 'k8s-a'  project {projA}  private  coe kubernetes  labels {manyLabels.Count}", dry);
        // Without the autoscaler endpoint, the template asking for autoscaling comes with a note (it is imported all the same).
        const string autoscalingNote = "note: its label auto_scaling_enabled=true makes Magnetar refuse clusters from it until the autoscaler endpoint is on";
        Assert.Equal(cliAndCluster ? 0 : 1, dry.Split('\n').Count(l => l.Contains(autoscalingNote)));
        Assert.Contains($"would import     {tHidden}  name 'k8s-old'  project {adminProject}  public, hidden  coe kubernetes", dry);
        Assert.Contains($"would import     {tB}  name 'k8s-b'  project {projB}  private  coe kubernetes", dry);
        Assert.Contains($"skipped          {tSwarm}  name 'swarm-a'  project {projA}  private  coe swarm: its COE is swarm: Magnetar runs only kubernetes", dry);
        Assert.Contains($"skipped          {tClash}  name 'mine'  project {projA}  private  coe kubernetes: project {projA} already has a Magnetar template named 'mine' (uuid {mine})", dry);
        Assert.Contains($"would import     project {projA}  resource Cluster  hard_limit 5", dry);
        Assert.Contains($"differs, left    project {projB}  resource Cluster  hard_limit 3: Magnetar has hard_limit 10, which is kept", dry);
        Assert.Contains("they stay with Magnum and are not adopted by Magnetar (out of scope), nothing is written for them", dry);
        Assert.Contains($"stays with Magnum  {heat}  name 'heat-prod'  project {projA}  status CREATE_COMPLETE  stack_id 5f0c7b3a-3d2e-4c1b-9a8f-7e6d5c4b3a21", dry);
        Assert.Contains("Summary: cluster templates: 4 would be imported, 0 already present, 2 skipped; quotas: 1 would be imported, 0 unchanged, 1 differ", dry);
        Assert.DoesNotContain(new MySqlConnectionStringBuilder(MariaDb!).Password!, dry);
        var templates = (await asAdmin.Api(HttpMethod.Get, "/v1/clustertemplates", null, HttpStatusCode.OK))["clustertemplates"]!.AsArray();
        Assert.Equal([mine], templates.Select(t => t!["uuid"]!.GetValue<string>()));
        Assert.Single((await asAdmin.Api(HttpMethod.Get, "/v1/quotas?all_tenants=true", null, HttpStatusCode.OK))["quotas"]!.AsArray());

        Step("dry run checked");
        // --apply, while the server runs.
        var (rc2, applied) = Magnetar(["import-magnum", "--connection", magnumUrl, "--apply", "--data-dir", data, .. configArgs]);
        Assert.True(rc2 == 0, applied);
        foreach (var t in new[] { tPublic, tA, tHidden, tB }) Assert.Contains($"imported         {t}", applied);
        Assert.Contains($"imported         project {projA}  resource Cluster  hard_limit 5", applied);
        Assert.Contains("Summary: cluster templates: 4 imported, 0 already present, 2 skipped; quotas: 1 imported, 0 unchanged, 1 differ", applied);

        Step("applied");
        // Each imported template is Magnum's row, field by field, under its uuid.
        var all = (await asAdmin.Api(HttpMethod.Get, "/v1/clustertemplates", null, HttpStatusCode.OK))["clustertemplates"]!.AsArray()
            .Select(t => t!["uuid"]!.GetValue<string>()).Order().ToList();
        Assert.Equal(new[] { mine, tPublic, tA, tHidden, tB }.Order(), all);
        foreach (var m in spec["cluster_templates"]!.AsArray().Select(n => n!.AsObject()))
        {
            var uuid = m["uuid"]!.GetValue<string>();
            if (uuid == tSwarm || uuid == tClash)
            {
                await asAdmin.Api(HttpMethod.Get, $"/v1/clustertemplates/{uuid}", null, HttpStatusCode.NotFound);
                continue;
            }
            var shown = await asAdmin.Api(HttpMethod.Get, $"/v1/clustertemplates/{uuid}", null, HttpStatusCode.OK);
            foreach (var (key, value) in m)
                Assert.True(JsonNode.DeepEquals(value, shown[key]), $"{m["name"]} {key}: Magnum {value?.ToJsonString()}, Magnetar {shown[key]?.ToJsonString()}");
            Assert.Equal(m["public"]?.GetValue<bool>() ?? false, shown["public"]!.GetValue<bool>());
            Assert.Equal(m["hidden"]?.GetValue<bool>() ?? false, shown["hidden"]!.GetValue<bool>());
            Assert.Equal(m["floating_ip_enabled"]?.GetValue<bool>() ?? true, shown["floating_ip_enabled"]!.GetValue<bool>());
        }
        // Visibility as in Magnum: alice sees the public template and her own, not the hidden one nor bob's; bob the
        // public one and his. The hidden one still shows by uuid.
        async Task<List<string>> Listed(MagnumSession s) => (await s.Api(HttpMethod.Get, "/v1/clustertemplates", null, HttpStatusCode.OK))["clustertemplates"]!
            .AsArray().Select(t => t!["uuid"]!.GetValue<string>()).Order().ToList();
        Assert.Equal(new[] { mine, tPublic, tA }.Order(), await Listed(asAlice));
        Assert.Equal(new[] { tPublic, tB }.Order(), await Listed(asBob));
        await asBob.Api(HttpMethod.Get, $"/v1/clustertemplates/{tA}", null, HttpStatusCode.NotFound);
        var quotas = (await asAdmin.Api(HttpMethod.Get, "/v1/quotas?all_tenants=true", null, HttpStatusCode.OK))["quotas"]!.AsArray()
            .ToDictionary(q => q!["project_id"]!.GetValue<string>(), q => q!["hard_limit"]!.GetValue<int>());
        Assert.Equal(new Dictionary<string, int> { [projA] = 5, [projB] = 10 }, quotas);

        // Again: nothing twice.
        var (rc3, again) = Magnetar(["import-magnum", "--connection", magnumUrl, "--apply", "--data-dir", data, .. configArgs]);
        Assert.True(rc3 == 0, again);
        foreach (var t in new[] { tPublic, tA, tHidden, tB }) Assert.Contains($"already present  {t}", again);
        Assert.Contains($"unchanged        project {projA}  resource Cluster  hard_limit 5", again);
        Assert.Contains("Summary: cluster templates: 0 imported, 4 already present, 2 skipped; quotas: 0 imported, 1 unchanged, 1 differ", again);
        Assert.Equal(5, (await Listed(asAdmin)).Count);
        Assert.Equal(2, (await asAdmin.Api(HttpMethod.Get, "/v1/quotas?all_tenants=true", null, HttpStatusCode.OK))["quotas"]!.AsArray().Count);
        Step("api checked and applied again");
        if (!cliAndCluster) return;
        // The real OpenStack CLI shows the imported template; a cluster is created from it on the simulated cloud and
        // inherits its labels.
        var home = Path.Combine(_dir, "home");
        Directory.CreateDirectory(home);
        var cli = await OpenStackCli.ExecAsync("openstack", home, OpenStackCli.ReadOpenrc(Path.Combine(data, "openrc-alice")),
            ["coe", "cluster", "template", "show", tA, "-f", "json"]);
        Assert.True(cli.ExitCode == 0, cli.Stdout + cli.Stderr);
        var cliShown = JsonNode.Parse(cli.Stdout)!;
        Assert.Equal("k8s-a", cliShown["name"]!.GetValue<string>());
        Assert.Equal(tA, cliShown["uuid"]!.GetValue<string>());
        Assert.True(JsonNode.DeepEquals(manyLabels, cliShown["labels"]), cliShown["labels"]?.ToJsonString());
        Step("cli checked");
        var cluster = (await asAlice.Api(HttpMethod.Post, "/v1/clusters", new JsonObject
        {
            ["name"] = "moved", ["cluster_template_id"] = "k8s-a", ["node_count"] = 1, ["master_count"] = 1,
        }, HttpStatusCode.Accepted))["uuid"]!.GetValue<string>();
        var created = await asAlice.WaitFor(cluster, c => c["status"]!.GetValue<string>() is "CREATE_COMPLETE" or "CREATE_FAILED");
        Assert.True(created["status"]!.GetValue<string>() == "CREATE_COMPLETE", created.ToJsonString());
        Assert.Equal(tA, created["cluster_template_id"]!.GetValue<string>());
        Assert.Equal("true", created["labels"]!["auto_scaling_enabled"]!.GetValue<string>());

        Step("cluster created");
    }

    [MariaDbFact]
    public async Task A_database_that_is_not_Magnum_15s_is_refused_with_the_revision_found()
    {
        var data = Path.Combine(_dir, "data");
        var b = new MySqlConnectionStringBuilder(MariaDb!);
        string Url(string db) => $"mysql+pymysql://{Uri.EscapeDataString(b.UserID)}:{Uri.EscapeDataString(b.Password!)}@{b.Server}:{b.Port}/{db}?charset=utf8";

        var empty = await NewDatabase();
        var (code, text) = Magnetar("import-magnum", "--connection", Url(empty), "--data-dir", data);
        Assert.Equal(1, code);
        Assert.Equal($"magnetar import-magnum: {b.UserID}@{b.Server}:{b.Port}/{empty} is not Magnum's database: it has no cluster_template table (it has no tables at all)", text.Trim());

        var older = await NewDatabase();
        await Sql(older, "CREATE TABLE cluster_template (id INT PRIMARY KEY); CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL); INSERT INTO alembic_version VALUES ('1afee1db6cd0')");
        (code, text) = Magnetar("import-magnum", "--connection", Url(older), "--data-dir", data);
        Assert.Equal(1, code);
        Assert.Contains($"/{older} has Magnum schema revision 1afee1db6cd0, older than Magnum 15's (7da8489d6a68): upgrade it first with 'magnum-db-manage upgrade'", text);

        await Sql(older, "UPDATE alembic_version SET version_num = 'abcdef012345'");
        (code, text) = Magnetar("import-magnum", "--connection", Url(older), "--data-dir", data);
        Assert.Equal(1, code);
        Assert.Contains("has schema revision abcdef012345, which is not a Magnum 15 revision: this importer reads Magnum 15's schema (revision 7da8489d6a68)", text);

        await Sql(older, "DROP TABLE alembic_version");
        (code, text) = Magnetar("import-magnum", "--connection", Url(older), "--data-dir", data);
        Assert.Equal(1, code);
        Assert.Contains("is not a Magnum database made by magnum-db-manage: it has no alembic_version table", text);

        // A wrong password: the server's refusal, and neither password shown.
        var wrong = $"mysql+pymysql://{b.UserID}:N0t-the-Pa55word@{b.Server}:{b.Port}/{empty}";
        (code, text) = Magnetar("import-magnum", "--connection", wrong, "--data-dir", data);
        Assert.Equal(1, code);
        Assert.Contains($"cannot connect to Magnum's database {b.UserID}@{b.Server}:{b.Port}/{empty}: Access denied", text);
        Assert.DoesNotContain("N0t-the-Pa55word", text);

        // The plain MySqlConnector connection string works as well as the URL (here: up to the schema check).
        var cs = new MySqlConnectionStringBuilder(MariaDb!) { Database = empty }.ConnectionString;
        (code, text) = Magnetar("import-magnum", "--connection", cs, "--data-dir", data);
        Assert.Equal(1, code);
        Assert.Contains("is not Magnum's database: it has no cluster_template table", text);
        Assert.DoesNotContain(b.Password!, text);
        Assert.False(Directory.Exists(data), "a refused import wrote into the data directory");
    }

    [Fact]
    public void Bad_urls_and_unreachable_databases_get_one_line_without_the_password()
    {
        var data = Path.Combine(_dir, "data");
        const string secret = "S3cret-p%40ss";
        var port = MagnetarProcess.FreePort();
        (string Connection, string Expected)[] cases =
        [
            ($"postgresql://magnum:{secret}@127.0.0.1/magnum", "--connection: 'postgresql://' is not a MySQL/MariaDB URL"),
            ($"mysql+pymysql://magnum:{secret}@127.0.0.1:{port}", "--connection: no database named"),
            ($"mysql+pymysql://magnum:{secret}@127.0.0.1:99999/magnum", "--connection: the URL's port '99999' is not a port number"),
            ($"mysql+pymysql://magnum:{secret}@/magnum", "--connection: the URL names no host"),
            ("just some words", "--connection: neither a URL"),
            ($"Server=127.0.0.1;Colour=blue;Password={secret};Database=magnum", "--connection: not a valid MySqlConnector connection string"),
            ($"mysql+pymysql://magnum:{secret}@127.0.0.1:{port}/magnum?charset=utf8", $"cannot connect to Magnum's database magnum@127.0.0.1:{port}/magnum: "),
        ];
        foreach (var (connection, expected) in cases)
        {
            var (code, text) = Magnetar("import-magnum", "--connection", connection, "--data-dir", data);
            Assert.True(code == 1, $"{connection}: exit {code}: {text}");
            Assert.Contains("magnetar import-magnum: " + expected, text);
            Assert.Single(text.Trim().Split('\n'));
            Assert.DoesNotContain("S3cret", text);
            Assert.DoesNotContain(" at Magnetar.", text);
        }
        var (usage, help) = Magnetar("import-magnum", "--data-dir", data);
        Assert.Equal(2, usage);
        Assert.Contains("--connection URL is required", help);
        (usage, help) = Magnetar("import-magnum", "--connection", $"mysql://magnum:{secret}@127.0.0.1:{port}/magnum", "--aply", "--data-dir", data);
        Assert.Equal(2, usage);
        Assert.Contains("unknown option --aply", help);
        Assert.False(Directory.Exists(data), "a refused import wrote into the data directory");
    }

    [Fact]
    public void Urls_as_magnum_conf_writes_them_become_connection_strings()
    {
        var b = Server.ImportMagnumCommand.ParseConnection("mysql+pymysql://magnum:p%40ss%3Aw0rd@db.example:3307/magnum?charset=utf8&ssl_ca=/etc/ca.pem");
        Assert.Equal(("magnum", "p@ss:w0rd", "db.example", 3307u, "magnum", "/etc/ca.pem"), (b.UserID, b.Password, b.Server, b.Port, b.Database, b.SslCa));
        b = Server.ImportMagnumCommand.ParseConnection("mysql://root@[::1]/magnum");
        Assert.Equal(("root", "::1", 3306u, "magnum"), (b.UserID, b.Server, b.Port, b.Database));
        b = Server.ImportMagnumCommand.ParseConnection("mysql+pymysql://magnum:pw@localhost/magnum?unix_socket=/run/mysqld/mysqld.sock");
        Assert.Equal(("/run/mysqld/mysqld.sock", MySqlConnectionProtocol.UnixSocket), (b.Server, b.ConnectionProtocol));
        b = Server.ImportMagnumCommand.ParseConnection("Server=10.0.0.5;Port=3306;User ID=magnum;Password=x;Database=magnum");
        Assert.Equal(("10.0.0.5", "magnum"), (b.Server, b.Database));
        Assert.Equal(new Dictionary<string, string> { ["a"] = "1", ["b"] = "true", ["c"] = "x" },
            Server.ImportMagnumCommand.ParseLabels("""{"a": 1, "b": true, "c": "x"}"""));
        Assert.Empty(Server.ImportMagnumCommand.ParseLabels(null));
        Assert.Throws<FormatException>(() => Server.ImportMagnumCommand.ParseLabels("""{"a": {"nested": 1}}"""));
    }

    // ---------------------------------------------------------------- helpers

    private static async Task<Func<HttpClient>> Client(MagnetarProcess server, string openrc)
    {
        var client = await server.ClientAsync(openrc);
        return () => client;
    }

    private async Task<string> NewDatabase()
    {
        var name = "magnum_import_" + Guid.NewGuid().ToString("N")[..10];
        await Sql(null, $"CREATE DATABASE `{name}` CHARACTER SET utf8mb4");
        _databases.Add(name);
        return name;
    }

    internal static async Task Sql(string? database, string sql)
    {
        var b = new MySqlConnectionStringBuilder(MariaDb!) { Pooling = false, AllowUserVariables = true };
        if (database is not null) b.Database = database;
        await using var conn = new MySqlConnection(b.ConnectionString);
        await conn.OpenAsync();
        await using var cmd = new MySqlCommand(sql, conn);
        await cmd.ExecuteNonQueryAsync();
    }

    internal static (int Code, string Text) Magnetar(params string[] args)
        => BootstrapArtifactTests.Run("dotnet", [Path.Combine(AppContext.BaseDirectory, "magnetar.dll"), .. args]);
}

/// <summary>
/// The Magnum side, made once for the class: a database migrated by Magnum's own <c>magnum-db-manage upgrade</c> and
/// filled through Magnum's own DB layer (Fixtures/magnum/seed.py), whose rows belong to two tenants of a built-in
/// identity (<see cref="IdentityDir"/>) that each test copies into its data directory. Nothing when MariaDB is not
/// configured (the tests that need it are skipped then).
/// </summary>
public sealed class MagnumSource : IAsyncLifetime
{
    public const string AdminProject = "0c2f6a1e5b9d4e1f8a7b6c5d4e3f2a1b", AdminUser = "9d8c7b6a5f4e4d3c2b1a0f9e8d7c6b5a";
    public static string Password(string user) => user + "-pw-1";

    private readonly string _dir = Directory.CreateTempSubdirectory("magnum-source-").FullName;
    private string? _database;

    public bool Ready { get; private set; }
    public string Failure { get; private set; } = "MAGNETAR_TEST_MARIADB is not set";
    public string IdentityDir => Path.Combine(_dir, "identity");
    public string Url { get; private set; } = "";
    public JsonObject Spec { get; private set; } = new();
    public string ProjectA { get; private set; } = "";
    public string ProjectB { get; private set; } = "";
    public string Alice { get; private set; } = "";
    public string Bob { get; private set; } = "";
    // The rows' uuids: a public template, a private one of each tenant, a hidden one, a swarm one, one named like
    // a template the tenant already has in Magnetar, and a Heat cluster.
    public string Public { get; } = Guid.NewGuid().ToString();
    public string PrivateA { get; } = Guid.NewGuid().ToString();
    public string Hidden { get; } = Guid.NewGuid().ToString();
    public string Swarm { get; } = Guid.NewGuid().ToString();
    public string Clash { get; } = Guid.NewGuid().ToString();
    public string PrivateB { get; } = Guid.NewGuid().ToString();
    public string HeatCluster { get; } = Guid.NewGuid().ToString();
    public JsonObject ManyLabels { get; } = new()
    {
        ["kube_tag"] = "v1.31.1", ["auto_scaling_enabled"] = "true", ["min_node_count"] = "1", ["max_node_count"] = "5",
        ["auto_healing_enabled"] = "true", ["auto_healing_controller"] = "magnum-auto-healer", ["container_runtime"] = "containerd",
        ["cloud_provider_enabled"] = "true", ["calico_ipv4pool"] = "10.101.0.0/16", ["service_cluster_ip_range"] = "10.255.0.0/16",
        ["boot_volume_size"] = "40", ["master_lb_floating_ip_enabled"] = "false", ["monitoring_enabled"] = "false",
        ["availability_zone"] = "nova", ["dns_cluster_domain"] = "cluster.local",
    };

    public async Task InitializeAsync()
    {
        if (ImportMagnumTests.MariaDb is null) return;
        try
        {
            // Magnum's migrations (the slow part) run while the tenants are made.
            _database = "magnum_import_" + Guid.NewGuid().ToString("N")[..10];
            await ImportMagnumTests.Sql(null, $"CREATE DATABASE `{_database}` CHARACTER SET utf8mb4");
            var b = new MySqlConnectionStringBuilder(ImportMagnumTests.MariaDb);
            Url = $"mysql+pymysql://{Uri.EscapeDataString(b.UserID)}:{Uri.EscapeDataString(b.Password!)}@{b.Server}:{b.Port}/{_database}?charset=utf8";
            var conf = Path.Combine(_dir, "magnum.conf");
            await File.WriteAllTextAsync(conf, $"[DEFAULT]\nstate_path = {_dir}\n\n[database]\nconnection = {Url}\n");
            var migrate = Task.Run(() => BootstrapArtifactTests.Run("magnum-db-manage", ["--config-file", conf, "upgrade"]));
            foreach (var (user, project) in new[] { ("alice", "proj-a"), ("bob", "proj-b") })
            {
                var (code, text) = ImportMagnumTests.Magnetar("user-add", "--name", user, "--password", Password(user), "--project", project, "--role", "member", "--data-dir", IdentityDir);
                if (code != 0) throw new InvalidOperationException("user-add: " + text);
            }
            var identity = new BuiltInIdentityStore(IdentityDir);
            (ProjectA, ProjectB) = (identity.FindProject(null, "proj-a")!.Id, identity.FindProject(null, "proj-b")!.Id);
            (Alice, Bob) = (identity.FindUser(null, "alice")!.Id, identity.FindUser(null, "bob")!.Id);
            var (migrated, output) = await migrate;
            if (migrated != 0) throw new InvalidOperationException("magnum-db-manage upgrade: " + output);

            JsonObject Template(string uuid, string name, string project, string user, JsonObject more)
            {
                var t = new JsonObject
                {
                    ["uuid"] = uuid, ["name"] = name, ["project_id"] = project, ["user_id"] = user, ["coe"] = "kubernetes",
                    ["image_id"] = "fedora-coreos-40", ["external_network_id"] = "public", ["flavor_id"] = "m1.small",
                    ["master_flavor_id"] = "m1.medium", ["network_driver"] = "calico", ["cluster_distro"] = "fedora-coreos",
                    ["server_type"] = "vm", ["docker_storage_driver"] = "overlay2", ["labels"] = new JsonObject { ["kube_tag"] = "v1.31.1" },
                };
                foreach (var (k, v) in more) t[k] = v?.DeepClone();
                return t;
            }
            Spec = new JsonObject
            {
                ["cluster_templates"] = new JsonArray(
                    Template(Public, "k8s-public", AdminProject, AdminUser, new JsonObject
                    {
                        ["public"] = true, ["master_lb_enabled"] = true, ["floating_ip_enabled"] = false, ["docker_volume_size"] = 20,
                        ["dns_nameserver"] = "8.8.8.8", ["tags"] = "prod,gpu", ["http_proxy"] = "http://proxy:3128", ["no_proxy"] = "10.0.0.0/8",
                        ["apiserver_port"] = 6443, ["fixed_network"] = "private", ["fixed_subnet"] = "private-subnet",
                    }),
                    Template(PrivateA, "k8s-a", ProjectA, Alice, new JsonObject { ["labels"] = ManyLabels.DeepClone(), ["volume_driver"] = "cinder" }),
                    Template(Hidden, "k8s-old", AdminProject, AdminUser, new JsonObject { ["public"] = true, ["hidden"] = true, ["tls_disabled"] = true }),
                    Template(Swarm, "swarm-a", ProjectA, Alice, new JsonObject { ["coe"] = "swarm", ["network_driver"] = "docker" }),
                    Template(Clash, "mine", ProjectA, Alice, new JsonObject()),
                    Template(PrivateB, "k8s-b", ProjectB, Bob, new JsonObject { ["network_driver"] = "flannel", ["registry_enabled"] = true, ["keypair_id"] = "bob-key" })),
                ["quotas"] = new JsonArray(
                    new JsonObject { ["project_id"] = ProjectA, ["resource"] = "Cluster", ["hard_limit"] = 5 },
                    new JsonObject { ["project_id"] = ProjectB, ["resource"] = "Cluster", ["hard_limit"] = 3 }),
                ["clusters"] = new JsonArray(new JsonObject
                {
                    ["uuid"] = HeatCluster, ["name"] = "heat-prod", ["project_id"] = ProjectA, ["user_id"] = Alice, ["cluster_template_id"] = PrivateA,
                    ["stack_id"] = "5f0c7b3a-3d2e-4c1b-9a8f-7e6d5c4b3a21", ["status"] = "CREATE_COMPLETE", ["labels"] = new JsonObject(),
                    ["create_timeout"] = 60, ["master_lb_enabled"] = false,
                }),
            };
            // Rows written through Magnum's DB layer (magnum.db.api), as Magnum's services write them.
            var file = Path.Combine(_dir, "seed.json");
            await File.WriteAllTextAsync(file, Spec.ToJsonString());
            var (seeded, said) = BootstrapArtifactTests.Run("/usr/bin/python3", [Path.Combine(AppContext.BaseDirectory, "Fixtures", "magnum", "seed.py"), conf, file]);
            if (seeded != 0) throw new InvalidOperationException("seed.py: " + said);
            Ready = true;
        }
        catch (Exception e) { Failure = e.ToString(); }
    }

    public async Task DisposeAsync()
    {
        if (_database is not null)
        {
            try { await ImportMagnumTests.Sql(null, $"DROP DATABASE IF EXISTS `{_database}`"); } catch { }
        }
        try { Directory.Delete(_dir, true); } catch { }
    }
}
