using System.Text;
using System.Text.Json.Nodes;
using Magnetar.Cloud.OpenStack;

namespace Magnetar.Tests;

/// <summary>
/// The tenant's whole experience on a real OpenStack: Magnetar runs as its own process in keystone mode with the
/// OpenStack driver on 127.0.0.1:9511 (the all-in-one's catalog sends <c>container-infra</c> there), and the unmodified
/// <c>openstack coe</c> CLI is driven with the all-in-one's openrc-demo. Magnetar is killed (SIGKILL) mid-create and
/// mid-delete. What exists is checked through the OpenStack APIs with the tenant's (and, for user-data, the admin's)
/// own credentials — never by asking Magnetar.
/// </summary>
[Trait("Category", "Integration")]
public sealed class OpenStackCliIntegrationTests : IAsyncLifetime
{
    private const int MagnumPort = 9511;
    private readonly string _home = Directory.CreateTempSubdirectory("magnetar-os-cli-home-").FullName;
    private readonly string _data = Directory.CreateTempSubdirectory("magnetar-os-cli-data-").FullName;
    private Dictionary<string, string> _env = null!;
    private Dictionary<string, string> _demo = null!;
    private MagnetarProcess _server = null!;

    public async Task InitializeAsync()
    {
        if (OpenStackEnv.File.SkipReason is not null) return;
        _env = OpenStackEnv.Load();
        _demo = OpenStackCli.ReadOpenrc(OpenStackEnv.Sibling("openrc-demo"));
        Assert.True(MagnetarProcess.PortIsFree(MagnumPort), $"127.0.0.1:{MagnumPort} is in use: the all-in-one's catalog points container-infra there");
        _server = new MagnetarProcess($"http://127.0.0.1:{MagnumPort}", _data,
            "--Magnetar:Identity:Mode=keystone",
            $"--Magnetar:Identity:Keystone:AuthUrl={_env["KEYSTONE_URL"]}",
            $"--Magnetar:Identity:Keystone:Username={_env["SERVICE_USER"]}",
            $"--Magnetar:Identity:Keystone:Password={_env["SERVICE_PASSWORD"]}",
            $"--Magnetar:Identity:Keystone:ProjectName={_env["SERVICE_PROJECT"]}",
            "--Magnetar:Cloud:Provider=openstack",
            // Nova's fake driver boots nothing and no test node runs here: servers count when ACTIVE.
            "--Magnetar:Bootstrap:NodeReadiness=cloud",
            "--Magnetar:Cloud:OpenStack:CsiVolumesOnDelete=Delete",
            "--Magnetar:Conductor:PollIntervalMs=200",
            // A crashed replica's lease must expire for the restarted one to take over: short here, 60 s by default.
            "--Magnetar:Conductor:LeaseSeconds=20");
        await _server.StartAsync();
    }

    public async Task DisposeAsync()
    {
        if (_server is not null) await _server.DisposeAsync();
        try { Directory.Delete(_home, true); Directory.Delete(_data, true); } catch { }
    }

    private Task<CommandResult> Run(params string[] args) => OpenStackCli.ExecAsync("openstack", _home, _demo, args);

    private async Task<JsonNode> Ok(params string[] args)
    {
        var r = await Run(args);
        if (r.ExitCode != 0)
            throw new Xunit.Sdk.XunitException($"openstack {string.Join(' ', args)} failed ({r.ExitCode}): {r.Stderr}\n{r.Stdout}\n--- server log (tail) ---\n{Tail(_server.Log)}");
        return OpenStackCli.Output(r, args);
    }

    private static string Tail(string log) => log.Length > 6000 ? log[^6000..] : log;

