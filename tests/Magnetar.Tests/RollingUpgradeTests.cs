using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Npgsql;
using Xunit.Abstractions;

namespace Magnetar.Tests;

/// <summary>
/// Skips where there is no PostgreSQL (as <see cref="PostgresFactAttribute"/>), and where the previous release's commit
/// cannot be there: a shallow clone. A missing commit in a full clone is a failure, not a skip.
/// </summary>
public sealed class RollingUpgradeFactAttribute : FactAttribute
{
    public RollingUpgradeFactAttribute()
    {
        if (TestHost.PostgresConnectionString is null && Environment.GetEnvironmentVariable("MAGNETAR_REQUIRE_INTEGRATION") != "1")
            Skip = "MAGNETAR_TEST_POSTGRES is not set (scripts/test starts PostgreSQL)";
        else if (PreviousRelease.Shallow())
            Skip = "the repository is a shallow clone: the previous release's commit (deploy/previous-release) is not in it";
    }
}

/// <summary>The previous release (deploy/previous-release), built from git once per commit into a temporary directory.</summary>
public static class PreviousRelease
{
    public static string Root { get; } = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "../../../../.."));

    public static string Commit => File.ReadAllLines(Path.Combine(Root, "deploy/previous-release"))
        .Select(l => l.Trim()).First(l => l.Length > 0 && !l.StartsWith('#'));

    public static bool Shallow()
    {
        try { return Git("rev-parse", "--is-shallow-repository").Output.Trim() == "true"; }
        catch (Exception) { return false; } // no git at all: the test fails, saying so
    }

    private static (int Code, string Output) Git(params string[] args)
    {
        var psi = new ProcessStartInfo("git", ["-C", Root, .. args]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        return (p.ExitCode, o.Result + e.Result);
    }

    /// <summary>
    /// The previous release's magnetar.dll: <c>git archive</c> of its commit, <c>dotnet build</c> of src/Magnetar.Server
    /// (the same package versions, so the package cache serves the restore). Kept per commit; a build that fails is not kept.
    /// </summary>
    public static async Task<string> BuildAsync(ITestOutputHelper output)
    {
        var commit = Commit;
        var (code, full) = Git("rev-parse", "--verify", "--quiet", commit + "^{commit}");
        if (code != 0) throw new InvalidOperationException($"the previous release's commit {commit} (deploy/previous-release) is not in this repository: {full}");
        full = full.Trim();
        var dir = Path.Combine(Path.GetTempPath(), "magnetar-release-" + full[..12]);
        var dll = Path.Combine(dir, "out", "magnetar.dll");
        if (File.Exists(Path.Combine(dir, "built"))) return dll;
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
        var src = Directory.CreateDirectory(Path.Combine(dir, "src")).FullName;
        var started = Stopwatch.StartNew();
        var tar = Path.Combine(dir, "src.tar");
        (code, var text) = Git("archive", "--format=tar", "-o", tar, full);
        if (code != 0) throw new InvalidOperationException("git archive: " + text);
        (code, text) = await RunAsync("tar", ["-xf", tar, "-C", src], null, 120);
        if (code != 0) throw new InvalidOperationException("tar: " + text);
        // No MSBuild node reuse and no compiler server: a node or VBCSCompiler left running would inherit the build's
        // output pipe and keep it open after the build exits (in a clean CI chroot this hung the test).
        (code, text) = await RunAsync("dotnet", ["build", Path.Combine(src, "src/Magnetar.Server"), "-c", "Release", "-o", Path.Combine(dir, "out"),
            $"-p:SourceRevisionId={full}", "-nologo", "-v:q", "-nodeReuse:false", "-p:UseSharedCompilation=false"],
            new() { ["MSBUILDDISABLENODEREUSE"] = "1", ["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0" }, 900);
        if (code != 0) throw new InvalidOperationException($"building the previous release {commit} failed:\n{text}");
        File.WriteAllText(Path.Combine(dir, "built"), full);
        output.WriteLine($"built the previous release {full[..12]} in {started.Elapsed.TotalSeconds:F0} s");
        return dll;
    }

    public static async Task<(int Code, string Output)> RunAsync(string file, IEnumerable<string> args, Dictionary<string, string>? env, int timeoutSeconds)
    {
        var psi = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(timeoutSeconds));
        try { await p.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in {timeoutSeconds} s:\n{await Drained(o)}{await Drained(e)}");
        }
        return (p.ExitCode, await Drained(o) + await Drained(e));

        // The process has exited; a child it left running may still hold its output open: do not wait for that.
        static async Task<string> Drained(Task<string> read)
        {
            try { return await read.WaitAsync(TimeSpan.FromSeconds(10)); }
            catch (TimeoutException) { return "(output still held open by a process the command left running)"; }
        }
    }
}

