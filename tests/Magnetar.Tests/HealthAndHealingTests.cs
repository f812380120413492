using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;

namespace Magnetar.Tests;

/// <summary>
/// The health monitor and auto-healing on the simulated cloud (Magnetar as its own process; nothing boots, a node counts
/// when its server is ACTIVE, and Magnetar reaches no cluster API there, so health comes from the cloud). Servers are
/// broken out of band by writing the simulated cloud's table, as an operator's mistake or a hypervisor failure would:
/// one deleted, one forced to ERROR. With <c>auto_healing_enabled=true</c> both are replaced; without it they are only
/// reported; and when most of a nodegroup fails at once nothing is replaced (a likely outage).
/// </summary>
public sealed class HealthAndHealingTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("health-").FullName;
    private MagnetarProcess? _server;
    private HttpClient _http = new();
    private readonly MagnumSession _magnum;
    private readonly ServerDatabase _db;

    public HealthAndHealingTests()
    {
        _magnum = new MagnumSession(() => _http, () => _server!.Log);
        _db = new ServerDatabase(() => _server!.DataDir);
    }

    private Task<JsonNode> Api(HttpMethod method, string path, JsonObject? body, HttpStatusCode expect) => _magnum.Api(method, path, body, expect);
    private Task<JsonNode> WaitFor(string cluster, Func<JsonNode, bool> done, int seconds = 60) => _magnum.WaitFor(cluster, done, seconds);
    private long Count(string sql) => _db.Count(sql);
    private void Exec(string sql) => _db.Exec(sql);
    private List<(string Reason, string Message)> Events(string cluster) => _db.Events(cluster);

    public async Task InitializeAsync()
    {
        var url = $"http://127.0.0.1:{MagnetarProcess.FreePort()}";
        var data = Path.Combine(_dir, "data");
        _server = new MagnetarProcess(url, data,
            "--Magnetar:Cloud:Simulated:StepDelayMs=100", "--Magnetar:Conductor:PollIntervalMs=100",
            "--Magnetar:Health:IntervalSeconds=1", "--Magnetar:Health:UnhealthySeconds=2", "--Magnetar:Health:HealIntervalSeconds=1");
        await _server.StartAsync(() => File.Exists(Path.Combine(data, "openrc-demo")));
        _http.Dispose();
        _http = await _server.ClientAsync();
        await Api(HttpMethod.Post, "/v1/clustertemplates", new JsonObject
        {
            ["name"] = "k8s", ["coe"] = "kubernetes", ["image_id"] = "fedora-coreos-40", ["external_network_id"] = "public",
            ["flavor_id"] = "m1.small", ["master_flavor_id"] = "m1.medium", ["master_lb_enabled"] = true,
            ["labels"] = new JsonObject { ["kube_tag"] = "v1.31.1" },
        }, HttpStatusCode.Created);
        // Without a load balancer in front of the control plane, and a newer version to upgrade to.
        await Api(HttpMethod.Post, "/v1/clustertemplates", new JsonObject
        {
            ["name"] = "plain", ["coe"] = "kubernetes", ["image_id"] = "fedora-coreos-40", ["external_network_id"] = "public",
            ["flavor_id"] = "m1.small", ["master_flavor_id"] = "m1.medium", ["labels"] = new JsonObject { ["kube_tag"] = "v1.31.1" },
        }, HttpStatusCode.Created);
        await Api(HttpMethod.Post, "/v1/clustertemplates", new JsonObject
        {
            ["name"] = "k8s-1.32", ["coe"] = "kubernetes", ["image_id"] = "fedora-coreos-40", ["external_network_id"] = "public",
            ["flavor_id"] = "m1.small", ["master_flavor_id"] = "m1.medium", ["labels"] = new JsonObject { ["kube_tag"] = "v1.32.1" },
        }, HttpStatusCode.Created);
    }

    public async Task DisposeAsync()
    {
        if (_server is not null) await _server.DisposeAsync();
        _http.Dispose();
        try { Directory.Delete(_dir, true); } catch { }
    }

    [Fact]
    public async Task Broken_servers_are_reported_and_replaced_only_where_auto_healing_is_on_and_safe()
    {
        var heal = await Create("heal", autoHealing: true);
        var watch = await Create("watch", autoHealing: false, template: "plain");
        var outage = await Create("outage", autoHealing: true);
        foreach (var c in new[] { heal, watch, outage })
        {
            await WaitFor(c, x => x["status"]!.GetValue<string>() == "CREATE_COMPLETE");
            var healthy = await WaitFor(c, x => x["health_status"]?.GetValue<string>() == "HEALTHY");
            var reason = healthy["health_status_reason"]!.AsObject();
            Assert.StartsWith("not checked", reason["api"]!.GetValue<string>());
            Assert.Equal(4, reason.Count(kv => kv.Key.EndsWith(".Ready") && kv.Value!.GetValue<string>() == "True")); // 1 master + 3 workers
        }
        var healIds = ServerIds("heal");

        // Upgrades replace nodes: a control plane without load balancer would get a new API address, so it is refused.
        var refused = await Api(HttpMethod.Post, $"/v1/clusters/{watch}/actions/upgrade", new JsonObject { ["cluster_template"] = "k8s-1.32" }, HttpStatusCode.BadRequest);
        Assert.Contains("without load balancer", refused["errors"]![0]!["detail"]!.GetValue<string>());

        // ---- break two workers of each cluster: one deleted out of band, one forced to ERROR (outage: two ERROR).
        Exec("DELETE FROM simulated_resources WHERE Kind = 'server' AND Name = 'heal-default-worker-0'");
        Exec("UPDATE simulated_resources SET Status = 'ERROR' WHERE Kind = 'server' AND Name = 'heal-default-worker-1'");
        Exec("DELETE FROM simulated_resources WHERE Kind = 'server' AND Name = 'watch-default-worker-0'");
        Exec("UPDATE simulated_resources SET Status = 'ERROR' WHERE Kind = 'server' AND Name = 'watch-default-worker-1'");
        Exec("UPDATE simulated_resources SET Status = 'ERROR' WHERE Kind = 'server' AND Name IN ('outage-default-worker-0', 'outage-default-worker-1')");

        // Without auto-healing: reported, node by node, and nothing else happens.
        var w = await WaitFor(watch, x => x["health_status"]?.GetValue<string>() == "UNHEALTHY"
            && x["health_status_reason"]?["watch-default-worker-0.reason"] is not null && x["health_status_reason"]?["watch-default-worker-1.reason"] is not null);
        Assert.Equal("server gone", w["health_status_reason"]!["watch-default-worker-0.reason"]!.GetValue<string>());
        Assert.Equal("server ERROR", w["health_status_reason"]!["watch-default-worker-1.reason"]!.GetValue<string>());
        Assert.Equal("False", w["health_status_reason"]!["watch-default-worker-1.Ready"]!.GetValue<string>());
        Assert.Equal("True", w["health_status_reason"]!["watch-default-worker-2.Ready"]!.GetValue<string>());

        // With it: the deleted server comes back, the ERROR one is replaced; one node at a time, each an event.
        var h = await WaitFor(heal, x => x["status"]!.GetValue<string>() == "UPDATE_COMPLETE" && x["health_status"]?.GetValue<string>() == "HEALTHY"
            && Count("SELECT COUNT(*) FROM simulated_resources WHERE Kind = 'server' AND Status = 'ACTIVE' AND ClusterUuid = '" + heal + "'") == 4
            && Count("SELECT COUNT(*) FROM simulated_resources WHERE ClusterUuid = '" + heal + "' AND Status = 'ERROR'") == 0, 90);
        Assert.Equal(3, h["node_count"]!.GetValue<int>());
        var after = ServerIds("heal");
        Assert.Equal(4, after.Count);
        Assert.True(after["heal-default-worker-0"] > healIds.Values.Max(), "a new server took the deleted one's place");
        Assert.DoesNotContain(after, kv => kv.Key != "heal-default-worker-0" && !healIds.ContainsKey(kv.Key) && kv.Key.EndsWith("-1"));
        Assert.Equal(healIds["heal-default-master-0"], after["heal-default-master-0"]); // untouched
        Assert.Equal(healIds["heal-default-worker-2"], after["heal-default-worker-2"]);
        var events = Events(heal);
        // The ERROR server was healed; the deleted one either was too or came back with that pass (the nodegroup's count).
        Assert.Contains(events, e => e.Reason == "AutoHealing" && e.Message.Contains("heal-default-worker-1") && e.Message.Contains("server ERROR"));
        Assert.All(events.Where(e => e.Reason == "AutoHealing" && e.Message.Contains("heal-default-worker-0")), e => Assert.Contains("server gone", e.Message));
        Assert.DoesNotContain(events, e => e.Reason == "AutoHealing" && !e.Message.Contains("heal-default-worker-0") && !e.Message.Contains("heal-default-worker-1"));
        Assert.Contains(events, e => e.Reason == "HealthChanged" && e.Message.Contains("→ UNHEALTHY"));

        // An outage-like failure (2 of 3 workers) is withheld: an event says why, nothing is replaced.
        await WaitFor(outage, x => x["health_status"]?.GetValue<string>() == "UNHEALTHY");
        await Task.Delay(5000);
        var o = await Api(HttpMethod.Get, $"/v1/clusters/{outage}", null, HttpStatusCode.OK);
        Assert.Equal("CREATE_COMPLETE", o["status"]!.GetValue<string>());
        Assert.Equal(2, Count($"SELECT COUNT(*) FROM simulated_resources WHERE ClusterUuid = '{outage}' AND Status = 'ERROR'"));
        var withheld = Events(outage).Where(e => e.Reason == "AutoHealingWithheld").ToList();
        Assert.Single(withheld); // once, not every sweep
        Assert.Contains("2 of 3 nodes of nodegroup default-worker are unhealthy", withheld[0].Message);

        // The watched cluster is still as it was left: reported, not touched.
        var wNow = await Api(HttpMethod.Get, $"/v1/clusters/{watch}", null, HttpStatusCode.OK);
        Assert.Equal("CREATE_COMPLETE", wNow["status"]!.GetValue<string>());
        Assert.Equal(1, Count($"SELECT COUNT(*) FROM simulated_resources WHERE ClusterUuid = '{watch}' AND Status = 'ERROR'"));
        Assert.Equal(0, Count($"SELECT COUNT(*) FROM simulated_resources WHERE ClusterUuid = '{watch}' AND Name = 'watch-default-worker-0'"));
        Assert.DoesNotContain(Events(watch), e => e.Reason.StartsWith("AutoHealing"));

        // Mended by hand (the ERROR server back to ACTIVE, a resize brings the missing one back): HEALTHY again.
        Exec("UPDATE simulated_resources SET Status = 'ACTIVE' WHERE Name = 'watch-default-worker-1'");
        await Api(HttpMethod.Post, $"/v1/clusters/{watch}/actions/resize", new JsonObject { ["node_count"] = 3 }, HttpStatusCode.Accepted);
        await WaitFor(watch, x => x["status"]!.GetValue<string>() == "UPDATE_COMPLETE" && x["health_status"]?.GetValue<string>() == "HEALTHY", 60);

        foreach (var c in new[] { heal, watch, outage }) await Api(HttpMethod.Delete, $"/v1/clusters/{c}", null, HttpStatusCode.NoContent);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (Count("SELECT COUNT(*) FROM clusters") > 0 && DateTime.UtcNow < deadline) await Task.Delay(200);
        Assert.Equal(0, Count("SELECT COUNT(*) FROM simulated_resources"));
        Assert.Equal(0, Count("SELECT COUNT(*) FROM node_states"));
    }

    private async Task<string> Create(string name, bool autoHealing, string template = "k8s")
    {
        var labels = new JsonObject { ["kube_tag"] = "v1.31.1" };
        if (autoHealing) labels["auto_healing_enabled"] = "true";
        var r = await Api(HttpMethod.Post, "/v1/clusters", new JsonObject
        {
            ["name"] = name, ["cluster_template_id"] = template, ["master_count"] = 1, ["node_count"] = 3, ["labels"] = labels,
        }, HttpStatusCode.Accepted);
        return r["uuid"]!.GetValue<string>();
    }

    /// <summary>The simulated servers of a cluster by name, with their row ids (a new server has a higher one).</summary>
    private Dictionary<string, long> ServerIds(string clusterName)
    {
        using var db = _db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = $"SELECT Name, Id FROM simulated_resources WHERE Kind = 'server' AND DeleteRequestedAt IS NULL AND Name LIKE '{clusterName}-%'";
        var result = new Dictionary<string, long>();
        using var r = cmd.ExecuteReader();
        while (r.Read()) result[r.GetString(0)] = r.GetInt64(1);
        return result;
    }
}
