using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Magnetar.Bootstrap.Pki;
using Microsoft.Data.Sqlite;

namespace Magnetar.Tests;

/// <summary>
/// A rolling upgrade, health and auto-healing on a cluster whose nodes are <b>test nodes</b> (the real node script run
/// from the user-data each server was created with; kubeadm and the kubelet are stand-ins whose version is the one the
/// user-data asks for) and whose API server is a <b>stand-in</b> (<see cref="KubernetesApiStandIn"/>: Node objects, pods,
/// the Eviction API with a PodDisruptionBudget, /readyz), reached by Magnetar with its own client certificate of the
/// cluster CA. A "fleet" plays the cloud's VMs: every new server boots, bootstraps, registers its Node and runs its
/// agent every second; retired servers stop. 1 master + 3 workers go from v1.31.1 to v1.32.1 with max_batch_size 2.
/// </summary>
public sealed class UpgradeTests : IAsyncLifetime
{
    private const string Old = "v1.31.1", New = "v1.32.1";
    private readonly string _dir = Directory.CreateTempSubdirectory("upgrade-").FullName;
    private readonly int _apiPort = MagnetarProcess.FreePort();
    private MagnetarProcess? _server;
    private string _api = "", _stubs = "";
    private HttpClient _http = new();
    private TestFleet? _fleet;
    private readonly MagnumSession _magnum;
    private readonly ServerDatabase _db;

    public UpgradeTests()
    {
        // On a timeout: the cluster's events, then the server's log.
        _magnum = new MagnumSession(() => _http, () => "events:\n" + string.Join("\n", _lastCluster is null ? [] : _db!.Events(_lastCluster).Select(e => e.Reason + ": " + e.Message)) + "\n" + _server!.Log);
        _db = new ServerDatabase(() => _server!.DataDir);
    }

    private string? _lastCluster;

    public async Task InitializeAsync()
    {
        var ca = ClusterPki.CreateNamedAuthority("magnetar-test-ca", "test");
        var tls = ClusterPki.IssueCertificate(ca, "magnetar", [], CertificatePurpose.Server,
            new SubjectAlternativeNames(["localhost"], [IPAddress.Loopback]), TimeSpan.FromDays(1));
        var caFile = Path.Combine(_dir, "ca.pem");
        File.WriteAllText(caFile, ca.CertificatePem);
        File.WriteAllText(Path.Combine(_dir, "tls.crt"), tls.CertificatePem);
        File.WriteAllText(Path.Combine(_dir, "tls.key"), tls.PrivateKeyPem);
        _api = $"http://127.0.0.1:{MagnetarProcess.FreePort()}";
        var bootstrap = $"https://127.0.0.1:{MagnetarProcess.FreePort()}";
        var data = Path.Combine(_dir, "data");
        _server = new MagnetarProcess($"{_api};{bootstrap}", data,
            $"--Kestrel:Certificates:Default:Path={_dir}/tls.crt", $"--Kestrel:Certificates:Default:KeyPath={_dir}/tls.key",
            $"--Magnetar:Bootstrap:Url={bootstrap}", $"--Magnetar:Bootstrap:CaFile={caFile}", "--Magnetar:Bootstrap:NodeReadiness=reports",
            "--Magnetar:Bootstrap:NodeReportTimeoutSeconds=120", "--Magnetar:Conductor:LeaseSeconds=2", $"--Magnetar:PublicUrl={_api}",
            "--Magnetar:Cloud:Simulated:StepDelayMs=100", "--Magnetar:Conductor:PollIntervalMs=100",
            "--Magnetar:Conductor:ReachClusterApis=true", $"--Magnetar:Conductor:ClusterApiUrlOverride=https://127.0.0.1:{_apiPort}",
            "--Magnetar:Conductor:DrainTimeoutSeconds=6",
            "--Magnetar:Health:IntervalSeconds=1", "--Magnetar:Health:HeartbeatTimeoutSeconds=20", "--Magnetar:Health:HealIntervalSeconds=1");
        await _server.StartAsync(() => File.Exists(Path.Combine(data, "openrc-demo")));
        _http.Dispose();
        _http = await _server.ClientAsync();
        foreach (var (name, tag) in new[] { ("k8s-1.30", "v1.30.5"), ("k8s-1.31", Old), ("k8s-1.32", New), ("k8s-1.33", "v1.33.0") })
            await Api(HttpMethod.Post, "/v1/clustertemplates", new JsonObject
            {
                ["name"] = name, ["coe"] = "kubernetes", ["image_id"] = "fedora-coreos-40", ["external_network_id"] = "public",
                ["flavor_id"] = "m1.small", ["master_flavor_id"] = "m1.medium", ["network_driver"] = "calico", ["master_lb_enabled"] = true,
                ["labels"] = new JsonObject { ["kube_tag"] = tag },
            }, HttpStatusCode.Created);
        _stubs = TestFleet.WriteStubs(Path.Combine(_dir, "stubs"));
    }

