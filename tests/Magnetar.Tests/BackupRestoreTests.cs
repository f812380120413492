using System.Formats.Tar;
using System.IO.Compression;
using System.Net;
using System.Text.Json.Nodes;
using Npgsql;

namespace Magnetar.Tests;

/// <summary>Runs with the suite's PostgreSQL (MAGNETAR_TEST_POSTGRES); required when MAGNETAR_REQUIRE_INTEGRATION=1.</summary>
public sealed class PostgresFactAttribute : FactAttribute
{
    public PostgresFactAttribute()
    {
        if (TestHost.PostgresConnectionString is null && Environment.GetEnvironmentVariable("MAGNETAR_REQUIRE_INTEGRATION") != "1")
            Skip = "MAGNETAR_TEST_POSTGRES is not set (scripts/test starts PostgreSQL)";
    }
}

/// <summary>
/// <c>magnetar backup</c> / <c>magnetar restore</c> (issue #16) on the real binary: a standalone server with clusters
/// on the simulated cloud is backed up while it runs, its state is wiped (data directory, and the PostgreSQL database),
/// and after the restore every cluster is there for its tenant with its CA, whose key — sealed with the secret key
/// the backup carried — still signs. Restoring over a database that holds clusters, or over another key, is refused.
/// </summary>
[Trait("Category", "Integration")]
public sealed class BackupRestoreTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("backup-").FullName;

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync()
    {
        try { Directory.Delete(_dir, true); } catch { }
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Sqlite_backup_taken_while_serving_restores_every_cluster_with_a_ca_that_still_signs()
    {
        var data = Path.Combine(_dir, "data");
        await RoundTrip(data, [], wipeDatabase: () => { });
    }

    [PostgresFact]
    public async Task Postgres_backup_restores_into_a_wiped_database()
    {
        var pg = TestHost.PostgresConnectionString!;
        var database = "magnetar_backup_" + Guid.NewGuid().ToString("N")[..10];
        async Task Sql(string sql)
        {
            await using var conn = new NpgsqlConnection(pg);
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand(sql, conn);
            await cmd.ExecuteNonQueryAsync();
        }
        await Sql($"CREATE DATABASE \"{database}\"");
        try
        {
            var cs = new NpgsqlConnectionStringBuilder(pg) { Database = database, Pooling = false }.ConnectionString;
            await RoundTrip(Path.Combine(_dir, "data"), ["--Magnetar:Database:Provider=postgres", $"--Magnetar:Database:ConnectionString={cs}"],
                wipeDatabase: () => { PgDatabases.DropAsync(pg, database).GetAwaiter().GetResult(); Sql($"CREATE DATABASE \"{database}\"").GetAwaiter().GetResult(); });
        }
        finally { await PgDatabases.DropAsync(pg, database); }
    }

    [Fact]
    public async Task Bad_input_is_refused_with_a_clear_message()
    {
        var missing = Magnetar("backup", "--data-dir", Path.Combine(_dir, "none"));
        Assert.Equal(1, missing.Code);
        Assert.Contains("--output FILE is required", missing.Text);
        var noDb = Magnetar("backup", "--output", Path.Combine(_dir, "x.tar.gz"), "--data-dir", Path.Combine(_dir, "none"));
        Assert.Equal(1, noDb.Code);
        Assert.Contains("no database at", noDb.Text);
        var junk = Path.Combine(_dir, "junk.tar.gz");
        await File.WriteAllTextAsync(junk, "not a backup");
        var notBackup = Magnetar("restore", "--input", junk, "--data-dir", Path.Combine(_dir, "none"));
        Assert.Equal(1, notBackup.Code);
        Assert.Contains("is not a Magnetar backup", notBackup.Text);
        Assert.False(Directory.Exists(Path.Combine(_dir, "none")) && Directory.EnumerateFileSystemEntries(Path.Combine(_dir, "none")).Any(),
            "a refused restore wrote into the data directory");
    }

    private async Task RoundTrip(string data, string[] args, Action wipeDatabase)
    {
        var url = $"http://127.0.0.1:{MagnetarProcess.FreePort()}";
        string[] serverArgs = ["--Magnetar:Cloud:Simulated:StepDelayMs=20", "--Magnetar:Conductor:PollIntervalMs=100", .. args];
        await using var server = new MagnetarProcess(url, data, serverArgs);
        await server.StartAsync(() => File.Exists(Path.Combine(data, "openrc-demo")));
        var http = await server.ClientAsync();
        var magnum = new MagnumSession(() => http, () => server.Log);
        await magnum.Api(HttpMethod.Post, "/v1/clustertemplates", new JsonObject
        {
            ["name"] = "k8s", ["coe"] = "kubernetes", ["image_id"] = "fedora-coreos-40", ["external_network_id"] = "public",
            ["flavor_id"] = "m1.small", ["master_flavor_id"] = "m1.medium", ["network_driver"] = "calico",
        }, HttpStatusCode.Created);
        var clusters = new Dictionary<string, string>();
        foreach (var name in new[] { "b1", "b2" })
        {
            var uuid = (await magnum.Api(HttpMethod.Post, "/v1/clusters", new JsonObject { ["name"] = name, ["cluster_template_id"] = "k8s", ["node_count"] = 1 }, HttpStatusCode.Accepted))["uuid"]!.GetValue<string>();
            await magnum.WaitFor(uuid, c => c["status"]!.GetValue<string>() == "CREATE_COMPLETE");
            clusters[uuid] = (await magnum.Api(HttpMethod.Get, $"/v1/certificates/{uuid}", null, HttpStatusCode.OK))["pem"]!.GetValue<string>();
        }

        // Backed up while the server runs (SQLite's online backup API; pg_dump's snapshot).
        var backup = Path.Combine(_dir, "magnetar.backup.tar.gz");
        var (code, text) = Magnetar(["backup", "--output", backup, "--data-dir", data, .. args]);
        Assert.True(code == 0, text);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(backup));
        Assert.Equal(["magnetar-backup.json", args.Length == 0 ? "database.sqlite" : "database.pgdump", "secret.key", "identity.json"], Entries(backup));
        (code, text) = Magnetar(["backup", "--output", backup, "--data-dir", data, .. args]);
        Assert.Equal(1, code);
        Assert.Contains("exists", text);
        await server.TerminateAsync();

        // Restoring over the database it was taken from is refused: it holds clusters.
        (code, text) = Magnetar(["restore", "--input", backup, "--data-dir", data, .. args]);
        Assert.Equal(1, code);
        Assert.Contains("the database holds 2 cluster(s) and 1 cluster template(s); restoring would replace them (--force to do so)", text);

        // Everything wiped: the data directory (database file, secret key, identity) and the PostgreSQL database.
        var key = await File.ReadAllTextAsync(Path.Combine(data, "secret.key"));
        Directory.Delete(data, true);
        wipeDatabase();
        // A data directory with another key is refused: the restored secrets would not open with it.
        Directory.CreateDirectory(data);
        await File.WriteAllTextAsync(Path.Combine(data, "secret.key"), "k1:" + Convert.ToBase64String(new byte[32]) + "\n");
        (code, text) = Magnetar(["restore", "--input", backup, "--data-dir", data, .. args]);
        Assert.Equal(1, code);
        Assert.Contains("secret.key differs from the backup's", text);
        File.Delete(Path.Combine(data, "secret.key"));

        (code, text) = Magnetar(["restore", "--input", backup, "--data-dir", data, .. args]);
        Assert.True(code == 0, text);
        Assert.Contains("2 cluster(s), 1 cluster template(s)", text);
        Assert.Equal(key, await File.ReadAllTextAsync(Path.Combine(data, "secret.key")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(data, "secret.key")));

        // Served again: the demo tenant (same project, from identity.json) sees its clusters, each CA the same, and the
        // CA key, unsealed with the restored secret key, signs a CSR that verifies against it.
        await using var restored = new MagnetarProcess(url, data, serverArgs);
        await restored.StartAsync(() => File.Exists(Path.Combine(data, "openrc-demo")));
        http = await restored.ClientAsync();
        magnum = new MagnumSession(() => http, () => restored.Log);
        var listed = (await magnum.Api(HttpMethod.Get, "/v1/clusters", null, HttpStatusCode.OK))["clusters"]!.AsArray();
        Assert.Equal(clusters.Keys.Order(), listed.Select(c => c!["uuid"]!.GetValue<string>()).Order());
        foreach (var (uuid, ca) in clusters)
        {
            var show = await magnum.Api(HttpMethod.Get, $"/v1/clusters/{uuid}", null, HttpStatusCode.OK);
            Assert.Equal("CREATE_COMPLETE", show["status"]!.GetValue<string>());
            Assert.Equal(ca, (await magnum.Api(HttpMethod.Get, $"/v1/certificates/{uuid}", null, HttpStatusCode.OK))["pem"]!.GetValue<string>());
            var signed = await magnum.Api(HttpMethod.Post, "/v1/certificates", new JsonObject
            {
                ["cluster_uuid"] = uuid, ["csr"] = Fixtures.MakeCsr("CN=admin,O=system:masters"),
            }, HttpStatusCode.Created);
            Assert.Equal("OK", Fixtures.OpensslVerify(ca, signed["pem"]!.GetValue<string>()));
        }
        // And the cluster can still be changed and deleted: the conductor works on the restored rows.
        var first = clusters.Keys.First();
        await magnum.Api(HttpMethod.Delete, $"/v1/clusters/{first}", null, HttpStatusCode.NoContent);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while ((await http.GetAsync($"/v1/clusters/{first}")).StatusCode != HttpStatusCode.NotFound)
        {
            Assert.True(DateTime.UtcNow < deadline, "the restored cluster was not deleted\n" + restored.Log);
            await Task.Delay(200);
        }
    }

    private static List<string> Entries(string backup)
    {
        using var file = File.OpenRead(backup);
        using var gzip = new GZipStream(file, CompressionMode.Decompress);
        using var tar = new TarReader(gzip);
        var names = new List<string>();
        while (tar.GetNextEntry() is { } e) names.Add(e.Name);
        return names;
    }

    private static (int Code, string Text) Magnetar(params string[] args)
        => BootstrapArtifactTests.Run("dotnet", [Path.Combine(AppContext.BaseDirectory, "magnetar.dll"), .. args]);
}
