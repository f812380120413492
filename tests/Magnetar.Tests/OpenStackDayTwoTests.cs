using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Magnetar.Cloud.OpenStack;
using Magnetar.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using static Magnetar.Tests.OpenStackIntegrationTests;

namespace Magnetar.Tests;

/// <summary>
/// Day two on the real all-in-one (Magnetar in keystone mode with the OpenStack driver, servers counted when ACTIVE —
/// Nova's fake driver boots nothing — and no cluster API reached, as no Kubernetes runs): a rolling upgrade replaces
/// every server (control plane first, behind the load balancer) with one made for the new version; auto-healing
/// replaces a worker deleted out of band and one Nova reports in ERROR; without the label the same damage is only
/// reported. Everything is checked in Nova, Neutron and Octavia themselves, and deleting the clusters leaves nothing.
/// </summary>
[Trait("Category", "Integration")]
public sealed class OpenStackDayTwoTests
{
    private const string OldVersion = "v1.31.1";
    private const string NewVersion = "v1.32.1";

    [OpenStackFact]
    public async Task Upgrade_replaces_every_server_and_auto_healing_replaces_broken_workers_only_where_enabled()
    {
        var log = new LogCapture();
        var (host, env) = await StartAsync(settings: new()
        {
            // No Kubernetes runs on the all-in-one: health comes from the cloud, drains are skipped.
            ["Magnetar:Conductor:ReachClusterApis"] = "false",
            ["Magnetar:Health:IntervalSeconds"] = "2",
            ["Magnetar:Health:UnhealthySeconds"] = "4",
            ["Magnetar:Health:HealIntervalSeconds"] = "1",
        }, services: s => s.AddSingleton<ILoggerProvider>(log));
        await using var _ = host;
        var c = await TenantAsync(host, env);
        var tenant = TenantView(env);
        var admin = OpenStackTenantView.Create(env, env["ADMIN_USER"], env["ADMIN_PASSWORD"], env["ADMIN_PROJECT"]);
        Assert.True(await tenant.HasLoadBalancerServiceAsync(), "the all-in-one has no Octavia: upgrades need a load balancer in front of the control plane");
        var ctx = new Ctx(host, c, tenant, admin, log);

        // 1. Two templates, the same but for the Kubernetes version.
        var templates = new Dictionary<string, string>();
        foreach (var version in new[] { OldVersion, NewVersion })
        {
            var t = await c.PostJson("/v1/clustertemplates", $$"""
                {"name": "day2-{{version}}", "image_id": "fedora-coreos-40", "external_network_id": "public", "coe": "kubernetes",
                 "flavor_id": "m1.tiny", "master_flavor_id": "m1.tiny", "network_driver": "calico",
                 "master_lb_enabled": true, "floating_ip_enabled": true, "labels": {"kube_tag": "{{version}}"} }
                """).ExpectAsync(201);
            templates[version] = (string)t["uuid"]!;
        }

        // Cluster A heals itself; cluster B does not (no label). Both are made at once (the all-in-one is slow).
        var a = (string)(await c.PostJson("/v1/clusters", $$"""
            {"name": "d2heal", "cluster_template_id": "{{templates[OldVersion]}}", "master_count": 1, "node_count": 2,
             "labels": {"auto_healing_enabled": "true"}, "merge_labels": true}
            """).ExpectAsync(202))["uuid"]!;
        string? b = null;
        try
        {
            b = (string)(await c.PostJson("/v1/clusters", $$"""
                {"name": "d2watch", "cluster_template_id": "{{templates[OldVersion]}}", "master_count": 1, "node_count": 3}
                """).ExpectAsync(202))["uuid"]!;

            // ---- 2. Cluster A: created on v1.31.1, upgraded to v1.32.1 by replacing every server.
            var created = await ctx.WaitAsync(a, "A created", v => Status(v) == "CREATE_COMPLETE", TimeSpan.FromMinutes(8));
            Assert.Equal("true", (string?)created["labels"]!["auto_healing_enabled"]);
            Assert.Equal(OldVersion, (string?)created["coe_version"]);
            var original = await ctx.ServersAsync(a);
            Assert.Equal(["d2heal-default-master-0", "d2heal-default-worker-0", "d2heal-default-worker-1"], original.Select(s => s.Name).Order());
            foreach (var s in original) // the servers were made for the old version (so that the check after the upgrade means something)
                Assert.Contains($"MAGNETAR_KUBE_VERSION='{OldVersion}'", await ctx.UserDataAsync(s.Id));
            var oldMaster = original.Single(s => s.Name.Contains("-master-"));
            Assert.Equal([oldMaster.FixedAddress!], await ctx.PoolMembersAsync(a));

            await c.PostJson($"/v1/clusters/{a}/actions/upgrade", $$"""{"cluster_template": "{{templates[NewVersion]}}", "max_batch_size": 1}""").ExpectAsync(202);
            var upgraded = await ctx.WaitAsync(a, "A upgraded", v => Status(v) == "UPDATE_COMPLETE", TimeSpan.FromMinutes(10));
            Assert.Equal(NewVersion, (string?)upgraded["coe_version"]);
            Assert.Equal(templates[NewVersion], (string?)upgraded["cluster_template_id"]);
            foreach (var ng in new[] { "default-master", "default-worker" })
            {
                var group = await c.GetAsync($"/v1/clusters/{a}/nodegroups/{ng}").ExpectAsync(200);
                Assert.Equal(NewVersion, (string?)group["version"]);
                Assert.Equal("UPDATE_COMPLETE", (string?)group["status"]);
            }
            var afterUpgrade = await ctx.ServersAsync(a);
            Assert.Equal(3, afterUpgrade.Count);
            Assert.All(afterUpgrade, s => Assert.Equal("ACTIVE", s.Status));
            Assert.Empty(afterUpgrade.Select(s => s.Id).Intersect(original.Select(s => s.Id))); // every server replaced
            Assert.Single(afterUpgrade, s => s.Name.StartsWith("d2heal-default-master-"));
            Assert.Equal(2, afterUpgrade.Count(s => s.Name.StartsWith("d2heal-default-worker-")));
            foreach (var s in afterUpgrade)
                Assert.Contains($"MAGNETAR_KUBE_VERSION='{NewVersion}'", await ctx.UserDataAsync(s.Id));
            var newMaster = afterUpgrade.Single(s => s.Name.Contains("-master-"));
            Assert.NotEqual(oldMaster.FixedAddress, newMaster.FixedAddress);
            Assert.Equal([newMaster.FixedAddress!], await ctx.PoolMembersAsync(a)); // the old master's member is gone
            Assert.Equal((string?)created["api_address"], (string?)upgraded["api_address"]); // the load balancer's address stays
            await ctx.AssertFloatingIpsOnServersAsync(a);

            // ---- 3. Healing on A, with 3 workers (one broken worker is 33 %, under the 40 % guard).
            await c.PostJson($"/v1/clusters/{a}/actions/resize", """{"node_count": 3}""").ExpectAsync(202);
            await ctx.WaitAsync(a, "A resized", v => Status(v) == "UPDATE_COMPLETE" && (int?)v["node_count"] == 3, TimeSpan.FromMinutes(5));
            await ctx.WaitAsync(a, "A healthy with 4 nodes", v => Healthy(v, 4), TimeSpan.FromMinutes(1));
            var beforeHeal = await ctx.ServersAsync(a);
            Assert.Equal(4, beforeHeal.Count);
            // X: the worker with the lowest index (new servers take the lowest free index, so its name comes back);
            // Y: the one with the highest.
            var workers = beforeHeal.Where(s => s.Name.StartsWith("d2heal-default-worker-")).OrderBy(s => Index(s.Name)).ToList();
            Assert.Equal(3, workers.Count);
            var x = workers[0];
            var y = workers[^1];

            // X deleted out of band: reported as gone, then made again under its name.
            Assert.True(await tenant.Compute.DeleteServerAsync(x.Id, default));
            await ctx.WaitForNovaAsync(a, $"{x.Name} gone from Nova", list => list.All(s => s.Id != x.Id), TimeSpan.FromMinutes(2));
            var xReported = await ctx.WaitAsync(a, $"A unhealthy naming {x.Name}", v => Health(v) == "UNHEALTHY" && Reason(v, $"{x.Name}.reason") == "server gone",
                TimeSpan.FromMinutes(1), pollMs: 300);
            Assert.Equal("False", Reason(xReported, $"{x.Name}.Ready"));
            Assert.Equal("True", Reason(xReported, $"{y.Name}.Ready"));
            Assert.Equal("True", Reason(xReported, $"{newMaster.Name}.Ready"));
            var seen = new HashSet<string>();
            await ctx.WaitAsync(a, $"{x.Name} healed", v => { seen.Add(Status(v)); return Status(v) == "UPDATE_COMPLETE" && Healthy(v, 4); },
                TimeSpan.FromMinutes(5), pollMs: 300);
            Assert.Contains("UPDATE_IN_PROGRESS", seen);
            var afterX = await ctx.ServersAsync(a);
            var newX = Assert.Single(afterX, s => s.Name == x.Name);
            Assert.NotEqual(x.Id, newX.Id);
            Assert.Equal(4, afterX.Count);
            Assert.All(afterX, s => Assert.Equal("ACTIVE", s.Status));
            Assert.Equal(beforeHeal.Where(s => s.Id != x.Id).Select(s => s.Id).Order(), afterX.Where(s => s.Id != newX.Id).Select(s => s.Id).Order()); // nothing else touched
            Assert.Contains($"MAGNETAR_KUBE_VERSION='{NewVersion}'", await ctx.UserDataAsync(newX.Id));
            var events = await ctx.EventsAsync(a);
            Assert.Contains(events, e => e.Reason == "AutoHealing" && e.Message.Contains(x.Name) && e.Message.Contains("server gone"));
            await ctx.AssertFloatingIpsOnServersAsync(a);

            // Y forced to ERROR by the operator: reported, then replaced by a new server; Y's goes.
            await ctx.ResetStateAsync(y.Id, "error");
            await ctx.WaitForNovaAsync(a, $"{y.Name} ERROR in Nova", list => list.Any(s => s.Id == y.Id && s.Status == "ERROR"), TimeSpan.FromMinutes(1));
            var yReported = await ctx.WaitAsync(a, $"A unhealthy naming {y.Name}", v => Health(v) == "UNHEALTHY" && Reason(v, $"{y.Name}.reason") == "server ERROR",
                TimeSpan.FromMinutes(1), pollMs: 300);
            Assert.Equal("False", Reason(yReported, $"{y.Name}.Ready"));
            Assert.Equal("True", Reason(yReported, $"{x.Name}.Ready"));
            seen.Clear();
            await ctx.WaitAsync(a, $"{y.Name} healed", v => { seen.Add(Status(v)); return Status(v) == "UPDATE_COMPLETE" && Healthy(v, 4); },
                TimeSpan.FromMinutes(5), pollMs: 300);
            Assert.Contains("UPDATE_IN_PROGRESS", seen);
            var afterY = await ctx.ServersAsync(a);
            Assert.DoesNotContain(afterY, s => s.Id == y.Id);
            Assert.Equal(3, afterY.Count(s => s.Name.StartsWith("d2heal-default-worker-") && s.Status == "ACTIVE"));
            Assert.Equal(4, afterY.Count);
            Assert.Contains(afterY, s => s.Id == newX.Id);
            Assert.Contains(afterY, s => s.Id == newMaster.Id);
            events = await ctx.EventsAsync(a);
            Assert.Contains(events, e => e.Reason == "AutoHealing" && e.Message.Contains(y.Name) && e.Message.Contains("server ERROR"));
            Assert.DoesNotContain(events, e => e.Reason == "AutoHealingWithheld");
            await ctx.AssertFloatingIpsOnServersAsync(a);
            Assert.Equal([newMaster.FixedAddress!], await ctx.PoolMembersAsync(a));

            // ---- 4. Cluster B, without auto-healing: the same damage is reported and left alone.
            await ctx.WaitAsync(b, "B created", v => Status(v) == "CREATE_COMPLETE", TimeSpan.FromMinutes(5));
            await ctx.WaitAsync(b, "B healthy", v => Healthy(v, 4), TimeSpan.FromMinutes(1));
            var bServers = await ctx.ServersAsync(b);
            Assert.Equal(["d2watch-default-master-0", "d2watch-default-worker-0", "d2watch-default-worker-1", "d2watch-default-worker-2"], bServers.Select(s => s.Name).Order());
            var errored = bServers.Single(s => s.Name == "d2watch-default-worker-0");
            var deleted = bServers.Single(s => s.Name == "d2watch-default-worker-1");
            await ctx.ResetStateAsync(errored.Id, "error");
            Assert.True(await tenant.Compute.DeleteServerAsync(deleted.Id, default));
            await ctx.WaitForNovaAsync(b, "B's damage in Nova", list => list.All(s => s.Id != deleted.Id) && list.Any(s => s.Id == errored.Id && s.Status == "ERROR"), TimeSpan.FromMinutes(2));
            var bReported = await ctx.WaitAsync(b, "B unhealthy naming both", v => Health(v) == "UNHEALTHY"
                && Reason(v, $"{errored.Name}.reason") == "server ERROR" && Reason(v, $"{deleted.Name}.reason") == "server gone", TimeSpan.FromMinutes(1));
            Assert.Equal("False", Reason(bReported, $"{errored.Name}.Ready"));
            Assert.Equal("False", Reason(bReported, $"{deleted.Name}.Ready"));
            Assert.Equal("True", Reason(bReported, "d2watch-default-worker-2.Ready"));
            Assert.Equal("True", Reason(bReported, "d2watch-default-master-0.Ready"));
            await Task.Delay(TimeSpan.FromSeconds(15)); // several sweeps, and far beyond the 4 s grace
            var bLater = await c.GetAsync($"/v1/clusters/{b}").ExpectAsync(200);
            Assert.Equal("CREATE_COMPLETE", Status(bLater));
            Assert.Equal("UNHEALTHY", Health(bLater));
            Assert.Equal("server ERROR", Reason(bLater, $"{errored.Name}.reason"));
            Assert.Equal("server gone", Reason(bLater, $"{deleted.Name}.reason"));
            var bNow = await ctx.ServersAsync(b);
            Assert.Equal(bServers.Where(s => s.Id != deleted.Id).Select(s => s.Id).Order(), bNow.Select(s => s.Id).Order()); // nothing made, nothing deleted
            Assert.Equal("ERROR", bNow.Single(s => s.Id == errored.Id).Status);
            Assert.DoesNotContain(bNow, s => s.Name == deleted.Name);
            Assert.DoesNotContain(await ctx.EventsAsync(b), e => e.Reason.StartsWith("AutoHealing"));
        }
        finally
        {
            // ---- 5. Both deleted (also after a failure, so that the all-in-one is left clean).
            foreach (var uuid in new[] { a, b }.OfType<string>()) await c.DeleteAsync($"/v1/clusters/{uuid}");
            foreach (var uuid in new[] { a, b }.OfType<string>())
            {
                var deadline = DateTime.UtcNow.AddMinutes(5);
                while (DateTime.UtcNow < deadline && (await c.GetAsync($"/v1/clusters/{uuid}")).StatusCode != HttpStatusCode.NotFound)
                    await Task.Delay(1000);
            }
        }
        foreach (var uuid in new[] { a, b! })
        {
            var gone = await c.GetAsync($"/v1/clusters/{uuid}");
            Assert.True(gone.StatusCode == HttpStatusCode.NotFound, $"cluster {uuid} not deleted: {await gone.Content.ReadAsStringAsync()}\n{ctx.Diagnostics()}");
            Assert.Empty(await tenant.ClusterResourcesAsync(uuid));
        }
        foreach (var t in templates.Values) await c.DeleteAsync($"/v1/clustertemplates/{t}");
    }

