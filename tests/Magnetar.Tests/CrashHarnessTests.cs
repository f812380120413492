using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using Xunit.Abstractions;

namespace Magnetar.Tests;

/// <summary>
/// Kills the server (SIGKILL) at random instants while clusters are being created, resized and deleted on the
/// simulated cloud, starts it again each time, and checks at the end that every cluster converged to what was last
/// asked of it, with exactly the servers it should have, and that deleting everything leaves no simulated resource.
/// CI runs 20 kills; MAGNETAR_CRASH_ITERATIONS=N runs more (the README records a run of 100+).
/// </summary>
public sealed class CrashHarnessTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Random_kills_during_create_resize_and_delete_converge_with_no_duplicate_and_no_leak()
    {
        var iterations = int.TryParse(Environment.GetEnvironmentVariable("MAGNETAR_CRASH_ITERATIONS"), out var n) ? n : 20;
        var random = new Random(20261125);
        var dir = Directory.CreateTempSubdirectory("crash-").FullName;
        var url = $"http://127.0.0.1:{MagnetarProcess.FreePort()}";
        await using var server = new MagnetarProcess(url, Path.Combine(dir, "data"),
            "--Magnetar:Cloud:Simulated:StepDelayMs=60", "--Magnetar:Conductor:PollIntervalMs=50", "--Magnetar:Conductor:LeaseSeconds=2",
            "--Magnetar:Api:RateLimitPerSecond=0");
        await server.StartAsync(() => File.Exists(Path.Combine(server.DataDir, "openrc-demo")));
        using var c = await server.ClientAsync();
        var template = (string)(await Send(c, HttpMethod.Post, "/v1/clustertemplates", """
            {"name": "crash", "coe": "kubernetes", "image_id": "fedora-coreos-40", "external_network_id": "public", "flavor_id": "m1.small",
             "master_flavor_id": "m1.medium", "network_driver": "calico", "master_lb_enabled": true}
            """, 201))["uuid"]!;

        // What each cluster should end as: its worker count, or null when it was deleted.
        var desired = new Dictionary<string, int?>();
        var masters = new Dictionary<string, int>();
        var actions = new Dictionary<string, int>();
        var started = DateTime.UtcNow;
        for (var i = 0; i < iterations; i++)
        {
            // One to three actions, then a kill after a random delay: mid-create, mid-resize, mid-delete, or idle.
            for (var k = random.Next(1, 4); k > 0; k--)
            {
                var live = desired.Where(d => d.Value is not null).Select(d => d.Key).ToList();
                var choice = live.Count < 2 ? 0 : random.Next(3);
                switch (choice)
                {
                    case 0 when live.Count < 5:
                        var m = random.Next(2) == 0 ? 1 : 3;
                        var w = random.Next(0, 3);
                        var created = await Send(c, HttpMethod.Post, "/v1/clusters", $$"""{"name": "c{{i}}-{{k}}", "cluster_template_id": "{{template}}", "master_count": {{m}}, "node_count": {{w}}}""", 202);
                        desired[(string)created["uuid"]!] = w;
                        masters[(string)created["uuid"]!] = m;
                        Count("create");
                        break;
                    case 1:
                        var target = live[random.Next(live.Count)];
                        var count = random.Next(0, 4);
                        // A resize is accepted only when the cluster is not busy (Magnum's rule): try, and record it if taken.
                        var r = await c.PostAsync($"/v1/clusters/{target}/actions/resize", Json($$"""{"node_count": {{count}}}"""));
                        if (r.StatusCode == HttpStatusCode.Accepted) { desired[target] = count; Count("resize"); }
                        break;
                    default:
                        var victim = live[random.Next(live.Count)];
                        var d = await c.DeleteAsync($"/v1/clusters/{victim}");
                        if (d.StatusCode == HttpStatusCode.NoContent) { desired[victim] = null; Count("delete"); }
                        break;
                }
            }
            await Task.Delay(random.Next(0, 700));
            await server.KillAsync();
            await server.StartAsync();
        }
        output.WriteLine($"{iterations} kills, actions {string.Join(", ", actions.Select(a => $"{a.Key} {a.Value}"))}, {(DateTime.UtcNow - started).TotalSeconds:F0} s");

        // No more kills: everything converges to what was last asked.
        await WaitConvergedAsync(c, desired, masters, uuid => Task.FromResult(Servers(server.DataDir, uuid)), TimeSpan.FromSeconds(120),
            TimeSpan.FromMilliseconds(100), () => server.Log[^Math.Min(4000, server.Log.Length)..]);

        // Delete what is left: not one simulated resource may remain.
        foreach (var uuid in desired.Where(d => d.Value is not null).Select(d => d.Key))
            await Send(c, HttpMethod.Delete, $"/v1/clusters/{uuid}", null, 204);
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (Scalar(server.DataDir, "SELECT COUNT(*) FROM clusters") > 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "clusters not deleted");
            await Task.Delay(100);
        }
        Assert.Equal(0L, Scalar(server.DataDir, "SELECT COUNT(*) FROM simulated_resources"));
        Assert.Equal(0L, Scalar(server.DataDir, "SELECT COUNT(*) FROM cluster_cas"));
        Assert.Equal(0L, Scalar(server.DataDir, "SELECT COUNT(*) FROM node_states"));

        void Count(string action) => actions[action] = actions.GetValueOrDefault(action) + 1;
    }

    /// <summary>
    /// Waits until every cluster is what was last asked of it: gone where the last ask was a delete, else *_COMPLETE
    /// with that node_count and exactly its servers (counted by <paramref name="servers"/>). A *_FAILED cluster or the
    /// deadline fails the test, with <paramref name="diagnostics"/> for the latter.
    /// </summary>
    internal static async Task WaitConvergedAsync(HttpClient c, IReadOnlyDictionary<string, int?> desired, IReadOnlyDictionary<string, int> masters,
        Func<string, Task<long>> servers, TimeSpan within, TimeSpan poll, Func<string>? diagnostics = null)
    {
        var deadline = DateTime.UtcNow + within;
        foreach (var (uuid, workers) in desired)
            while (true)
            {
                var resp = await c.GetAsync($"/v1/clusters/{uuid}");
                if (workers is null && resp.StatusCode == HttpStatusCode.NotFound) break;
                var cluster = JsonNode.Parse(await resp.Content.ReadAsStringAsync())!;
                var status = (string?)cluster["status"];
                if (workers is not null && status is "CREATE_COMPLETE" or "UPDATE_COMPLETE")
                {
                    Assert.Equal(workers, (int)cluster["node_count"]!);
                    Assert.Equal(masters[uuid] + workers.Value, await servers(uuid));
                    break;
                }
                Assert.False(status?.EndsWith("_FAILED") == true, $"{uuid}: {status} {cluster["status_reason"]}");
                Assert.True(DateTime.UtcNow < deadline, $"{uuid} did not converge: {status} {cluster["status_reason"]}\n{diagnostics?.Invoke()}");
                await Task.Delay(poll);
            }
    }

    private static long Servers(string dataDir, string uuid)
        => Scalar(dataDir, $"SELECT COUNT(*) FROM simulated_resources WHERE ClusterUuid = '{uuid}' AND Kind = 'server' AND DeleteRequestedAt IS NULL");

    private static long Scalar(string dataDir, string sql)
    {
        using var db = new SqliteConnection($"Data Source={dataDir}/magnetar.db;Mode=ReadOnly");
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        return (long)cmd.ExecuteScalar()!;
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private static async Task<JsonNode> Send(HttpClient c, HttpMethod method, string path, string? body, int expect)
    {
        using var req = new HttpRequestMessage(method, path) { Content = body is null ? null : Json(body) };
        using var resp = await c.SendAsync(req);
        var text = await resp.Content.ReadAsStringAsync();
        Assert.True((int)resp.StatusCode == expect, $"{method} {path}: {(int)resp.StatusCode} {text}");
        return string.IsNullOrEmpty(text) ? new JsonObject() : JsonNode.Parse(text)!;
    }
}
