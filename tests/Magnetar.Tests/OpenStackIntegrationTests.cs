using System.Net;
using System.Text.Json.Nodes;
using Magnetar.Cloud.OpenStack;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace Magnetar.Tests;

/// <summary>
/// Runs only against the real OpenStack all-in-one (deploy/openstack-aio.sh, started by scripts/test, which sets
/// MAGNETAR_OPENSTACK_ENV to its Keystone env file); required when MAGNETAR_REQUIRE_OPENSTACK=1.
/// </summary>
public sealed class OpenStackFactAttribute : FactAttribute
{
    public OpenStackFactAttribute() => Skip = OpenStackEnv.File.SkipReason;
}

public static class OpenStackEnv
{
    public static readonly ServiceEnvFile File = new("MAGNETAR_OPENSTACK_ENV", "MAGNETAR_REQUIRE_OPENSTACK", "scripts/test starts the OpenStack all-in-one and sets it");

    public static Dictionary<string, string> Load() => File.Load();
}

/// <summary>
/// Magnetar in keystone mode with the OpenStack driver, against Keystone, Nova (fake virt driver), Neutron, Glance and
/// (when the all-in-one has it) Octavia from Debian's packages: a tenant creates a cluster through the Magnum API, the
/// resources appear in the tenant's project, resize adds and removes servers, and delete leaves nothing behind —
/// checked by listing the project with the tenant's own credentials, not by asking Magnetar.
/// </summary>
[Trait("Category", "Integration")]
public sealed class OpenStackIntegrationTests
{
    private static async Task<(TestHost Host, Dictionary<string, string> Env)> StartAsync()
    {
        var env = OpenStackEnv.Load();
        var host = await TestHost.StartAsync(Db.Sqlite, settings: new()
        {
            ["Magnetar:Identity:Mode"] = "keystone",
            ["Magnetar:Identity:Keystone:AuthUrl"] = env["KEYSTONE_URL"],
            ["Magnetar:Identity:Keystone:Username"] = env["SERVICE_USER"],
            ["Magnetar:Identity:Keystone:Password"] = env["SERVICE_PASSWORD"],
            ["Magnetar:Identity:Keystone:ProjectName"] = env["SERVICE_PROJECT"],
            ["Magnetar:Cloud:Provider"] = "openstack",
            ["Magnetar:Conductor:PollIntervalMs"] = "200",
            ["Magnetar:Conductor:LeaseSeconds"] = "120", // a pass over a real cloud takes seconds, not the simulated cloud's milliseconds
            ["Logging:LogLevel:Magnetar"] = "Information",
        });
        return (host, env);
    }

    private static async Task<HttpClient> TenantAsync(TestHost host, Dictionary<string, string> env)
    {
        var token = await KeystoneEnv.TokenAsync(env, env["DEMO_USER"], env["DEMO_PASSWORD"], env["DEMO_PROJECT"]);
        var c = host.App.GetTestClient();
        c.DefaultRequestHeaders.Add("X-Auth-Token", token);
        c.DefaultRequestHeaders.Add("OpenStack-API-Version", "container-infra latest");
        return c;
    }