    private static int Index(string serverName) => int.Parse(serverName[(serverName.LastIndexOf('-') + 1)..]);

    private static string Status(JsonNode cluster) => (string)cluster["status"]!;
    private static string? Health(JsonNode cluster) => (string?)cluster["health_status"];
    private static string? Reason(JsonNode cluster, string key) => (string?)cluster["health_status_reason"]?[key];

    /// <summary>HEALTHY, with exactly this many nodes judged and every one Ready.</summary>
    private static bool Healthy(JsonNode cluster, int nodes)
    {
        if (Health(cluster) != "HEALTHY" || cluster["health_status_reason"] is not JsonObject reason) return false;
        var ready = reason.Where(kv => kv.Key.EndsWith(".Ready")).ToList();
        return ready.Count == nodes && ready.All(kv => (string?)kv.Value == "True");
    }

    /// <summary>The test's handles, and what to show when a wait fails.</summary>
    private sealed record Ctx(TestHost Host, HttpClient Api, OpenStackTenantView Tenant, OpenStackTenantView Admin, LogCapture Log)
    {
        /// <summary>The cluster's servers as the tenant sees them in Nova (those being deleted left out).</summary>
        public async Task<List<Magnetar.Cloud.OpenStack.Server>> ServersAsync(string uuid)
            => (await Tenant.Compute.ListServersByTagAsync(OpenStackCloudProvider.Tag(uuid), default))
                .Where(s => s.Status != "DELETED" && s.TaskState != "deleting").ToList();

