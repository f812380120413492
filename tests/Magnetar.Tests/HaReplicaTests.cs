using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Npgsql;
using Xunit.Abstractions;

namespace Magnetar.Tests;

/// <summary>
/// Two <c>serve</c> replicas against one PostgreSQL (keystone mode, shared secret key, simulated cloud): both serve the
/// API and both run the conductor, claiming clusters through leases in the database. A replica killed with SIGKILL
/// mid-operation has its clusters taken over by the other once its leases expire; a replica stopped with SIGTERM hands
/// its leases back at once.
/// </summary>
[Trait("Category", "Integration")]
public sealed class HaReplicaTests(ITestOutputHelper output)
{
    private const int LeaseSeconds = 4;

    [KeystoneFact]
    public async Task A_killed_replicas_clusters_are_taken_over_and_a_terminated_one_hands_its_leases_back()
    {
        var env = KeystoneEnv.Load();
        var pg = TestHost.PostgresConnectionString ?? throw new InvalidOperationException("MAGNETAR_TEST_POSTGRES is not set (scripts/test starts PostgreSQL)");
        var database = "magnetar_ha_" + Guid.NewGuid().ToString("N")[..10];
        await using (var conn = new NpgsqlConnection(pg))
        {
            await conn.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE \"{database}\"", conn);
            await create.ExecuteNonQueryAsync();
        }
        var cs = new NpgsqlConnectionStringBuilder(pg) { Database = database }.ConnectionString;
        var replicas = new Replicas(env, cs);
        MagnetarProcess Replica(string name) => replicas.New(name);
        await using var a = Replica("a");
        await using var b = Replica("b");
        await a.StartAsync();
        await b.StartAsync();
        var token = await KeystoneEnv.TokenAsync(env, env["DEMO_USER"], env["DEMO_PASSWORD"], env["DEMO_PROJECT"]);
        HttpClient Client(MagnetarProcess p) => Replicas.Client(p, token);
        using var ca = Client(a);
        using var cb = Client(b);

        // Both replicas serve the API: a template made through one is seen through the other.
        var template = (string)(await Send(ca, HttpMethod.Post, "/v1/clustertemplates", """
            {"name": "ha", "coe": "kubernetes", "image_id": "fedora-coreos-40", "external_network_id": "public", "flavor_id": "m1.small",
             "master_flavor_id": "m1.medium", "network_driver": "calico", "master_lb_enabled": true}
            """, 201))["uuid"]!;
        await Send(cb, HttpMethod.Get, $"/v1/clustertemplates/{template}", null, 200);
        var clusters = new List<string>();
        for (var i = 0; i < 8; i++)
            clusters.Add((string)(await Send(i % 2 == 0 ? ca : cb, HttpMethod.Post, "/v1/clusters", $$"""{"name": "ha-{{i}}", "cluster_template_id": "{{template}}", "master_count": 3, "node_count": 2}""", 202))["uuid"]!);

        // Wait until replica a holds leases, then SIGKILL it mid-pass.
        var ownerA = await OwnerOfAsync(cs, a);
        var held = await WaitForAsync(async () => (await LeasesAsync(cs)).Where(l => l.Owner == ownerA).Select(l => l.Uuid).ToList(), l => l.Count > 0, "replica a to hold a lease");
        var killedAt = DateTime.UtcNow;
        await a.KillAsync();

        // Replica b takes them over once the leases expire, and every cluster completes through it alone.
        var ownerB = await OwnerOfAsync(cs, b);
        var takenOver = await WaitForAsync(async () => (await LeasesAsync(cs)).Where(l => held.Contains(l.Uuid) && l.Owner == ownerB).ToList(), l => l.Count > 0,
            "replica b to take over", 60);
        var takeover = DateTime.UtcNow - killedAt;
        output.WriteLine($"replica a held {held.Count} lease(s) when killed; replica b had one of them {takeover.TotalSeconds:F1} s later (lease {LeaseSeconds} s)");
        Assert.True(takeover < TimeSpan.FromSeconds(LeaseSeconds + 10), $"takeover took {takeover}");
        foreach (var uuid in clusters) await WaitStatusAsync(cb, uuid, "CREATE_COMPLETE");

