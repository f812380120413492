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

    /// <summary>A Magnetar process's arguments for the all-in-one: keystone mode with the service user, the OpenStack driver.</summary>
    public static string[] ServerArgs(Dictionary<string, string> env) =>
    [
        "--Magnetar:Identity:Mode=keystone", $"--Magnetar:Identity:Keystone:AuthUrl={env["KEYSTONE_URL"]}",
        $"--Magnetar:Identity:Keystone:Username={env["SERVICE_USER"]}", $"--Magnetar:Identity:Keystone:Password={env["SERVICE_PASSWORD"]}",
        $"--Magnetar:Identity:Keystone:ProjectName={env["SERVICE_PROJECT"]}", "--Magnetar:Cloud:Provider=openstack",
    ];

    /// <summary>A client of a Magnetar process's Magnum API as the demo tenant of the all-in-one, at the latest microversion.</summary>
    public static async Task<HttpClient> DemoClientAsync(Dictionary<string, string> env, string api)
    {
        var c = new HttpClient { BaseAddress = new Uri(api) };
        c.DefaultRequestHeaders.Add("X-Auth-Token", await KeystoneEnv.TokenAsync(env, env["DEMO_USER"], env["DEMO_PASSWORD"], env["DEMO_PROJECT"]));
        c.DefaultRequestHeaders.Add("OpenStack-API-Version", "container-infra latest");
        return c;
    }

    /// <summary>A file the all-in-one writes next to its env file (openrc-demo, openrc-admin).</summary>
    public static string Sibling(string name) => Path.Combine(Path.GetDirectoryName(Path.GetFullPath(File.Path!))!, name);
}