        /// <summary>A server's user-data, decoded (Nova shows it to admins only).</summary>
        public async Task<string> UserDataAsync(string serverId)
        {
            var server = await Admin.Compute.FindServerAsync(serverId, default);
            Assert.True(server?.UserData is not null, $"server {serverId}: no user-data in Nova's answer");
            return Encoding.UTF8.GetString(Convert.FromBase64String(server!.UserData!));
        }

        /// <summary>The addresses of the members of the cluster's API load balancer pool.</summary>
        public async Task<List<string>> PoolMembersAsync(string uuid)
        {
            var lb = (await Tenant.Lb.ListLoadBalancersAsync($"name={OpenStackCloudProvider.LoadBalancerName(uuid)}", default)).Single();
            Assert.Equal("ACTIVE", lb.ProvisioningStatus);
            return (await Tenant.Lb.ListMembersAsync(lb.Pools!.Single().Id, default)).Select(m => m.Address).Order().ToList();
        }

        /// <summary>Every server of the cluster has its own floating IP (floating_ip_enabled), associated with its fixed address.</summary>
        public async Task AssertFloatingIpsOnServersAsync(string uuid)
        {
            var fips = await Tenant.Network.ListFloatingIpsAsync($"tags={Uri.EscapeDataString(OpenStackCloudProvider.Tag(uuid))}", default);
            foreach (var s in await ServersAsync(uuid))
                Assert.True(fips.Any(f => f.PortId is not null && f.FixedIpAddress == s.FixedAddress),
                    $"server {s.Name} ({s.Id}, {s.FixedAddress}) has no floating IP associated; the cluster's: "
                    + string.Join(", ", fips.Select(f => $"{f.FloatingIpAddress} → {f.FixedIpAddress ?? "nothing"} ({f.Description})")));
            Assert.Equal((await ServersAsync(uuid)).Count + 1, fips.Count); // one per server, and the API's
        }