    private async Task<JsonNode> WaitFor(string cluster, string status, int seconds)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        JsonNode? last = null;
        while (DateTime.UtcNow < deadline)
        {
            last = await Ok("coe", "cluster", "show", cluster, "-f", "json");
            var s = last["status"]!.GetValue<string>();
            if (s == status) return last;
            if (s.EndsWith("_FAILED")) throw new Xunit.Sdk.XunitException($"cluster {cluster} {s}: {last["status_reason"]}\n--- server log (tail) ---\n{Tail(_server.Log)}");
            await Task.Delay(1000);
        }
        throw new Xunit.Sdk.XunitException($"cluster {cluster} did not reach {status} in {seconds} s: {last?["status"]} — {last?["status_reason"]}\n{Tail(_server.Log)}");
    }

    private async Task WaitUntil(Func<Task<bool>> condition, int seconds, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"timed out waiting for {what}\n--- server log (tail) ---\n{Tail(_server.Log)}");
            await Task.Delay(250);
        }
    }

    [OpenStackFact]
    public async Task The_openstack_coe_cli_runs_an_ha_cluster_through_crashes_resize_nodegroups_and_delete_and_nothing_is_left()
    {
        var demo = OpenStackTenantView.Create(_env, _env["DEMO_USER"], _env["DEMO_PASSWORD"], _env["DEMO_PROJECT"]);
        var admin = OpenStackTenantView.Create(_env, _env["ADMIN_USER"], _env["ADMIN_PASSWORD"], _env["ADMIN_PROJECT"]);
        var name = "ha" + Guid.NewGuid().ToString("N")[..6];
        await Ok("coe", "cluster", "template", "create", name, "--coe", "kubernetes", "--image", "fedora-coreos-40",
            "--external-network", "public", "--flavor", "m1.small", "--master-flavor", "m1.medium", "--network-driver", "calico",
            "--master-lb-enabled", "--floating-ip-enabled", "--labels", "kube_tag=v1.31.1,boot_volume_size=1", "-f", "json");

        // Create 3 masters + 1 worker; kill Magnetar as soon as the first server exists, start it again.
        await Ok("coe", "cluster", "create", name, "--cluster-template", name, "--master-count", "3", "--node-count", "1");
        var uuid = (await Ok("coe", "cluster", "show", name, "-f", "json"))["uuid"]!.GetValue<string>();
        // And beside it, through the same crash, a 1-master/2-worker cluster.
        var small = name + "-s";
        await Ok("coe", "cluster", "create", small, "--cluster-template", name, "--master-count", "1", "--node-count", "2");
        var smallUuid = (await Ok("coe", "cluster", "show", small, "-f", "json"))["uuid"]!.GetValue<string>();
        var tag = OpenStackCloudProvider.Tag(uuid);
        var bootVolumes = new List<string>();
        try
        {
            await WaitUntil(async () => (await demo.Compute.ListServersByTagAsync(tag, default)).Count > 0, 240, "the first server");
            await _server.KillAsync();
            await _server.StartAsync();
            var cluster = await WaitFor(name, "CREATE_COMPLETE", 420);

            // The small cluster: 1 master and 2 workers of the template's flavors, its load balancer in front of the master.
            await WaitFor(small, "CREATE_COMPLETE", 300);
            var smallServers = await demo.Compute.ListServersByTagAsync(OpenStackCloudProvider.Tag(smallUuid), default);
            Assert.Equal([$"{small}-default-master-0", $"{small}-default-worker-0", $"{small}-default-worker-1"], smallServers.Select(s => s.Name).Order());
            Assert.Equal(["m1.medium", "m1.small", "m1.small"], smallServers.OrderBy(s => s.Name).Select(s => s.Flavor?.OriginalName));
            var smallLb = (await demo.Lb.ListLoadBalancersAsync($"name={OpenStackCloudProvider.LoadBalancerName(smallUuid)}", default)).Single();
            Assert.Equal(smallServers.Single(s => s.Name.Contains("master")).FixedAddress,
                Assert.Single(await demo.Lb.ListMembersAsync(smallLb.Pools!.Single().Id, default)).Address);
            // A port the tenant made by hand on the cluster's network, holding the cluster's security group: the delete
            // must remove it rather than fail on the group with Neutron's 409 "in use".
            var smallNetwork = (await demo.Network.ListNetworksAsync("", default)).Single(n => n.Tags?.Contains(OpenStackCloudProvider.Tag(smallUuid)) == true);
            var smallGroup = (await demo.Network.ListSecurityGroupsAsync("", default)).First(g => g.Tags?.Contains(OpenStackCloudProvider.Tag(smallUuid)) == true);
            var stray = await OpenStackCli.ExecAsync("openstack", _home, OpenStackCli.ReadOpenrc(OpenStackEnv.Sibling("openrc-demo")),
                ["port", "create", "--network", smallNetwork.Id, "--security-group", smallGroup.Id, "stray-port", "-f", "json"]);
            Assert.True(stray.ExitCode == 0, stray.Stderr);
            await Ok("coe", "cluster", "delete", small);

            // No duplicates after the crash, and every resource as asked.
            var servers = await demo.Compute.ListServersByTagAsync(tag, default);
            Assert.Equal([$"{name}-default-master-0", $"{name}-default-master-1", $"{name}-default-master-2", $"{name}-default-worker-0"],
                servers.Select(s => s.Name).Order());
            Assert.All(servers, s => Assert.Equal("ACTIVE", s.Status));
            Assert.All(servers.Where(s => s.Name.Contains("master")), s => Assert.Equal("m1.medium", s.Flavor?.OriginalName));
            Assert.Equal("m1.small", servers.Single(s => s.Name.Contains("worker")).Flavor?.OriginalName);
            Assert.All(servers, s => Assert.Single(s.VolumesAttached!)); // boot_volume_size: booted from a Cinder volume
            bootVolumes.AddRange(servers.SelectMany(s => s.VolumesAttached!).Select(v => v.Id));
            foreach (var s in servers)
            {
                var userData = Encoding.UTF8.GetString(Convert.FromBase64String((await admin.Compute.FindServerAsync(s.Id, default))!.UserData!));
                Assert.StartsWith("#cloud-config", userData);
                Assert.Contains(uuid, userData);
                Assert.DoesNotContain("PRIVATE KEY", userData);
            }
            var groups = (await demo.Compute.ListServerGroupsAsync(default)).Where(g => g.Name.StartsWith($"magnetar-{uuid}")).ToList();
            var masterGroup = Assert.Single(groups, g => g.Policy == "anti-affinity");
            Assert.Equal(servers.Where(s => s.Name.Contains("master")).Select(s => s.Id).Order(), masterGroup.Members!.Order());
            var lb = (await demo.Lb.ListLoadBalancersAsync($"name={OpenStackCloudProvider.LoadBalancerName(uuid)}", default)).Single();
            Assert.Equal("ACTIVE", lb.ProvisioningStatus);
            var members = await demo.Lb.ListMembersAsync(lb.Pools!.Single().Id, default);
            Assert.Equal(servers.Where(s => s.Name.Contains("master")).Select(s => s.FixedAddress).Order(), members.Select(m => m.Address).Order());
            var groupsByRole = (await demo.Network.ListSecurityGroupsAsync("", default)).Where(g => g.Tags?.Contains(tag) == true).ToList();
            Assert.Equal(2, groupsByRole.Count);
            Assert.Contains(groupsByRole.SelectMany(g => g.SecurityGroupRules!), r => r.Direction == "ingress" && r.Protocol == "tcp" && r.PortRangeMin == 6443 && r.PortRangeMax == 6443);
            Assert.Contains(groupsByRole.SelectMany(g => g.SecurityGroupRules!), r => r.Direction == "ingress" && r.Protocol == "tcp" && r.PortRangeMin == 30000 && r.PortRangeMax == 32767);
            var network = (await demo.Network.ListNetworksAsync("", default)).Single(n => n.Tags?.Contains(tag) == true);
            var computePorts = (await demo.Network.ListPortsAsync($"network_id={network.Id}", default)).Where(p => p.DeviceOwner.StartsWith("compute:")).ToList();
            Assert.Equal(servers.Select(s => s.Id).Order(), computePorts.Select(p => p.DeviceId).Order()); // one port per server
            var fips = (await demo.Network.ListFloatingIpsAsync("", default)).Where(f => f.Tags?.Contains(tag) == true || f.Description?.StartsWith($"magnetar:{uuid}:") == true).ToList();
            Assert.Equal(5, fips.Count); // every node, as Magnum, + the API VIP
            Assert.Contains(fips, f => f.PortId == lb.VipPortId && cluster["api_address"]!.GetValue<string>() == $"https://{f.FloatingIpAddress}:6443");
            Assert.Single(await demo.Identity.ListApplicationCredentialsAsync(demo.Session.UserId!, $"magnetar-{uuid}", default));

            // The kubeconfig points at the API load balancer's floating IP.
            var dir = Directory.CreateTempSubdirectory("kubeconfig-").FullName;
            await Ok("coe", "cluster", "config", name, "--dir", dir);
            var kc = (await OpenStackCli.ExecAsync("kubectl", _home, null, ["--kubeconfig", Path.Combine(dir, "config"), "config", "view", "--raw", "-o", "json"])).Json;
            Assert.Equal(cluster["api_address"]!.GetValue<string>(), kc["clusters"]![0]!["cluster"]!["server"]!.GetValue<string>());

            // Resize up, add a nodegroup, delete it, resize down naming the node to remove.
            await Ok("coe", "cluster", "resize", name, "2");
            await WaitFor(name, "UPDATE_COMPLETE", 300);
            await Ok("coe", "nodegroup", "create", name, "extra", "--node-count", "1", "--flavor", "m1.tiny");
            await WaitFor(name, "UPDATE_COMPLETE", 300);
            servers = await demo.Compute.ListServersByTagAsync(tag, default);
            Assert.Equal(6, servers.Count);
            Assert.Equal("m1.tiny", servers.Single(s => s.Name == $"{name}-extra-0").Flavor?.OriginalName);
            Assert.Contains(await demo.Compute.ListServerGroupsAsync(default), g => g.Name == OpenStackCloudProvider.ServerGroupName(uuid, "extra"));
            await Ok("coe", "nodegroup", "delete", name, "extra");
            await WaitUntil(async () => (await Ok("coe", "nodegroup", "list", name, "-f", "json")).AsArray().Count == 2, 300, "nodegroup extra to go");
            await WaitFor(name, "UPDATE_COMPLETE", 60);
            Assert.DoesNotContain(await demo.Compute.ListServersByTagAsync(tag, default), s => s.Name.StartsWith($"{name}-extra-"));
            Assert.DoesNotContain(await demo.Compute.ListServerGroupsAsync(default), g => g.Name == OpenStackCloudProvider.ServerGroupName(uuid, "extra"));
            var victim = (await demo.Compute.ListServersByTagAsync(tag, default)).Single(s => s.Name == $"{name}-default-worker-0");
            await Ok("coe", "cluster", "resize", name, "1", "--nodes-to-remove", victim.Id);
            await WaitFor(name, "UPDATE_COMPLETE", 300);
            servers = await demo.Compute.ListServersByTagAsync(tag, default);
            Assert.Equal([$"{name}-default-master-0", $"{name}-default-master-1", $"{name}-default-master-2", $"{name}-default-worker-1"], servers.Select(s => s.Name).Order());
            bootVolumes.AddRange(servers.SelectMany(s => s.VolumesAttached!).Select(v => v.Id));

            // What the cluster's own integrations leave behind (made here by the tenant, as CCM and CSI would): a
            // LoadBalancer Service's Octavia load balancer on the cluster subnet and a PersistentVolume's Cinder volume.
            var subnet = (await demo.Network.ListSubnetsAsync($"network_id={network.Id}", default)).Single();
            var ccmName = OpenStackCloudProvider.CloudControllerClusterName(uuid);
            await demo.Lb.CreateLoadBalancerAsync($"kube_service_{ccmName}_default_web", "Kubernetes external service default/web", subnet.Id, [], default);
            await demo.Volumes.CreateVolumeAsync($"pvc-{Guid.NewGuid():N}"[..20], 1, new Dictionary<string, string> { [BlockStorageClient.CsiClusterKey] = ccmName }, default);
            // And a node deleted by hand out of band (its 404 during delete counts as gone).
            await demo.Compute.DeleteServerAsync(servers.Single(s => s.Name.Contains("worker")).Id, default);
        }
        finally
        {
            // Delete; kill Magnetar once deletion is under way; start it again; the cluster must go and take everything with it.
            await Run("coe", "cluster", "delete", name);
            try
            {
                await WaitUntil(async () => (await demo.Compute.ListServersByTagAsync(tag, default)).All(s => s.TaskState == "deleting") , 120, "server deletes to start");
            }
            finally
            {
                await _server.KillAsync();
                await _server.StartAsync();
            }
            await WaitUntil(async () => !(await Ok("coe", "cluster", "list", "-f", "json")).AsArray().Any(c => c!["uuid"]!.GetValue<string>() == uuid), 420, "the cluster to be deleted");
        }
        Assert.Empty(await demo.ClusterResourcesAsync(uuid));
        await WaitUntil(async () => !(await Ok("coe", "cluster", "list", "-f", "json")).AsArray().Any(c => c!["uuid"]!.GetValue<string>() == smallUuid), 300, "the small cluster to be deleted");
        Assert.Empty(await demo.ClusterResourcesAsync(smallUuid));
        // Boot volumes go with their servers (delete_on_termination), which Cinder finishes asynchronously.
        var leaked = new List<string>();
        await WaitUntil(async () =>
        {
            leaked.Clear();
            foreach (var id in bootVolumes.Distinct())
                if (await demo.Volumes.FindVolumeAsync(id, default) is { } v) leaked.Add($"boot volume {v.Id} ({v.Status})");
            return leaked.Count == 0 || leaked.Any(l => !l.EndsWith("(deleting)"));
        }, 60, "boot volumes to go");
        Assert.Empty(leaked);
        await Ok("coe", "cluster", "template", "delete", name);
    }
}