    /// <summary>The tenant's own view of the cloud, through the same typed clients (demo's password).</summary>
    private static OpenStackTenantView TenantView(Dictionary<string, string> env)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton(TimeProvider.System);
        services.AddOpenStackCloud(new OpenStackOptions { AuthUrl = env["KEYSTONE_URL"] });
        var http = services.BuildServiceProvider().GetRequiredService<IHttpClientFactory>().CreateClient(OpenStackCloudProvider.HttpClientName);
        var session = new KeystoneSession(http, env["KEYSTONE_URL"], new OpenStackCredential.Password(env["DEMO_USER"], env["DEMO_PASSWORD"], env["DEMO_PROJECT"]),
            "RegionOne", "public", TimeProvider.System, NullLogger.Instance);
        return new OpenStackTenantView(session, new ComputeClient(http, session, NullLogger.Instance), new NetworkClient(http, session, NullLogger.Instance),
            new LoadBalancerClient(http, session, NullLogger.Instance), new IdentityClient(http, session, NullLogger.Instance));
    }

    private sealed record OpenStackTenantView(KeystoneSession Session, ComputeClient Compute, NetworkClient Network, LoadBalancerClient Lb, IdentityClient Identity)
    {
        public async Task<bool> HasLoadBalancerServiceAsync()
        {
            try { await Session.EndpointAsync("load-balancer", default); return true; }
            catch (OpenStackApiException) { return false; }
        }

        /// <summary>Everything in the project that carries the cluster's tag or marker.</summary>
        public async Task<List<string>> ClusterResourcesAsync(string uuid, bool withLb)
        {
            var tag = OpenStackCloudProvider.Tag(uuid);
            var marker = $"magnetar:{uuid}:";
            bool Ours(string? d, List<string>? t) => d?.StartsWith(marker) == true || t?.Contains(tag) == true;
            var found = new List<string>();
            found.AddRange((await Compute.ListServersByTagAsync(tag, default)).Select(s => $"server {s.Name}"));
            found.AddRange((await Compute.ListServerGroupsAsync(default)).Where(g => g.Name.StartsWith($"magnetar-{uuid}")).Select(g => $"server group {g.Name}"));
            found.AddRange((await Network.ListNetworksAsync("", default)).Where(n => Ours(n.Description, n.Tags)).Select(n => $"network {n.Name}"));
            found.AddRange((await Network.ListSubnetsAsync("", default)).Where(n => Ours(n.Description, n.Tags)).Select(n => $"subnet {n.Name}"));
            found.AddRange((await Network.ListRoutersAsync("", default)).Where(n => Ours(n.Description, n.Tags)).Select(n => $"router {n.Name}"));
            found.AddRange((await Network.ListSecurityGroupsAsync("", default)).Where(n => Ours(n.Description, n.Tags)).Select(n => $"security group {n.Name}"));
            found.AddRange((await Network.ListFloatingIpsAsync("", default)).Where(n => Ours(n.Description, n.Tags)).Select(n => $"floating IP {n.FloatingIpAddress}"));
            if (withLb)
                found.AddRange((await Lb.ListLoadBalancersAsync("", default)).Where(l => l.Name.Contains(uuid) || l.Tags?.Contains(tag) == true).Select(l => $"load balancer {l.Name}"));
            found.AddRange((await Identity.ListApplicationCredentialsAsync(Session.UserId!, $"magnetar-{uuid}", default)).Select(a => $"application credential {a.Name}"));
            return found;
        }
    }

    private static async Task<JsonNode> WaitForStatusAsync(HttpClient c, string uuid, string expected, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        JsonNode? last = null;
        while (DateTime.UtcNow < deadline)
        {
            last = await c.GetAsync($"/v1/clusters/{uuid}").ExpectAsync(200);
            var status = (string?)last["status"];
            if (status == expected) return last;
            Assert.False(status!.EndsWith("_FAILED"), $"cluster went to {status}: {last["status_reason"]}");
            await Task.Delay(1000);
        }
        throw new TimeoutException($"cluster {uuid} did not reach {expected} in {timeout}: last {last?["status"]} — {last?["status_reason"]}");
    }

    [OpenStackFact]
    public async Task A_tenant_creates_resizes_and_deletes_a_cluster_on_real_openstack_and_nothing_is_left()
    {
        var (host, env) = await StartAsync();
        await using var _ = host;
        var c = await TenantAsync(host, env);
        var view = TenantView(env);
        var withLb = await view.HasLoadBalancerServiceAsync();

        // Template references resolve against the real cloud (and a wrong one is refused as Magnum does).
        var bad = await c.PostJson("/v1/clustertemplates", """{"name": "bad", "image_id": "no-such-image", "external_network_id": "public", "coe": "kubernetes"}""").ExpectAsync(400);
        Assert.Contains("no-such-image", bad.ErrorDetail());
        var template = await c.PostJson("/v1/clustertemplates", $$"""
            {"name": "k8s-aio", "image_id": "fedora-coreos-40", "external_network_id": "public", "coe": "kubernetes",
             "flavor_id": "m1.small", "master_flavor_id": "m1.medium", "network_driver": "calico",
             "master_lb_enabled": {{(withLb ? "true" : "false")}}, "floating_ip_enabled": true}
            """).ExpectAsync(201);

        var created = await c.PostJson("/v1/clusters", $$"""{"name": "aio-1", "cluster_template_id": "{{template["uuid"]}}", "master_count": 1, "node_count": 2}""").ExpectAsync(202);
        var uuid = (string)created["uuid"]!;
        try
        {
            var cluster = await WaitForStatusAsync(c, uuid, "CREATE_COMPLETE", TimeSpan.FromMinutes(4));
            Assert.StartsWith("https://172.24.4.", (string?)cluster["api_address"]);
            Assert.Equal(2, cluster["node_addresses"]!.AsArray().Count);
            Assert.Single(cluster["master_addresses"]!.AsArray());

            // What the tenant sees in their own project.
            var servers = await view.Compute.ListServersByTagAsync(OpenStackCloudProvider.Tag(uuid), default);
            Assert.Equal(3, servers.Count);
            Assert.All(servers, s => Assert.Equal("ACTIVE", s.Status));
            Assert.Equal(["aio-1-default-master-0", "aio-1-default-worker-0", "aio-1-default-worker-1"], servers.Select(s => s.Name).Order());
            var groups = (await view.Compute.ListServerGroupsAsync(default)).Where(g => g.Name.StartsWith($"magnetar-{uuid}")).ToList();
            Assert.Equal(2, groups.Count);
            Assert.Contains(groups, g => g.Policy == "anti-affinity" && g.Members?.Count == 1);
            var resources = await view.ClusterResourcesAsync(uuid, withLb);
            Assert.Contains(resources, r => r.StartsWith("router "));
            Assert.Equal(2, resources.Count(r => r.StartsWith("security group ")));
            Assert.Equal(withLb ? 4 : 3, resources.Count(r => r.StartsWith("floating IP "))); // every node, as Magnum (+ the API VIP)
            Assert.Contains(resources, r => r.StartsWith("application credential "));
            if (withLb)
            {
                var lb = (await view.Lb.ListLoadBalancersAsync($"name={OpenStackCloudProvider.LoadBalancerName(uuid)}", default)).Single();
                Assert.Equal("ACTIVE", lb.ProvisioningStatus);
                var members = await view.Lb.ListMembersAsync(lb.Pools!.Single().Id, default);
                Assert.Equal(servers.Single(s => s.Name.Contains("master")).FixedAddress, Assert.Single(members).Address);
            }

            // Resize: down to one worker (the one the tenant names goes), then back up.
            var victim = servers.Single(s => s.Name == "aio-1-default-worker-0");
            await c.PostJson($"/v1/clusters/{uuid}/actions/resize", $$"""{"node_count": 1, "nodes_to_remove": ["{{victim.Id}}"]}""").ExpectAsync(202);
            await WaitForStatusAsync(c, uuid, "UPDATE_COMPLETE", TimeSpan.FromMinutes(3));
            var after = await view.Compute.ListServersByTagAsync(OpenStackCloudProvider.Tag(uuid), default);
            Assert.Equal(["aio-1-default-master-0", "aio-1-default-worker-1"], after.Select(s => s.Name).Order());
        }
        finally
        {
            await c.DeleteAsync($"/v1/clusters/{uuid}");
            var deadline = DateTime.UtcNow.AddMinutes(4);
            while (DateTime.UtcNow < deadline && (await c.GetAsync($"/v1/clusters/{uuid}")).StatusCode != HttpStatusCode.NotFound)
                await Task.Delay(1000);
        }
        var gone = await c.GetAsync($"/v1/clusters/{uuid}");
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
        Assert.Empty(await view.ClusterResourcesAsync(uuid, withLb));
        await c.DeleteAsync($"/v1/clustertemplates/{template["uuid"]}");
    }
}