    public async Task DisposeAsync()
    {
        if (_fleet is not null) await _fleet.DisposeAsync();
        if (_server is not null) await _server.DisposeAsync();
        _http.Dispose();
        try { Directory.Delete(_dir, true); } catch { }
    }

    [Fact]
    public async Task Rolling_upgrade_replaces_every_node_and_health_and_healing_follow_the_nodes()
    {
        var c = (await Api(HttpMethod.Post, "/v1/clusters", new JsonObject
        {
            ["name"] = "up", ["cluster_template_id"] = "k8s-1.31", ["master_count"] = 1, ["node_count"] = 3,
            ["labels"] = new JsonObject { ["kube_tag"] = Old, ["auto_healing_enabled"] = "true", ["auto_healing_unhealthy_seconds"] = "3" },
        }, HttpStatusCode.Accepted))["uuid"]!.GetValue<string>();
        _lastCluster = c;
        _fleet = new TestFleet(_dir, _stubs, _apiPort, _db, c);
        await WaitFor(c, x => x["status"]!.GetValue<string>() == "CREATE_COMPLETE", 90);
        var api = await _fleet.StandInAsync();
        var healthy = await WaitFor(c, x => x["health_status"]?.GetValue<string>() == "HEALTHY" && x["health_status_reason"]?["api"]?.GetValue<string>() == "ok");
        Assert.Equal(4, healthy["health_status_reason"]!.AsObject().Count(kv => kv.Key.EndsWith(".Ready") && kv.Value!.GetValue<string>() == "True"));
        var original = _fleet.Live();
        Assert.Equal(4, original.Count);
        Assert.All(original, n => Assert.Equal(Old, _fleet.VersionOf(n)));

        // ---- refused before anything changes: a downgrade, a skipped minor version.
        var refused = await Api(HttpMethod.Post, $"/v1/clusters/{c}/actions/upgrade", new JsonObject { ["cluster_template"] = "k8s-1.30" }, HttpStatusCode.BadRequest);
        Assert.Contains("downgrade", Error(refused));
        refused = await Api(HttpMethod.Post, $"/v1/clusters/{c}/actions/upgrade", new JsonObject { ["cluster_template"] = "k8s-1.33" }, HttpStatusCode.BadRequest);
        Assert.Contains("skips v1.32", Error(refused));
        Assert.Equal("CREATE_COMPLETE", (await Get(c))["status"]!.GetValue<string>());

        // Workloads: a pod guarded by a PodDisruptionBudget on worker 0, a DaemonSet pod (stays), a plain pod on worker 1.
        api.AddPod("default", "web-0", "up-default-worker-0", blockedByPdb: true);
        api.AddPod("kube-system", "calico-node-w0", "up-default-worker-0", ownerKind: "DaemonSet");
        api.AddPod("default", "web-1", "up-default-worker-1");

        // ---- the upgrade: control plane first (a new master joins etcd before the old one leaves it), then workers two at a time.
        await Api(HttpMethod.Post, $"/v1/clusters/{c}/actions/upgrade", new JsonObject { ["cluster_template"] = "k8s-1.32", ["max_batch_size"] = 2 }, HttpStatusCode.Accepted);
        refused = await Api(HttpMethod.Post, $"/v1/clusters/{c}/actions/upgrade", new JsonObject { ["cluster_template"] = "k8s-1.32" }, HttpStatusCode.BadRequest);
        Assert.Contains("operation in progress", Error(refused));
        var midway = await WaitFor(c, x => x["status_reason"]?.GetValue<string>()?.Contains("upgrading default-worker") == true, 90);
        // Nothing claims the new version before the nodes run it: the control plane does now, the workers do not yet.
        Assert.Equal(New, midway["coe_version"]!.GetValue<string>());
        Assert.Equal(Old, (await Api(HttpMethod.Get, $"/v1/clusters/{c}/nodegroups/default-worker", null, HttpStatusCode.OK))["version"]!.GetValue<string>());
        Assert.DoesNotContain("up-default-master-0", _fleet.Live());
        Assert.Contains("up-default-master-0", api.DeletedNodes);
        Assert.Contains("kubeadm reset phase remove-etcd-member", File.ReadAllText(Path.Combine(_fleet.Root("up-default-master-0"), "stub.log")));

        // SIGKILL while the workers are drained; the upgrade carries on after the restart.
        await WaitFor(c, x => x["status_reason"]?.GetValue<string>()?.Contains("draining") == true, 90);
        await _server!.KillAsync();
        await _server.StartAsync();

        // The PDB blocks worker 0's drain: the upgrade stops, naming the node and the pod.
        var failed = await WaitFor(c, x => x["status"]!.GetValue<string>() != "UPDATE_IN_PROGRESS", 90);
        Assert.Equal("UPDATE_FAILED", failed["status"]!.GetValue<string>());
        var why = failed["status_reason"]!.GetValue<string>();
        Assert.Contains("up-default-worker-0", why);
        Assert.Contains("default/web-0", why);
        Assert.Contains("disruption budget", why);
        // The control plane is done (coe_version is what it runs); the workers are not.
        Assert.Equal(New, failed["coe_version"]!.GetValue<string>());
        Assert.Equal(Old, (await Api(HttpMethod.Get, $"/v1/clusters/{c}/nodegroups/default-worker", null, HttpStatusCode.OK))["version"]!.GetValue<string>());

        // The PDB is satisfied; asking again resumes where it stopped.
        api.UnblockPod("default", "web-0");
        await Api(HttpMethod.Post, $"/v1/clusters/{c}/actions/upgrade", new JsonObject { ["cluster_template"] = "k8s-1.32", ["max_batch_size"] = 2 }, HttpStatusCode.Accepted);
        var done = await WaitFor(c, x => x["status"]!.GetValue<string>() != "UPDATE_IN_PROGRESS", 120);
        Assert.True(done["status"]!.GetValue<string>() == "UPDATE_COMPLETE", done.ToJsonString());
        Assert.Equal(New, done["coe_version"]!.GetValue<string>());
        foreach (var ng in (await Api(HttpMethod.Get, $"/v1/clusters/{c}/nodegroups", null, HttpStatusCode.OK))["nodegroups"]!.AsArray())
            Assert.Equal(New, (await Api(HttpMethod.Get, $"/v1/clusters/{c}/nodegroups/{ng!["name"]}", null, HttpStatusCode.OK))["version"]!.GetValue<string>());

        // Every node was replaced exactly once by one made for the new version; the old ones are gone from the cloud and the API.
        var live = _fleet.Live();
        Assert.Equal(4, live.Count);
        Assert.All(live, n => Assert.Equal(New, _fleet.VersionOf(n)));
        Assert.Empty(live.Intersect(original));
        Assert.Equal(4, _fleet.Boots.Count(b => b.Version == New)); // no node replaced twice, no extra server
        Assert.Equal(8, _fleet.Boots.Count);
        Assert.Equal(live.Order(), api.Nodes.Select(n => n.Name).Order());
        Assert.All(api.Nodes, n => Assert.Equal(New, n.KubeletVersion));
        // kubeadm-config named the new version before the first new control-plane node booted; kube-proxy follows the control plane.
        Assert.Equal(New, api.KubeadmKubernetesVersion);
        Assert.True(api.KubeadmConfigChangedAt < _fleet.Boots.First(b => b.Version == New).At, "kubeadm-config was updated after a new node booted");
        Assert.Equal($"registry.k8s.io/kube-proxy:{New}", api.KubeProxyImage);
        Assert.True(api.KubeProxyChangedAt > api.KubeadmConfigChangedAt);
        Assert.Contains("default/web-1", api.Evictions);
        Assert.Contains("default/web-0", api.Evictions);
        Assert.DoesNotContain("kube-system/calico-node-w0", api.Evictions);
        // Never fewer than the asked nodes serving: 3 uncordoned, Ready workers and a server for each at every sample.
        Assert.Empty(_fleet.SkewViolations); // no worker of the new version before the control plane runs it
        Assert.True(_fleet.MinServingWorkers >= 3, $"only {_fleet.MinServingWorkers} workers served at one point");
        Assert.True(_fleet.MinWorkerServers >= 3, $"only {_fleet.MinWorkerServers} worker servers at one point");
        // Order: the master was retired before any worker, and each batch of workers only after its successors joined.
        var events = Events(c);
        var retiring = events.Where(e => e.Reason == "NodeRetiring").Select(e => e.Message.Split(' ')[1]).ToList();
        Assert.Equal("up-default-master-0", retiring[0]);
        Assert.Equal(4, retiring.Distinct().Count());
        Assert.Equal(retiring.Count, retiring.Distinct().Count());
        Assert.Equal(original.Order(), retiring.Order());

        // ---- health: a worker whose agent goes silent is UNHEALTHY (named), then auto-healing replaces it.
        var victim = live.First(n => n.Contains("worker"));
        _fleet.Silence(victim);
        var sick = await WaitFor(c, x => x["health_status"]?.GetValue<string>() == "UNHEALTHY", 60);
        Assert.StartsWith("silent", sick["health_status_reason"]![$"{victim}.reason"]!.GetValue<string>());
        Assert.Equal("False", sick["health_status_reason"]![$"{victim}.Ready"]!.GetValue<string>());
        var bootsBefore = _fleet.Boots.Count;
        var healed = await WaitFor(c, x => x["status"]!.GetValue<string>() == "UPDATE_COMPLETE" && x["health_status"]?.GetValue<string>() == "HEALTHY"
            && _fleet.Boots.Count > bootsBefore, 90);
        Assert.Equal(4, _fleet.Live().Count);
        Assert.Equal(bootsBefore + 1, _fleet.Boots.Count); // one new node for the silent one
        Assert.Equal(New, _fleet.Boots.Last().Version);
        Assert.Contains(Events(c), e => e.Reason == "AutoHealing" && e.Message.Contains(victim));
        Assert.Contains(victim, api.DeletedNodes);

        // ---- the API server goes away: UNKNOWN, saying so; back: HEALTHY.
        await api.StopAsync();
        var unknown = await WaitFor(c, x => x["health_status"]?.GetValue<string>() == "UNKNOWN", 60);
        Assert.StartsWith("unreachable", unknown["health_status_reason"]!["api"]!.GetValue<string>());
        api = await _fleet.StandInAsync(restart: true);
        await WaitFor(c, x => x["health_status"]?.GetValue<string>() == "HEALTHY" && x["health_status_reason"]?["api"]?.GetValue<string>() == "ok", 60);

        await Api(HttpMethod.Delete, $"/v1/clusters/{c}", null, HttpStatusCode.NoContent);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (Count("SELECT COUNT(*) FROM clusters") > 0 && DateTime.UtcNow < deadline) await Task.Delay(200);
        Assert.Equal(0, Count("SELECT COUNT(*) FROM simulated_resources"));
        Assert.Equal(0, Count("SELECT COUNT(*) FROM node_states"));
    }

