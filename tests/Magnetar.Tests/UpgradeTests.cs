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
    private Fleet? _fleet;
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
        _stubs = Directory.CreateDirectory(Path.Combine(_dir, "stubs")).FullName;
        // The kubelet the user-data installed: the version node.env asks for ("kubelet --version" prints "Kubernetes v1.32.1").
        Stub("kubelet", "sed -n \"s/^MAGNETAR_KUBE_VERSION='\\{0,1\\}\\([^']*\\)'\\{0,1\\}$/Kubernetes \\1/p\" \"$MAGNETAR_NODE_ROOT/etc/magnetar/node.env\"\n");
        Stub("kubeadm", "echo \"kubeadm $*\" >>\"$MAGNETAR_NODE_ROOT/stub.log\"\n");
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
        _fleet = new Fleet(this, c);
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

    // ---------------------------------------------------------------- the fleet of test nodes

    /// <summary>
    /// Plays the VMs: boots every new server of the cluster from its user-data (fetch, phases, Ready, its Node in the
    /// stand-in API), runs each live node's agent, stops nodes whose servers are deleted, and samples how many workers serve.
    /// </summary>
    private sealed class Fleet : IAsyncDisposable
    {
        private readonly UpgradeTests _t;
        private readonly string _cluster;
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _loop;
        private readonly ConcurrentDictionary<TestNode, bool> _silenced = new();
        private CertificateAuthorityMaterial? _ca;
        private volatile KubernetesApiStandIn? _api;
        private volatile HashSet<string> _live = [];
        /// <summary>The node booted last under each server name (a name is reused once its server is gone).</summary>
        public ConcurrentDictionary<string, TestNode> Booted { get; } = new();
        /// <summary>Every boot, in order: name and the Kubernetes version its user-data asked for.</summary>
        public ConcurrentQueue<(string Name, string Version, DateTime At)> Boots { get; } = new();
        private readonly ConcurrentDictionary<string, string> _userData = new();
        public int MinServingWorkers { get; private set; } = int.MaxValue;
        public int MinWorkerServers { get; private set; } = int.MaxValue;
        private bool _complete;

        public Fleet(UpgradeTests t, string cluster)
        {
            (_t, _cluster) = (t, cluster);
            _loop = Task.Run(LoopAsync);
        }

        public string Root(string node) => Booted.TryGetValue(node, out var n) ? n.Path("") : Path.Combine(_t._dir, "nodes", node);
        /// <summary>The booted nodes whose servers exist now (read from the cloud, not the loop's last round).</summary>
        public HashSet<string> Live() => _t.Servers(_cluster).Where(s => !s.Deleting && _userData.GetValueOrDefault(s.Name) == s.UserData).Select(s => s.Name).ToHashSet();
        public void Silence(string node) => _silenced[Booted[node]] = true;
        public string VersionOf(string node) => Booted[node].File("etc/magnetar/node.env").Split('\n').Single(l => l.StartsWith("MAGNETAR_KUBE_VERSION=")).Split('=')[1].Trim('\'');

        /// <summary>The stand-in API server with the cluster CA of the first control-plane node, every live node registered.</summary>
        public async Task<KubernetesApiStandIn> StandInAsync(bool restart = false)
        {
            var init = Booted.Values.First(n => n.File("etc/magnetar/node.env").Contains("MAGNETAR_ROLE=init"));
            _ca ??= new CertificateAuthorityMaterial(init.File("etc/kubernetes/pki/ca.crt"), init.File("etc/kubernetes/pki/ca.key"));
            var api = await KubernetesApiStandIn.StartAsync(_ca, _t._apiPort);
            foreach (var n in Live()) api.AddNode(n, VersionOf(n));
            _api = api;
            _complete = true; // samples count from here (the cluster is complete)
            return api;
        }

        private async Task LoopAsync()
        {
            var env = new Dictionary<string, string> { ["PATH"] = $"{_t._stubs}:{Environment.GetEnvironmentVariable("PATH")}" };
            while (!_stop.IsCancellationRequested)
            {
                try
                {
                    var servers = _t.Servers(_cluster);
                    _live = servers.Where(s => !s.Deleting && _userData.GetValueOrDefault(s.Name) == s.UserData).Select(s => s.Name).ToHashSet();
                    foreach (var s in servers.Where(s => !s.Deleting && _userData.GetValueOrDefault(s.Name) != s.UserData))
                    {
                        // A new server: cloud-init runs the node script, which fetches its bundle and reports each phase.
                        var node = TestNode.Boot(s.UserData, Path.Combine(_t._dir, "nodes", $"{s.Name}.{Boots.Count}"));
                        if ((await node.RunWith(new(env), "fetch")).Item1 != 0) continue; // its addresses are not known yet: next round
                        Booted[s.Name] = node;
                        _userData[s.Name] = s.UserData;
                        Boots.Enqueue((s.Name, VersionOf(s.Name), DateTime.UtcNow));
                        await node.RunWith(new(env), "report", "booted", "ok");
                        foreach (var phase in new[] { "containerd-ready", "kubeadm-done" }) await node.RunWith(new(env), "run", phase, "true");
                        if (node.File("etc/magnetar/node.env").Contains("MAGNETAR_ROLE=init")) await node.RunWith(new(env), "run", "addons-applied", "true");
                        _api?.AddNode(s.Name, VersionOf(s.Name));
                        await node.RunWith(new(env), "run", "ready", "true");
                    }
                    // Every live node's agent asks for work (magnetar-node-agent.timer), unless silenced.
                    foreach (var name in _live.Where(n => !_silenced.ContainsKey(Booted[n])))
                        await Booted[name].RunWith(new(env), "task");
                    if (_complete && _api is { } api)
                    {
                        var workers = servers.Where(s => !s.Deleting && s.Name.Contains("-worker-")).ToList();
                        MinWorkerServers = Math.Min(MinWorkerServers, workers.Count);
                        var serving = api.Nodes.Count(n => n.Name.Contains("-worker-") && n.Ready && !n.Unschedulable && workers.Any(w => w.Name == n.Name));
                        MinServingWorkers = Math.Min(MinServingWorkers, serving);
                    }
                }
                catch (Exception) when (!_stop.IsCancellationRequested) { /* the database was busy or Magnetar restarting: next round */ }
                try { await Task.Delay(500, _stop.Token); } catch (OperationCanceledException) { }
            }
        }

        public async ValueTask DisposeAsync()
        {
            _stop.Cancel();
            try { await _loop; } catch { }
            if (_api is not null) await _api.DisposeAsync();
        }
    }

    // ---------------------------------------------------------------- helpers

    private void Stub(string name, string body)
    {
        File.WriteAllText(Path.Combine(_stubs, name), "#!/bin/bash\n" + body);
        File.SetUnixFileMode(Path.Combine(_stubs, name), (UnixFileMode)0b111_101_101);
    }

    private static string Error(JsonNode r) => r["errors"]![0]!["detail"]!.GetValue<string>();

    private Task<JsonNode> Get(string cluster) => _magnum.Cluster(cluster);
    private Task<JsonNode> Api(HttpMethod method, string path, JsonObject? body, HttpStatusCode expect) => _magnum.Api(method, path, body, expect);
    private Task<JsonNode> WaitFor(string cluster, Func<JsonNode, bool> done, int seconds = 60) => _magnum.WaitFor(cluster, done, seconds);
    private long Count(string sql) => _db.Count(sql);
    private List<(string Reason, string Message)> Events(string cluster) => _db.Events(cluster);

    private List<(string Name, string UserData, bool Deleting)> Servers(string cluster)
    {
        using var db = _db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "SELECT Name, UserData, DeleteRequestedAt IS NOT NULL FROM simulated_resources WHERE ClusterUuid = $c AND Kind = 'server' AND UserData IS NOT NULL ORDER BY Name";
        cmd.Parameters.AddWithValue("$c", cluster);
        var list = new List<(string, string, bool)>();
        using var r = cmd.ExecuteReader();
        while (r.Read()) list.Add((r.GetString(0), r.GetString(1), r.GetBoolean(2)));
        return list;
    }
}