        /// <summary>What an operator does as admin: Nova's os-resetState action.</summary>
        public async Task ResetStateAsync(string serverId, string state)
        {
            var endpoint = (await Admin.Session.EndpointAsync("compute", default)).TrimEnd('/');
            using var http = new HttpClient();
            using var req = new HttpRequestMessage(HttpMethod.Post, $"{endpoint}/servers/{serverId}/action")
            {
                Content = new StringContent($$"""{"os-resetState": {"state": "{{state}}"} }""", Encoding.UTF8, "application/json"),
            };
            req.Headers.Add("X-Auth-Token", await Admin.Session.TokenAsync(default));
            req.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
            using var resp = await http.SendAsync(req);
            Assert.True(resp.StatusCode == HttpStatusCode.Accepted, $"os-resetState {serverId}: {(int)resp.StatusCode} {await resp.Content.ReadAsStringAsync()}");
        }

        public async Task<List<(string Reason, string Message)>> EventsAsync(string uuid)
        {
            await using var db = await Host.App.Services.GetRequiredService<IDbContextFactory<MagnetarDbContext>>().CreateDbContextAsync();
            return (await db.ClusterEvents.AsNoTracking().Where(e => e.ClusterUuid == uuid).OrderBy(e => e.Id).Select(e => new { e.Reason, e.Message }).ToListAsync())
                .Select(e => (e.Reason, e.Message)).ToList();
        }