    [Fact]
    public async Task A_dead_control_plane_node_leaves_etcd_through_a_healthy_member_before_its_successor_joins()
    {
        var c = (await Api(HttpMethod.Post, "/v1/clusters", new JsonObject
        {
            ["name"] = "cp", ["cluster_template_id"] = "k8s-1.31", ["master_count"] = 3, ["node_count"] = 1,
            ["labels"] = new JsonObject { ["kube_tag"] = Old, ["auto_healing_enabled"] = "true", ["auto_healing_unhealthy_seconds"] = "3" },
        }, HttpStatusCode.Accepted))["uuid"]!.GetValue<string>();
        _lastCluster = c;
        _fleet = new TestFleet(_dir, _stubs, _apiPort, _db, c);
        await WaitFor(c, x => x["status"]!.GetValue<string>() == "CREATE_COMPLETE", 120);
        await _fleet.StandInAsync();
        await WaitFor(c, x => x["health_status"]?.GetValue<string>() == "HEALTHY" && x["health_status_reason"]?["api"]?.GetValue<string>() == "ok");
        Assert.Equal(["cp-default-master-0", "cp-default-master-1", "cp-default-master-2"], _fleet.MemberNames().Order());
        var boots = _fleet.Boots.Count;

        // A hypervisor failure: master 1's server goes to ERROR and the node falls silent.
        const string dead = "cp-default-master-1";
        _fleet.Silence(dead);
        _db.Exec($"UPDATE simulated_resources SET Status = 'ERROR' WHERE Kind = 'server' AND Name = '{dead}'");
        var sick = await WaitFor(c, x => x["health_status_reason"]?[$"{dead}.reason"]?.GetValue<string>() == "server ERROR", 60);
        Assert.Equal("UNHEALTHY", sick["health_status"]!.GetValue<string>());

        // Healed: a healthy member (master 0, the first by name) removes the dead one's etcd member, then a new master joins.
        var healed = await WaitFor(c, x => x["status"]!.GetValue<string>() == "UPDATE_COMPLETE" && x["health_status"]?.GetValue<string>() == "HEALTHY"
            && _fleet.Boots.Count > boots, 120);
        Assert.Equal(3, healed["master_count"]!.GetValue<int>());
        var members = _fleet.MemberNames();
        Assert.Equal(3, members.Count);
        var successor = _fleet.Boots.Last().Name;
        Assert.Contains(successor, members);
        Assert.Equal(3, _fleet.MaxEtcdMembers); // never a fourth member while the dead one still counted
        Assert.Contains("member remove", File.ReadAllText(Path.Combine(_fleet.Root("cp-default-master-0"), "stub.log")));
        var events = Events(c);
        Assert.Contains(events, e => e.Reason == "AutoHealing" && e.Message.Contains(dead) && e.Message.Contains("server ERROR"));
        Assert.Contains(events, e => e.Reason == "NodeLeftEtcd" && e.Message == $"node cp-default-master-0 removed the etcd member of {dead}");
        Assert.Equal(0, Count($"SELECT COUNT(*) FROM simulated_resources WHERE ClusterUuid = '{c}' AND Status = 'ERROR'"));
        Assert.Equal(3, _db.Servers(c).Count(s => !s.Deleting && s.Name.Contains("-master-")));

        // Two of three masters broken at once: etcd has lost its quorum, and replacing members would not restore it: withheld.
        var masters = _db.Servers(c).Where(s => !s.Deleting && s.Name.Contains("-master-")).Select(s => s.Name).Order().ToList();
        foreach (var m in masters.Take(2)) _db.Exec($"UPDATE simulated_resources SET Status = 'ERROR' WHERE Kind = 'server' AND Name = '{m}'");
        await WaitFor(c, x => x["health_status"]?.GetValue<string>() == "UNHEALTHY" && x["health_status_reason"]?[$"{masters[1]}.reason"] is not null, 60);
        await Task.Delay(6000);
        Assert.Equal("UPDATE_COMPLETE", (await Get(c))["status"]!.GetValue<string>());
        Assert.Contains(Events(c), e => e.Reason == "AutoHealingWithheld" && e.Message.Contains("2 of 3 control-plane nodes are unhealthy"));
        Assert.Equal(2, Count($"SELECT COUNT(*) FROM simulated_resources WHERE ClusterUuid = '{c}' AND Status = 'ERROR'"));
        Assert.Equal(3, _fleet.MemberNames().Count);

        await Api(HttpMethod.Delete, $"/v1/clusters/{c}", null, HttpStatusCode.NoContent);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (Count("SELECT COUNT(*) FROM clusters") > 0 && DateTime.UtcNow < deadline) await Task.Delay(200);
        Assert.Equal(0, Count("SELECT COUNT(*) FROM simulated_resources"));
    }

    // ---------------------------------------------------------------- helpers


    private static string Error(JsonNode r) => r["errors"]![0]!["detail"]!.GetValue<string>();

    private Task<JsonNode> Get(string cluster) => _magnum.Cluster(cluster);
    private Task<JsonNode> Api(HttpMethod method, string path, JsonObject? body, HttpStatusCode expect) => _magnum.Api(method, path, body, expect);
    private Task<JsonNode> WaitFor(string cluster, Func<JsonNode, bool> done, int seconds = 60) => _magnum.WaitFor(cluster, done, seconds);
    private long Count(string sql) => _db.Count(sql);
    private List<(string Reason, string Message)> Events(string cluster) => _db.Events(cluster);

}