        // SIGTERM: replica b (the only one running) cancels its passes and hands its leases back at once.
        await using var a2 = Replica("a2");
        await a2.StartAsync();
        using var ca2 = Client(a2);
        // Eight resizes against two replicas of MaxParallel 4: replica b claims some of them whatever a2 takes first.
        foreach (var uuid in clusters) await Send(ca2, HttpMethod.Post, $"/v1/clusters/{uuid}/actions/resize", """{"node_count": 6}""", 202);
        await WaitForAsync(async () => (await LeasesAsync(cs)).Where(l => l.Owner == ownerB).ToList(), l => l.Count > 0, "replica b to hold a lease", 30);
        var stopping = DateTime.UtcNow;
        await b.TerminateAsync();
        var left = (await LeasesAsync(cs)).Where(l => l.Owner == ownerB).ToList();
        output.WriteLine($"replica b stopped by SIGTERM in {(DateTime.UtcNow - stopping).TotalSeconds:F1} s, leaving {left.Count} lease(s)");
        Assert.Empty(left);
        foreach (var uuid in clusters) await WaitStatusAsync(ca2, uuid, "UPDATE_COMPLETE");

        await DeleteAllAndCheckNothingLeftAsync(ca2, ca2, clusters, cs);
    }

    [KeystoneFact]
    public async Task When_the_database_goes_away_the_api_answers_503_changing_nothing_and_everything_converges_once_it_is_back()
    {
        // A PostgreSQL of this test's own (stopping the shared one would break the other tests), stopped mid-operation
        // with a fast shutdown — every connection cut, as in a failover — and started again.
        var env = KeystoneEnv.Load();
        var root = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "../../../../.."));
        var state = Directory.CreateTempSubdirectory("pg-outage-").FullName;
        var pgEnv = new Dictionary<string, string> { ["MAGNETAR_PG_PORT"] = MagnetarProcess.FreePort().ToString() };
        (int, string) Postgres(string cmd) => BootstrapArtifactTests.Run(Path.Combine(root, "deploy/postgres.sh"), [cmd, state], pgEnv);
        var (rc, text) = Postgres("start");
        Assert.True(rc == 0, text);
        try
        {
            (rc, text) = Postgres("env");
            Assert.True(rc == 0, text);
            var cs = System.Text.RegularExpressions.Regex.Match(text, "MAGNETAR_TEST_POSTGRES=\"([^\"]+)\"").Groups[1].Value;
            var replicas = new Replicas(env, cs);
            await using var a = replicas.New("a");
            await using var b = replicas.New("b");
            await a.StartAsync();
            await b.StartAsync();
            var token = await KeystoneEnv.TokenAsync(env, env["DEMO_USER"], env["DEMO_PASSWORD"], env["DEMO_PROJECT"]);
            using var ca = Replicas.Client(a, token);
            using var cb = Replicas.Client(b, token);
            var template = (string)(await Send(ca, HttpMethod.Post, "/v1/clustertemplates", """
                {"name": "outage", "coe": "kubernetes", "image_id": "fedora-coreos-40", "external_network_id": "public", "flavor_id": "m1.small",
                 "master_flavor_id": "m1.medium", "network_driver": "calico", "master_lb_enabled": true}
                """, 201))["uuid"]!;
            var clusters = new List<string>();
            for (var i = 0; i < 4; i++)
                clusters.Add((string)(await Send(i % 2 == 0 ? ca : cb, HttpMethod.Post, "/v1/clusters", $$"""{"name": "out-{{i}}", "cluster_template_id": "{{template}}", "master_count": 3, "node_count": 2}""", 202))["uuid"]!);
            await WaitForAsync(async () => (await LeasesAsync(cs)).Count, n => n > 0, "a replica to be working on a cluster");

            (rc, text) = Postgres("stop");
            Assert.True(rc == 0, text);
            var down = DateTime.UtcNow;
            // While it is down: a clear 503 in Magnum's format with Retry-After from both replicas, for reads and writes,
            // never a 500; the replicas stay up.
            foreach (var c in new[] { ca, cb })
            {
                foreach (var (method, path, body) in new (HttpMethod, string, string?)[]
                {
                    (HttpMethod.Get, "/v1/clusters", null),
                    (HttpMethod.Post, "/v1/clusters", $$"""{"name": "during-outage", "cluster_template_id": "{{template}}", "node_count": 1}"""),
                    (HttpMethod.Patch, $"/v1/clusters/{clusters[0]}", """[{"op": "replace", "path": "/node_count", "value": 3}]"""),
                })
                {
                    using var req = new HttpRequestMessage(method, path) { Content = body is null ? null : new StringContent(body, Encoding.UTF8, "application/json") };
                    using var resp = await c.SendAsync(req);
                    var error = await resp.Content.ReadAsStringAsync();
                    Assert.True(resp.StatusCode == HttpStatusCode.ServiceUnavailable, $"{method} {path} while the database is down: {(int)resp.StatusCode} {error}");
                    Assert.Equal("5", resp.Headers.RetryAfter?.ToString());
                    var e = JsonNode.Parse(error)!["errors"]![0]!;
                    Assert.Equal(503, (int)e["status"]!);
                    Assert.StartsWith("The service's database is unavailable; nothing was changed.", (string)e["detail"]!);
                }
            }
            Assert.False(a.HasExited || b.HasExited, "a replica died with its database");
            var outage = DateTime.UtcNow - down;

            (rc, text) = Postgres("start");
            Assert.True(rc == 0, text);
            NpgsqlConnection.ClearAllPools(); // this test's own pooled connections died with the server
            var up = DateTime.UtcNow;
            await WaitForAsync(async () => (await ca.GetAsync("/v1/clusters")).StatusCode, s => s == HttpStatusCode.OK, "the API to answer again");
            output.WriteLine($"database down {outage.TotalSeconds:F1} s; API answering again {(DateTime.UtcNow - up).TotalSeconds:F1} s after it came back");

            // Nothing the refused requests asked for happened; everything asked before converges.
            foreach (var uuid in clusters) await WaitStatusAsync(clusters.IndexOf(uuid) % 2 == 0 ? ca : cb, uuid, "CREATE_COMPLETE");
            var list = await Send(cb, HttpMethod.Get, "/v1/clusters", null, 200);
            Assert.Equal(clusters.Order(), list["clusters"]!.AsArray().Select(x => (string)x!["uuid"]!).Order());
            Assert.All(list["clusters"]!.AsArray(), x => Assert.Equal(2, (int)x!["node_count"]!));
            await DeleteAllAndCheckNothingLeftAsync(ca, cb, clusters, cs);
            Assert.DoesNotContain("Unhandled error", a.Log + b.Log);
        }
        finally
        {
            Postgres("stop");
            try { Directory.Delete(state, true); } catch { }
        }
    }

    /// <summary>Replicas of one deployment: keystone identity, one PostgreSQL database, one secret key, the simulated cloud.</summary>
    private sealed class Replicas(Dictionary<string, string> env, string cs)
    {
        private readonly string _key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
        private readonly string _dir = Directory.CreateTempSubdirectory("ha-").FullName;

        public MagnetarProcess New(string name) => new($"http://127.0.0.1:{MagnetarProcess.FreePort()}", Path.Combine(_dir, name),
            "--Magnetar:Identity:Mode=keystone", $"--Magnetar:Identity:Keystone:AuthUrl={env["KEYSTONE_URL"]}",
            $"--Magnetar:Identity:Keystone:Username={env["SERVICE_USER"]}", $"--Magnetar:Identity:Keystone:Password={env["SERVICE_PASSWORD"]}",
            $"--Magnetar:Identity:Keystone:ProjectName={env["SERVICE_PROJECT"]}",
            "--Magnetar:Database:Provider=postgres", $"--Magnetar:Database:ConnectionString={cs}",
            "--Magnetar:Secrets:ActiveKeyId=k1", $"--Magnetar:Secrets:Keys:k1={_key}",
            "--Magnetar:Cloud:Simulated:StepDelayMs=400", "--Magnetar:Cloud:Simulated:ApiLatencyMs=1500", "--Magnetar:Conductor:PollIntervalMs=100", $"--Magnetar:Conductor:LeaseSeconds={LeaseSeconds}",
            "--Magnetar:Conductor:MaxParallel=4");

        public static HttpClient Client(MagnetarProcess p, string token)
        {
            var c = new HttpClient { BaseAddress = new Uri(p.Url) };
            c.DefaultRequestHeaders.Add("X-Auth-Token", token);
            c.DefaultRequestHeaders.Add("OpenStack-API-Version", "container-infra latest");
            return c;
        }
    }

    /// <summary>Deletes the clusters through one replica, waits until the other no longer shows them, and checks that no simulated resource is left.</summary>
    private static async Task DeleteAllAndCheckNothingLeftAsync(HttpClient deleter, HttpClient watcher, IEnumerable<string> clusters, string cs)
    {
        foreach (var uuid in clusters) await Send(deleter, HttpMethod.Delete, $"/v1/clusters/{uuid}", null, 204);
        foreach (var uuid in clusters)
            await WaitForAsync(async () => (await watcher.GetAsync($"/v1/clusters/{uuid}")).StatusCode, s => s == HttpStatusCode.NotFound, $"{uuid} to be deleted", 120);
        await using var conn = new NpgsqlConnection(cs);
        await conn.OpenAsync();
        await using var left = new NpgsqlCommand("SELECT COUNT(*) FROM simulated_resources", conn);
        Assert.Equal(0L, (long)(await left.ExecuteScalarAsync())!);
    }

    private static async Task<string> OwnerOfAsync(string cs, MagnetarProcess p)
        => await WaitForAsync(() => Task.FromResult(System.Text.RegularExpressions.Regex.Match(p.Log, @"Conductor (\S+) started").Groups[1].Value),
            o => o.Length > 0, "the conductor's name in the log");

    private static async Task<List<(string Uuid, string Owner)>> LeasesAsync(string cs)
    {
        await using var conn = new NpgsqlConnection(cs);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT \"Uuid\", \"LeaseOwner\" FROM clusters WHERE \"LeaseOwner\" IS NOT NULL AND \"LeaseExpiresAt\" > now()", conn);
        var list = new List<(string, string)>();
        await using var r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync()) list.Add((r.GetString(0), r.GetString(1)));
        return list;
    }

    private static async Task<T> WaitForAsync<T>(Func<Task<T>> read, Func<T, bool> done, string what, int seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            var value = await read();
            if (done(value)) return value;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"timed out waiting for {what}");
            await Task.Delay(50);
        }
    }

    private static async Task WaitStatusAsync(HttpClient c, string uuid, string status)
        => await WaitForAsync(async () => (string?)(await Send(c, HttpMethod.Get, $"/v1/clusters/{uuid}", null, 200))["status"], s =>
        {
            Assert.False(s?.EndsWith("_FAILED") == true, $"{uuid} {s}");
            return s == status;
        }, $"{uuid} to reach {status}", 120);

    private static async Task<JsonNode> Send(HttpClient c, HttpMethod method, string path, string? body, int expect)
    {
        using var req = new HttpRequestMessage(method, path) { Content = body is null ? null : new StringContent(body, Encoding.UTF8, "application/json") };
        using var resp = await c.SendAsync(req);
        var text = await resp.Content.ReadAsStringAsync();
        Assert.True((int)resp.StatusCode == expect, $"{method} {path}: {(int)resp.StatusCode} {text}");
        return string.IsNullOrEmpty(text) ? new JsonObject() : JsonNode.Parse(text)!;
    }
}