        public async Task<JsonNode> WaitAsync(string uuid, string what, Func<JsonNode, bool> done, TimeSpan timeout, int pollMs = 1000)
        {
            var deadline = DateTime.UtcNow + timeout;
            JsonNode last;
            do
            {
                last = await Api.GetAsync($"/v1/clusters/{uuid}").ExpectAsync(200);
                if (done(last)) return last;
                if (Status(last).EndsWith("_FAILED"))
                    throw new Xunit.Sdk.XunitException($"{what}: cluster {uuid} went to {Status(last)}: {last["status_reason"]}\n{await DescribeAsync(uuid, last)}");
                await Task.Delay(pollMs);
            } while (DateTime.UtcNow < deadline);
            throw new TimeoutException($"{what}: not within {timeout}\n{await DescribeAsync(uuid, last)}");
        }

        public async Task WaitForNovaAsync(string uuid, string what, Func<List<Magnetar.Cloud.OpenStack.Server>, bool> done, TimeSpan timeout)
        {
            var deadline = DateTime.UtcNow + timeout;
            List<Magnetar.Cloud.OpenStack.Server> last;
            do
            {
                last = await Tenant.Compute.ListServersByTagAsync(OpenStackCloudProvider.Tag(uuid), default);
                if (done(last)) return;
                await Task.Delay(500);
            } while (DateTime.UtcNow < deadline);
            throw new TimeoutException($"{what}: not within {timeout}; Nova: {string.Join(", ", last.Select(s => $"{s.Name} {s.Id} {s.Status}/{s.TaskState}"))}");
        }