/// <summary>
/// Upgrading Magnetar itself with replicas serving (docs/rolling-upgrade.md): two replicas of the previous release
/// (deploy/previous-release, built from git) serve a PostgreSQL database their own <c>migrate</c> made, under a steady
/// load of list/show/create/delete through every replica; this build's <c>migrate --check</c> finds them (they predate
/// the replica registry: seen by their sessions) and calls the pending migration safe, <c>migrate</c> applies it, an
/// old replica restarts against the expanded schema, and a replica of this build joins. No request fails on any
/// replica at any point; clusters made by the old replicas complete and delete; the new replica sees them all.
/// </summary>
[Trait("Category", "Integration")]
public sealed class RollingUpgradeTests(ITestOutputHelper output)
{
    [RollingUpgradeFact]
    public async Task Two_previous_release_replicas_keep_serving_while_this_build_migrates_and_joins()
    {
        var clock = Stopwatch.StartNew();
        var oldDll = await PreviousRelease.BuildAsync(output);
        var built = clock.Elapsed;

        var pg = TestHost.PostgresConnectionString!;
        var database = "magnetar_rolling_" + Guid.NewGuid().ToString("N")[..10];
        // The test's own sessions are named, so that this build's migrate does not take them for a replica of an old release.
        var admin = new NpgsqlConnectionStringBuilder(pg) { ApplicationName = "rolling-upgrade-test" }.ConnectionString;
        await Sql(admin, $"CREATE DATABASE \"{database}\"");
        var cs = new NpgsqlConnectionStringBuilder(pg) { Database = database }.ConnectionString;
        var mine = new NpgsqlConnectionStringBuilder(admin) { Database = database, Pooling = false }.ConnectionString;
        var dir = Directory.CreateTempSubdirectory("rolling-").FullName;
        // One data directory for every replica: built-in identity (users, token key) and secret key, as one shared config.
        var data = Path.Combine(dir, "data");
        string[] settings = ["--Magnetar:Database:Provider=postgres", $"--Magnetar:Database:ConnectionString={cs}",
            "--Magnetar:Cloud:Simulated:StepDelayMs=150", "--Magnetar:Conductor:PollIntervalMs=100", "--Magnetar:Conductor:LeaseSeconds=15",
            "--Magnetar:Replicas:HeartbeatSeconds=1", "--Magnetar:Replicas:StaleSeconds=15",
            // The load is one project's; the per-project rate limit (429) is not what this test is about. No replica is killed,
            // so the lease length costs nothing; a long one keeps a CPU-starved pass inside its lease.
            "--Magnetar:Api:RateLimitPerSecond=1000", "--Magnetar:Api:RateLimitBurst=2000"];
        var newDll = Path.Combine(AppContext.BaseDirectory, "magnetar.dll");
        async Task<(int Code, string Output)> Magnetar(string dll, params string[] args)
            => await PreviousRelease.RunAsync("dotnet", [dll, .. args, "--data-dir", data, .. settings], null, 180);
        MagnetarProcess Replica(string dll) => new($"http://127.0.0.1:{MagnetarProcess.FreePort()}", data, settings) { Dll = dll };

        var processes = new List<MagnetarProcess>();
        try
        {
            // ---- the previous release: its migrate, two replicas, a template and clusters.
            var (code, text) = await Magnetar(oldDll, "migrate");
            Assert.True(code == 0, "previous release's migrate: " + text);
            var a = Replica(oldDll);
            var b = Replica(oldDll);
            processes.AddRange([a, b]);
            await a.StartAsync(() => File.Exists(Path.Combine(data, "openrc-demo")));
            await b.StartAsync();
            var clients = new ConcurrentDictionary<string, HttpClient>();
            clients["old-a"] = await a.ClientAsync();
            clients["old-b"] = await b.ClientAsync();
            var template = (string)(await Send(clients["old-a"], HttpMethod.Post, "/v1/clustertemplates", """
                {"name": "rolling", "coe": "kubernetes", "image_id": "fedora-coreos-40", "external_network_id": "public", "flavor_id": "m1.small",
                 "master_flavor_id": "m1.medium", "network_driver": "calico", "master_lb_enabled": true}
                """, 201))["uuid"]!;
            var stable = new List<string>();
            for (var i = 0; i < 4; i++)
                stable.Add((string)(await Send(clients[i % 2 == 0 ? "old-a" : "old-b"], HttpMethod.Post, "/v1/clusters",
                    $$"""{"name": "stable-{{i}}", "cluster_template_id": "{{template}}", "master_count": 1, "node_count": 1}""", 202))["uuid"]!);

            // ---- the load: through every replica, until the end.
            var load = new Load(clients, template, stable);
            var running = load.RunAsync();
            await load.WaitForCyclesAsync(1, "a create/delete cycle through the old replicas", 90);
            foreach (var uuid in stable) await WaitStatusAsync(clients["old-b"], uuid, "CREATE_COMPLETE");

            // ---- this build's check: the old replicas are found by their sessions; the pending migration is expand, safe.
            (code, text) = await Magnetar(newDll, "migrate", "--check");
            output.WriteLine("migrate --check before:\n" + text);
            Assert.True(code == 0, "migrate --check: " + text);
            Assert.Contains($"pid {a.Pid} on this host", text);
            Assert.Contains($"pid {b.Pid} on this host", text);
            Assert.Matches(@"_ReplicaRegistry\s+expand: safe with every live replica", text);
            Assert.Contains("\ncompatible", text);
            var loadBefore = load.Snapshot();

            // ---- this build's migrate, under load.
            (code, text) = await Magnetar(newDll, "migrate");
            Assert.True(code == 0, "migrate: " + text);
            Assert.Contains("_ReplicaRegistry", text);
            Assert.Equal(0L, await Scalar(mine, "SELECT COUNT(*) FROM replicas"));

            // ---- an old replica restarts against the expanded schema (its startup migrate finds nothing of its own to do).
            // Out of the rotation first (as a load balancer would drain it), then SIGTERM, which lets in-flight requests finish.
            clients.TryRemove("old-b", out _);
            await Task.Delay(2000);
            await b.TerminateAsync();
            await b.StartAsync();
            clients["old-b"] = await b.ClientAsync();

            // ---- a replica of this build joins, registers, and serves.
            var c = Replica(newDll);
            processes.Add(c);
            await c.StartAsync();
            clients["new-c"] = await c.ClientAsync();
            Assert.Contains("registered", c.Log);
            Assert.Equal(1L, await Scalar(mine, $"SELECT COUNT(*) FROM replicas WHERE \"Pid\" = {c.Pid}"));
            var joined = load.Snapshot();
            await load.WaitForCyclesAsync(joined.Cycles + 3, "create/delete cycles through all three replicas", 120);
            await load.WaitForRequestsAsync("new-c", 50, 60);

            (code, text) = await Magnetar(newDll, "migrate", "--check");
            output.WriteLine("migrate --check after:\n" + text);
            Assert.True(code == 0, "migrate --check after: " + text);
            Assert.Contains("live replicas: 3", text);
            Assert.Contains($"pid {a.Pid} on this host", text);
            Assert.Contains($"pid {b.Pid} on this host", text);
            Assert.Matches($@"host \S+\s+pid {c.Pid}\s+version \S+\s+built with {SchemaPolicyTests.NewestMigration()}", text);
            Assert.Contains("pending migrations: none", text);

            // ---- the end of the load: no error anywhere, on any replica, before, during or after the migration.
            var end = await load.StopAsync(running);
            output.WriteLine($"load: {end}");
            Assert.True(end.Errors.Count == 0, $"{end.Errors.Count} failed request(s), by replica and status: " +
                string.Join(", ", end.Errors.GroupBy(e => string.Join(' ', e.Split(' ').Where((_, i) => i is 1 or 4))).Select(g => $"{g.Key} x{g.Count()}")) +
                $"\n{string.Join("\n", end.Errors.Take(20))}");
            foreach (var name in new[] { "old-a", "old-b", "new-c" }) Assert.True(end.ByReplica.GetValueOrDefault(name) > 0, $"no request went through {name}");
            Assert.True(end.CreatedBy.GetValueOrDefault("old-a") + end.CreatedBy.GetValueOrDefault("old-b") >= 2, "old replicas created too few clusters: " + end);
            Assert.True(loadBefore.Requests > 0 && end.Requests > joined.Requests, end.ToString());

            // The new replica sees everything the old ones made and deletes it; nothing is left in the simulated cloud.
            var seen = (await Send(clients["new-c"], HttpMethod.Get, "/v1/clusters", null, 200))["clusters"]!.AsArray().Select(x => (string)x!["uuid"]!).ToHashSet();
            Assert.Superset(stable.ToHashSet(), seen);
            foreach (var uuid in stable) Assert.Equal("CREATE_COMPLETE", (string?)(await Send(clients["new-c"], HttpMethod.Get, $"/v1/clusters/{uuid}", null, 200))["status"]);
            foreach (var uuid in stable) await Send(clients["new-c"], HttpMethod.Delete, $"/v1/clusters/{uuid}", null, 204);
            foreach (var uuid in stable)
                await WaitForAsync(async () => (await clients["old-a"].GetAsync($"/v1/clusters/{uuid}")).StatusCode, s => s == HttpStatusCode.NotFound, $"{uuid} to be deleted", 120);
            var left = await WaitForAsync(() => Rows(mine, """
                SELECT r."ClusterUuid", r."Kind", r."Name", r."Status", r."DeleteRequestedAt"::text, r."GoneAt"::text, r."CreatedAt"::text,
                       (SELECT c."Status" || ' ' || c."Name" FROM clusters c WHERE c."Uuid" = r."ClusterUuid")
                FROM simulated_resources r ORDER BY r."ClusterUuid", r."Name"
                """), l => l.Count == 0, "the simulated cloud to be empty", 60, throwOnTimeout: false);
            Assert.True(left.Count == 0, $"left in the simulated cloud:\n{string.Join("\n", left)}\n--- old-a\n{a.Log}\n--- old-b\n{b.Log}\n--- new-c\n{c.Log}");
            foreach (var p in processes)
            {
                Assert.False(p.HasExited, "a replica died:\n" + p.Log);
                Assert.DoesNotContain("Unhandled error", p.Log);
            }

            // A replica stopped gracefully removes its row.
            await c.TerminateAsync();
            Assert.Equal(0L, await Scalar(mine, $"SELECT COUNT(*) FROM replicas WHERE \"Pid\" = {c.Pid}"));
            output.WriteLine($"previous release ready after {built.TotalSeconds:F0} s; whole test {clock.Elapsed.TotalSeconds:F0} s");
        }
        finally
        {
            foreach (var p in processes) await p.DisposeAsync();
            NpgsqlConnection.ClearAllPools();
            try { await PgDatabases.DropAsync(admin, database); } catch { }
            try { Directory.Delete(dir, true); } catch { }
        }
    }