/// <summary>A user's own view of the all-in-one, through Magnetar's typed clients: how tests check what really exists.</summary>
public sealed record OpenStackTenantView(KeystoneSession Session, ComputeClient Compute, NetworkClient Network, LoadBalancerClient Lb,
    IdentityClient Identity, BlockStorageClient Volumes)
{
    public static OpenStackTenantView Create(Dictionary<string, string> env, string user, string password, string project)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton(TimeProvider.System);
        services.AddOpenStackCloud(new OpenStackOptions { AuthUrl = env["KEYSTONE_URL"] });
        var http = services.BuildServiceProvider().GetRequiredService<IHttpClientFactory>().CreateClient(OpenStackCloudProvider.HttpClientName);
        var session = new KeystoneSession(http, env["KEYSTONE_URL"], new OpenStackCredential.Password(user, password, project),
            "RegionOne", "public", TimeProvider.System, NullLogger.Instance);
        return new OpenStackTenantView(session, new ComputeClient(http, session, NullLogger.Instance), new NetworkClient(http, session, NullLogger.Instance),
            new LoadBalancerClient(http, session, NullLogger.Instance), new IdentityClient(http, session, NullLogger.Instance),
            new BlockStorageClient(http, session, NullLogger.Instance));
    }

    public async Task<bool> HasLoadBalancerServiceAsync()
    {
        try { await Session.EndpointAsync("load-balancer", default); return true; }
        catch (OpenStackApiException) { return false; }
    }

    /// <summary>
    /// Everything in the project that belongs to the cluster, whoever made it: tagged or marked resources, server
    /// groups, load balancers (Magnetar's and the cloud-controller-manager's), ports on its networks, volumes of its
    /// CSI driver, its application credential.
    /// </summary>
    public async Task<List<string>> ClusterResourcesAsync(string uuid, bool withLb = true)
    {
        var tag = OpenStackCloudProvider.Tag(uuid);
        var marker = $"magnetar:{uuid}:";
        bool Ours(string? d, List<string>? t) => d?.StartsWith(marker) == true || t?.Contains(tag) == true;
        var found = new List<string>();
        found.AddRange((await Compute.ListServersByTagAsync(tag, default)).Select(s => $"server {s.Name}"));
        found.AddRange((await Compute.ListServerGroupsAsync(default)).Where(g => g.Name.StartsWith($"magnetar-{uuid}")).Select(g => $"server group {g.Name}"));
        var networks = (await Network.ListNetworksAsync("", default)).Where(n => Ours(n.Description, n.Tags)).ToList();
        found.AddRange(networks.Select(n => $"network {n.Name}"));
        foreach (var n in networks)
            found.AddRange((await Network.ListPortsAsync($"network_id={n.Id}", default)).Select(p => $"port {p.Id} ({p.DeviceOwner})"));
        found.AddRange((await Network.ListSubnetsAsync("", default)).Where(n => Ours(n.Description, n.Tags)).Select(n => $"subnet {n.Name}"));
        found.AddRange((await Network.ListRoutersAsync("", default)).Where(n => Ours(n.Description, n.Tags)).Select(n => $"router {n.Name}"));
        found.AddRange((await Network.ListSecurityGroupsAsync("", default)).Where(n => Ours(n.Description, n.Tags)).Select(n => $"security group {n.Name}"));
        found.AddRange((await Network.ListFloatingIpsAsync("", default)).Where(n => Ours(n.Description, n.Tags)).Select(n => $"floating IP {n.FloatingIpAddress}"));
        if (withLb)
            found.AddRange((await Lb.ListLoadBalancersAsync("", default))
                .Where(l => l.Name.Contains(uuid) || l.Tags?.Contains(tag) == true).Select(l => $"load balancer {l.Name}"));
        var csiName = OpenStackCloudProvider.CloudControllerClusterName(uuid);
        found.AddRange((await Volumes.ListVolumesAsync(default))
            .Where(v => v.Metadata?.GetValueOrDefault(BlockStorageClient.CsiClusterKey) == csiName).Select(v => $"volume {v.Name} ({v.Id})"));
        found.AddRange((await Identity.ListApplicationCredentialsAsync(Session.UserId!, $"magnetar-{uuid}", default)).Select(a => $"application credential {a.Name}"));
        return found;
    }
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
    /// <param name="settings">added to (or overriding) the keystone-mode OpenStack settings below</param>
    internal static async Task<(TestHost Host, Dictionary<string, string> Env)> StartAsync(CloudFaults? faults = null,
        Dictionary<string, string?>? settings = null, Action<Microsoft.Extensions.DependencyInjection.IServiceCollection>? services = null)
    {
        var env = OpenStackEnv.Load();
        var all = new Dictionary<string, string?>
        {
            ["Magnetar:Identity:Mode"] = "keystone",
            ["Magnetar:Identity:Keystone:AuthUrl"] = env["KEYSTONE_URL"],
            ["Magnetar:Identity:Keystone:Username"] = env["SERVICE_USER"],
            ["Magnetar:Identity:Keystone:Password"] = env["SERVICE_PASSWORD"],
            ["Magnetar:Identity:Keystone:ProjectName"] = env["SERVICE_PROJECT"],
            ["Magnetar:Cloud:Provider"] = "openstack",
            // Nova's fake driver boots nothing and no test node runs here: servers count when ACTIVE.
            ["Magnetar:Bootstrap:NodeReadiness"] = "cloud",
            ["Magnetar:Conductor:PollIntervalMs"] = "200",
            ["Magnetar:Conductor:LeaseSeconds"] = "120", // a pass over a real cloud takes seconds, not the simulated cloud's milliseconds
            ["Logging:LogLevel:Magnetar"] = "Information",
        };
        foreach (var (k, v) in settings ?? []) all[k] = v;
        var host = await TestHost.StartAsync(Db.Sqlite, settings: all, services: faults is null && services is null ? null : s =>
        {
            faults?.AddTo(s);
            services?.Invoke(s);
        });
        return (host, env);
    }

    internal static async Task<HttpClient> TenantAsync(TestHost host, Dictionary<string, string> env)
    {
        var token = await KeystoneEnv.TokenAsync(env, env["DEMO_USER"], env["DEMO_PASSWORD"], env["DEMO_PROJECT"]);
        var c = host.App.GetTestClient();
        c.DefaultRequestHeaders.Add("X-Auth-Token", token);
        c.DefaultRequestHeaders.Add("OpenStack-API-Version", "container-infra latest");
        return c;
    }

    internal static OpenStackTenantView TenantView(Dictionary<string, string> env)
        => OpenStackTenantView.Create(env, env["DEMO_USER"], env["DEMO_PASSWORD"], env["DEMO_PROJECT"]);

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

    /// <summary>The admin CLI, for what a cloud operator sets up (projects, users, quotas).</summary>
    private static async Task<CommandResult> AdminCli(string home, params string[] args)
    {
        var r = await OpenStackCli.ExecAsync("openstack", home, OpenStackCli.ReadOpenrc(OpenStackEnv.Sibling("openrc-admin")), args);
        Assert.True(r.ExitCode == 0, $"openstack {string.Join(' ', args)}: {r.Stderr}");
        return r;
    }

    [OpenStackFact]
    public async Task Quota_exceeded_and_a_missing_image_give_precise_reasons_and_the_failed_cluster_still_deletes_cleanly()
    {
        var (host, env) = await StartAsync();
        await using var _ = host;
        var home = Directory.CreateTempSubdirectory("magnetar-os-admin-").FullName;
        // A project of its own, as a cloud operator would make it, with room for 2 servers only.
        var project = "mgq-" + Guid.NewGuid().ToString("N")[..8];
        var password = Guid.NewGuid().ToString("N");
        await AdminCli(home, "project", "create", "--domain", "default", project);
        try
        {
            await AdminCli(home, "user", "create", "--domain", "default", "--project", project, "--password", password, project);
            await AdminCli(home, "role", "add", "--project", project, "--user", project, "member");
            await AdminCli(home, "role", "add", "--project", project, "--user", project, "load-balancer_member");
            await AdminCli(home, "quota", "set", "--instances", "2", project);

            var token = await KeystoneEnv.TokenAsync(env, project, password, project);
            var c = host.App.GetTestClient();
            c.DefaultRequestHeaders.Add("X-Auth-Token", token);
            c.DefaultRequestHeaders.Add("OpenStack-API-Version", "container-infra latest");
            var view = OpenStackTenantView.Create(env, project, password, project);

            // Missing image: the tenant's own image, referenced by a template, then deleted: cluster create is refused
            // with Magnum's message, before anything is made.
            var tenantCli = new Dictionary<string, string>(OpenStackCli.ReadOpenrc(OpenStackEnv.Sibling("openrc-demo")))
            { ["OS_USERNAME"] = project, ["OS_PASSWORD"] = password, ["OS_PROJECT_NAME"] = project };
            var imageName = project + "-img";
            var image = await OpenStackCli.ExecAsync("openstack", home, tenantCli, ["image", "create", "--disk-format", "raw", "--container-format", "bare",
                "--property", "os_distro=fedora-coreos", "--file", "/dev/null", imageName, "-f", "json"]);
            Assert.True(image.ExitCode == 0, image.Stderr);
            var template = await c.PostJson("/v1/clustertemplates", $$"""
                {"name": "{{project}}", "image_id": "{{imageName}}", "external_network_id": "public", "coe": "kubernetes",
                 "flavor_id": "m1.tiny", "master_flavor_id": "m1.tiny", "network_driver": "calico", "master_lb_enabled": false, "floating_ip_enabled": false}
                """).ExpectAsync(201);
            var deleted = await OpenStackCli.ExecAsync("openstack", home, tenantCli, ["image", "delete", imageName]);
            Assert.True(deleted.ExitCode == 0, deleted.Stderr);
            var refused = await c.PostJson("/v1/clusters", $$"""{"name": "noimage", "cluster_template_id": "{{template["uuid"]}}", "node_count": 1}""").ExpectAsync(400);
            Assert.Equal($"Image {imageName} could not be found.", refused.ErrorDetail());

            // Quota: 1 master + 2 workers against a limit of 2 instances.
            var ok = await c.PostJson("/v1/clustertemplates", $$"""
                {"name": "{{project}}-ok", "image_id": "fedora-coreos-40", "external_network_id": "public", "coe": "kubernetes",
                 "flavor_id": "m1.tiny", "master_flavor_id": "m1.tiny", "network_driver": "calico", "master_lb_enabled": false, "floating_ip_enabled": false}
                """).ExpectAsync(201);
            // A flavor Nova does not have, named at cluster create: refused before anything is made, as Magnum does.
            var noFlavor = await c.PostJson("/v1/clusters", $$"""{"name": "noflavor", "cluster_template_id": "{{ok["uuid"]}}", "node_count": 1, "flavor_id": "no-such-flavor"}""").ExpectAsync(400);
            Assert.Contains("no-such-flavor", noFlavor.ErrorDetail());
            var created = await c.PostJson("/v1/clusters", $$"""{"name": "overquota", "cluster_template_id": "{{ok["uuid"]}}", "node_count": 2}""").ExpectAsync(202);
            var uuid = (string)created["uuid"]!;
            var deadline = DateTime.UtcNow.AddMinutes(4);
            JsonNode cluster;
            while (true)
            {
                cluster = await c.GetAsync($"/v1/clusters/{uuid}").ExpectAsync(200);
                if ((string?)cluster["status"] != "CREATE_IN_PROGRESS" || DateTime.UtcNow > deadline) break;
                await Task.Delay(1000);
            }
            Assert.Equal("CREATE_FAILED", (string?)cluster["status"]);
            var reason = (string)cluster["status_reason"]!;
            Assert.Contains("nova", reason);
            Assert.Contains("Quota exceeded for instances", reason); // Nova's own words
            Assert.Contains("overquota-default-", reason);           // which server

            // A failed cluster deletes like any other, and leaves nothing.
            await c.DeleteAsync($"/v1/clusters/{uuid}");
            deadline = DateTime.UtcNow.AddMinutes(3);
            while (DateTime.UtcNow < deadline && (await c.GetAsync($"/v1/clusters/{uuid}")).StatusCode != HttpStatusCode.NotFound)
                await Task.Delay(1000);
            Assert.Equal(HttpStatusCode.NotFound, (await c.GetAsync($"/v1/clusters/{uuid}")).StatusCode);
            Assert.Empty(await view.ClusterResourcesAsync(uuid));
        }
        finally
        {
            await OpenStackCli.ExecAsync("openstack", home, OpenStackCli.ReadOpenrc(OpenStackEnv.Sibling("openrc-admin")), ["user", "delete", "--domain", "default", project]);
            await OpenStackCli.ExecAsync("openstack", home, OpenStackCli.ReadOpenrc(OpenStackEnv.Sibling("openrc-admin")), ["project", "delete", "--domain", "default", project]);
            try { Directory.Delete(home, true); } catch { }
        }
    }

    [OpenStackFact]
    public async Task A_server_nova_cannot_place_fails_the_cluster_naming_server_nodegroup_and_novas_fault()
    {
        var (host, env) = await StartAsync();
        await using var _ = host;
        var home = Directory.CreateTempSubdirectory("magnetar-os-admin-").FullName;
        // A public flavor no compute host can hold (the fake driver reports 600 000 GB of disk; disk has no quota): Nova's scheduler
        // answers NoValidHost and the server goes to ERROR after it was accepted.
        var flavor = "mg-huge-" + Guid.NewGuid().ToString("N")[..6];
        await AdminCli(home, "flavor", "create", "--public", "--ram", "512", "--disk", "700000", "--vcpus", "1", flavor);
        try
        {
            var c = await TenantAsync(host, env);
            var view = TenantView(env);
            var template = await c.PostJson("/v1/clustertemplates", $$"""
                {"name": "{{flavor}}", "image_id": "fedora-coreos-40", "external_network_id": "public", "coe": "kubernetes",
                 "flavor_id": "{{flavor}}", "master_flavor_id": "m1.tiny", "network_driver": "calico", "master_lb_enabled": false, "floating_ip_enabled": false}
                """).ExpectAsync(201);
            var created = await c.PostJson("/v1/clusters", $$"""{"name": "noroom", "cluster_template_id": "{{template["uuid"]}}", "node_count": 1}""").ExpectAsync(202);
            var uuid = (string)created["uuid"]!;
            var deadline = DateTime.UtcNow.AddMinutes(4);
            JsonNode cluster;
            while (true)
            {
                cluster = await c.GetAsync($"/v1/clusters/{uuid}").ExpectAsync(200);
                if ((string?)cluster["status"] != "CREATE_IN_PROGRESS" || DateTime.UtcNow > deadline) break;
                await Task.Delay(1000);
            }
            Assert.Equal("CREATE_FAILED", (string?)cluster["status"]);
            var reason = (string)cluster["status_reason"]!;
            Assert.StartsWith("nova: server noroom-default-worker-0 (id ", reason);
            Assert.Contains("nodegroup default-worker) went to ERROR: ", reason);
            Assert.Contains("No valid host was found", reason); // Nova's own fault message
            var worker = (await c.GetAsync($"/v1/clusters/{uuid}/nodegroups/default-worker").ExpectAsync(200));
            Assert.Equal("CREATE_FAILED", (string?)worker["status"]);

            await c.DeleteAsync($"/v1/clusters/{uuid}");
            deadline = DateTime.UtcNow.AddMinutes(3);
            while (DateTime.UtcNow < deadline && (await c.GetAsync($"/v1/clusters/{uuid}")).StatusCode != HttpStatusCode.NotFound)
                await Task.Delay(1000);
            Assert.Equal(HttpStatusCode.NotFound, (await c.GetAsync($"/v1/clusters/{uuid}")).StatusCode);
            Assert.Empty(await view.ClusterResourcesAsync(uuid));
            await c.DeleteAsync($"/v1/clustertemplates/{template["uuid"]}");
        }
        finally
        {
            await OpenStackCli.ExecAsync("openstack", home, OpenStackCli.ReadOpenrc(OpenStackEnv.Sibling("openrc-admin")), ["flavor", "delete", flavor]);
            try { Directory.Delete(home, true); } catch { }
        }
    }

    /// <summary>Every request the OpenStack driver makes, as "METHOD port path" (no query).</summary>
    private sealed class CallRecorder(System.Collections.Concurrent.ConcurrentQueue<string> calls) : DelegatingHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
        {
            calls.Enqueue($"{request.Method} {request.RequestUri!.Port} {request.RequestUri.AbsolutePath}");
            return base.SendAsync(request, ct);
        }
    }

    /// <summary>
    /// A regression guard on the OpenStack calls of a create (issue #15: 60 before the driver remembered what a cluster
    /// owns): the smallest cluster, as bench/openstack.sh makes it, counted from the POST to CREATE_COMPLETE. How many
    /// times the servers are polled depends on how fast Nova makes them, so the polls are counted apart; after the pass
    /// that requested the servers nothing else is looked up again.
    /// </summary>
    [OpenStackFact]
    public async Task A_create_makes_few_openstack_calls_and_later_passes_only_poll_the_servers()
    {
        var calls = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var (host, env) = await StartAsync(services: s => s.AddHttpClient(OpenStackCloudProvider.HttpClientName)
            .AddHttpMessageHandler(() => new CallRecorder(calls)));
        await using var _ = host;
        var c = await TenantAsync(host, env);
        var template = await c.PostJson("/v1/clustertemplates", """
            {"name": "calls", "image_id": "fedora-coreos-40", "external_network_id": "public", "coe": "kubernetes", "flavor_id": "m1.tiny",
             "master_flavor_id": "m1.tiny", "network_driver": "calico", "master_lb_enabled": false, "floating_ip_enabled": false}
            """).ExpectAsync(201);
        var view = TenantView(env);
        string? uuid = null;
        try
        {
            calls.Clear();
            var created = await c.PostJson("/v1/clusters", $$"""{"name": "calls", "cluster_template_id": "{{template["uuid"]}}", "master_count": 1, "node_count": 1}""").ExpectAsync(202);
            uuid = (string)created["uuid"]!;
            await WaitForStatusAsync(c, uuid, "CREATE_COMPLETE", TimeSpan.FromMinutes(3));
            var made = calls.ToList();
            var breakdown = string.Join("\n", made.GroupBy(x => x).Select(g => $"{g.Count()} × {g.Key}"));
            bool Poll(string call) => call.StartsWith("GET ") && call.EndsWith("/servers/detail");
            var others = made.Count(x => !Poll(x));
            // 21 on the all-in-one when this was written: the POST's reference checks 3 and Keystone 2 (the credential and
            // its first token), then the first pass only creates: network, subnet, router (each + its tags), the router
            // interface, both security groups (one request + 2 tags), their rules (2), 2 server groups and 2 servers.
            // Two more are allowed for a Keystone token renewal.
            Assert.True(others <= 23, $"{others} OpenStack calls besides the server polls:\n{breakdown}");
            // The first pass looks nothing up: the create's check found the image, flavor and external network a moment
            // before, and nothing of a cluster no pass has provisioned yet can exist (ClusterSpec.FirstPass).
            Assert.True(made.Count(x => x.StartsWith("GET ") && !Poll(x)) <= 3, $"lookups besides the create's 3 reference checks:\n{breakdown}");
            Assert.Equal(2, made.Count(x => x.StartsWith("POST ") && x.EndsWith("/servers")));
            // After the servers were requested: only the router (made and attached meanwhile) and the server polls.
            var lastCreate = made.FindLastIndex(x => x.StartsWith("POST ") && x.EndsWith("/servers"));
            Assert.All(made.Skip(lastCreate + 1), x => Assert.True(Poll(x) || x.Contains("/v2.0/routers"), $"{x} after the servers were requested:\n{breakdown}"));
        }
        finally
        {
            if (uuid is not null)
            {
                await c.DeleteAsync($"/v1/clusters/{uuid}");
                var deadline = DateTime.UtcNow.AddMinutes(3);
                while (DateTime.UtcNow < deadline && (await c.GetAsync($"/v1/clusters/{uuid}")).StatusCode != HttpStatusCode.NotFound)
                    await Task.Delay(1000);
            }
            await c.DeleteAsync($"/v1/clustertemplates/{template["uuid"]}");
        }
        Assert.Empty(await view.ClusterResourcesAsync(uuid!, false));
    }
}