        private async Task<string> DescribeAsync(string uuid, JsonNode cluster)
        {
            var servers = await Tenant.Compute.ListServersByTagAsync(OpenStackCloudProvider.Tag(uuid), default);
            var events = await EventsAsync(uuid);
            return $"cluster: {cluster.ToJsonString()}\nNova: {string.Join(", ", servers.Select(s => $"{s.Name} {s.Id} {s.Status}/{s.TaskState}"))}\n"
                + $"events:\n  {string.Join("\n  ", events.TakeLast(40).Select(e => $"{e.Reason}: {e.Message}"))}\n{Diagnostics()}";
        }

        public string Diagnostics() => "log (tail):\n" + string.Join("\n", Log.Lines.TakeLast(80));
    }

    /// <summary>Magnetar's log, kept for failure messages.</summary>
    private sealed class LogCapture : ILoggerProvider
    {
        private readonly ConcurrentQueue<string> _lines = new();
        public IEnumerable<string> Lines => _lines;
        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);
        public void Dispose() { }

        private sealed class Logger(LogCapture owner, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
            public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;
            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                if (!IsEnabled(logLevel)) return;
                owner._lines.Enqueue($"{DateTime.UtcNow:HH:mm:ss.fff} {logLevel} {category}: {formatter(state, exception)}{(exception is null ? "" : " " + exception.GetType().Name + ": " + exception.Message)}");
                while (owner._lines.Count > 2000) owner._lines.TryDequeue(out _);
            }
        }
    }
}