    /// <summary>
    /// Readers list and show through every replica; a writer per replica creates a cluster, waits for CREATE_COMPLETE
    /// (read through another replica), deletes it and waits for it to be gone. Every unexpected status or exception is an error.
    /// </summary>
    private sealed class Load(ConcurrentDictionary<string, HttpClient> clients, string template, IReadOnlyList<string> stable)
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly ConcurrentQueue<string> _errors = new();
        private readonly ConcurrentDictionary<string, int> _byReplica = new();
        private readonly ConcurrentDictionary<string, int> _createdBy = new();
        private int _requests, _cycles, _serial;

        public sealed record Summary(int Requests, int Cycles, IReadOnlyList<string> Errors, IReadOnlyDictionary<string, int> ByReplica, IReadOnlyDictionary<string, int> CreatedBy)
        {
            public override string ToString() => $"{Requests} requests, {Cycles} create/delete cycles, {Errors.Count} errors; by replica " +
                string.Join(", ", ByReplica.OrderBy(k => k.Key).Select(k => $"{k.Key} {k.Value}")) + "; created by " +
                string.Join(", ", CreatedBy.OrderBy(k => k.Key).Select(k => $"{k.Key} {k.Value}"));
        }

        public Summary Snapshot() => new(_requests, _cycles, _errors.ToList(), new Dictionary<string, int>(_byReplica), new Dictionary<string, int>(_createdBy));

        public Task RunAsync() => Task.WhenAll(Enumerable.Range(0, 3).Select(Reader).Concat(Enumerable.Range(0, 2).Select(Writer)));

        public async Task<Summary> StopAsync(Task running)
        {
            _stop.Cancel();
            await running;
            return Snapshot();
        }

        private (string Name, HttpClient Client) Pick(int n)
        {
            var all = clients.ToArray().OrderBy(k => k.Key).ToArray();
            var kv = all[n % all.Length];
            return (kv.Key, kv.Value);
        }

        private async Task<(HttpStatusCode Status, JsonNode? Body)> Call(string replica, HttpClient c, HttpMethod method, string path, string? body, params HttpStatusCode[] expect)
        {
            Interlocked.Increment(ref _requests);
            _byReplica.AddOrUpdate(replica, 1, (_, n) => n + 1);
            try
            {
                using var req = new HttpRequestMessage(method, path) { Content = body is null ? null : new StringContent(body, Encoding.UTF8, "application/json") };
                using var resp = await c.SendAsync(req);
                var text = await resp.Content.ReadAsStringAsync();
                if (!expect.Contains(resp.StatusCode))
                {
                    _errors.Enqueue($"{DateTime.UtcNow:HH:mm:ss.fff} {replica} {method} {path}: {(int)resp.StatusCode} {text}");
                    return (resp.StatusCode, null);
                }
                return (resp.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text));
            }
            catch (Exception e) when (!_stop.IsCancellationRequested || e is not TaskCanceledException)
            {
                _errors.Enqueue($"{DateTime.UtcNow:HH:mm:ss.fff} {replica} {method} {path}: {e.GetType().Name} {e.Message}");
                return (0, null);
            }
        }

        private async Task Reader(int id)
        {
            for (var n = id; !_stop.IsCancellationRequested; n++)
            {
                var (name, c) = Pick(n);
                await Call(name, c, HttpMethod.Get, "/v1/clusters", null, HttpStatusCode.OK);
                (name, c) = Pick(n + 1);
                await Call(name, c, HttpMethod.Get, $"/v1/clusters/{stable[n % stable.Count]}", null, HttpStatusCode.OK);
                (name, c) = Pick(n + 2);
                await Call(name, c, HttpMethod.Get, "/v1/clustertemplates", null, HttpStatusCode.OK);
                try { await Task.Delay(150, _stop.Token); } catch (OperationCanceledException) { }
            }
        }

        private async Task Writer(int id)
        {
            for (var n = id; !_stop.IsCancellationRequested; n += 2)
            {
                var (name, c) = Pick(n);
                var serial = Interlocked.Increment(ref _serial);
                var (_, created) = await Call(name, c, HttpMethod.Post, "/v1/clusters",
                    $$"""{"name": "load-{{serial}}", "cluster_template_id": "{{template}}", "master_count": 1, "node_count": 1}""", HttpStatusCode.Accepted);
                if (created is null) continue;
                _createdBy.AddOrUpdate(name, 1, (_, k) => k + 1);
                var uuid = (string)created["uuid"]!;
                // Complete (seen through the next replica), then deleted (through the one after), then gone. Finished even once stopping.
                for (var i = 0; ; i++)
                {
                    var (reader, rc) = Pick(n + 1 + i);
                    var (_, shown) = await Call(reader, rc, HttpMethod.Get, $"/v1/clusters/{uuid}", null, HttpStatusCode.OK);
                    var status = (string?)shown?["status"];
                    if (status == "CREATE_COMPLETE") break;
                    if (status?.EndsWith("FAILED") == true || i > 600) { _errors.Enqueue($"{uuid} made through {name}: {status} after {i} polls"); break; }
                    await Task.Delay(200);
                }
                var (deleter, dc) = Pick(n + 2);
                await Call(deleter, dc, HttpMethod.Delete, $"/v1/clusters/{uuid}", null, HttpStatusCode.NoContent);
                for (var i = 0; ; i++)
                {
                    var (reader, rc) = Pick(n + i);
                    var (status, _) = await Call(reader, rc, HttpMethod.Get, $"/v1/clusters/{uuid}", null, HttpStatusCode.OK, HttpStatusCode.NotFound);
                    if (status == HttpStatusCode.NotFound) break;
                    if (i > 600) { _errors.Enqueue($"{uuid} made through {name}: not gone after {i} polls"); break; }
                    await Task.Delay(200);
                }
                Interlocked.Increment(ref _cycles);
            }
        }

        public async Task WaitForCyclesAsync(int cycles, string what, int seconds)
            => await WaitForAsync(() => Task.FromResult(_cycles), n => n >= cycles || !_errors.IsEmpty, what, seconds);

        public async Task WaitForRequestsAsync(string replica, int count, int seconds)
            => await WaitForAsync(() => Task.FromResult(_byReplica.GetValueOrDefault(replica)), n => n >= count, $"{count} requests through {replica}", seconds);
    }

    private static async Task Sql(string cs, string sql)
    {
        await using var conn = new NpgsqlConnection(cs);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        await cmd.ExecuteNonQueryAsync();
    }

    private static async Task<long> Scalar(string cs, string sql)
    {
        await using var conn = new NpgsqlConnection(cs);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        return Convert.ToInt64(await cmd.ExecuteScalarAsync());
    }

    private static async Task<List<string>> Rows(string cs, string sql)
    {
        await using var conn = new NpgsqlConnection(cs);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        await using var r = await cmd.ExecuteReaderAsync();
        var rows = new List<string>();
        while (await r.ReadAsync()) rows.Add(string.Join(" | ", Enumerable.Range(0, r.FieldCount).Select(i => r.IsDBNull(i) ? "null" : r.GetValue(i).ToString())));
        return rows;
    }

    private static async Task<T> WaitForAsync<T>(Func<Task<T>> read, Func<T, bool> done, string what, int seconds, bool throwOnTimeout = true)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            var value = await read();
            if (done(value)) return value;
            if (DateTime.UtcNow > deadline && !throwOnTimeout) return value;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"timed out waiting for {what} (last: {value})");
            await Task.Delay(100);
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
