using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Magnetar.Bootstrap.Kubeadm;
using Magnetar.Bootstrap.Pki;
using YamlDotNet.RepresentationModel;

namespace Magnetar.Tests;

/// <summary>
/// Nodes that really boot (issue #13): each server of the simulated cloud boots as a Debian bookworm userspace under
/// systemd in a container (tests/nodebed), whose cloud-init reads the exact user-data Magnetar gave the server from a
/// NoCloud seed and runs it. Real: cloud-init, systemd and the units the user-data installs, curl over TLS, containerd's
/// configuration, files and modes on disk. Stand-ins (installed by the bed, never by user-data): kubeadm, kubelet, kubectl.
/// </summary>
[Trait("Category", "Integration")]
public sealed class BootedNodeTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("booted-nodes-").FullName;
    private readonly NodeBed _bed;
    private MagnetarProcess? _server;
    private string _api = "", _bootstrap = "", _caFile = "";
    private HttpClient _http = new();

    public BootedNodeTests() => _bed = new NodeBed(_dir);

    public Task InitializeAsync() => Task.CompletedTask;

    /// <summary>Magnetar as its own process: the Magnum API on HTTP, the bootstrap endpoint on HTTPS (a test CA the user-data carries).</summary>
    private async Task StartMagnetar(int reportTimeoutSeconds)
    {
        (_server, _api, _bootstrap, _caFile) = MagnetarProcess.WithBootstrapTls(_dir,
            $"--Magnetar:Bootstrap:NodeReportTimeoutSeconds={reportTimeoutSeconds}", "--Magnetar:Conductor:LeaseSeconds=2",
            "--Magnetar:Cloud:Simulated:StepDelayMs=100", "--Magnetar:Conductor:PollIntervalMs=200",
            "--Magnetar:Cloud:Simulated:Images:0=debian-12"); // what the nodes boot: the bed's Debian bookworm
        var data = _server.DataDir;
        await _server.StartAsync(() => File.Exists(Path.Combine(data, "openrc-demo")));
        _http.Dispose();
        _http = await _server.ClientAsync();
        // kube_package_source=image: the node's image has containerd (Debian's) and kubeadm/kubelet/kubectl (the bed's
        // stand-ins) preinstalled, as on a prebuilt image; upstream's package repositories are not reachable here.
        await CreateTemplate("k8s", "v1.31.1");
    }

    private Task<JsonNode> CreateTemplate(string name, string kubeTag) => Magnum.Api(HttpMethod.Post, "/v1/clustertemplates", new JsonObject
    {
        ["name"] = name, ["coe"] = "kubernetes", ["image_id"] = "debian-12", ["external_network_id"] = "public",
        ["flavor_id"] = "m1.small", ["master_flavor_id"] = "m1.medium", ["network_driver"] = "calico", ["master_lb_enabled"] = true,
        ["labels"] = new JsonObject { ["kube_tag"] = kubeTag, ["kube_package_source"] = "image" },
    }, HttpStatusCode.Created);

    public async Task DisposeAsync()
    {
        await _bed.DisposeAsync();
        if (_server is not null) await _server.DisposeAsync();
        _http.Dispose();
        try { Directory.Delete(_dir, true); } catch { }
    }

    [BootedNodeFact]
    public async Task A_cluster_of_three_booted_nodes_completes_through_their_reports()
    {
        var clock = Stopwatch.StartNew();
        _bed.Prepare();
        var prepared = clock.Elapsed;
        await StartMagnetar(reportTimeoutSeconds: 600);
        var cluster = await CreateCluster("b1", masters: 1, workers: 2);
        var servers = await WaitForServers(cluster, 3);
        var created = clock.Elapsed;
        foreach (var (name, userData) in servers) Boot(name, userData);

        var show = await Magnum.WaitFor(cluster, c => c["status"]!.GetValue<string>() != "CREATE_IN_PROGRESS", 240);
        Assert.True(show["status"]!.GetValue<string>() == "CREATE_COMPLETE", $"{show.ToJsonString()}\n{Diagnostics(servers)}");
        var complete = clock.Elapsed;
        var ca = (await Magnum.Api(HttpMethod.Get, $"/v1/certificates/{cluster}", null, HttpStatusCode.OK))["pem"]!.GetValue<string>();
        var events = new ServerDatabase(() => _server!.DataDir).Events(cluster);

        foreach (var (name, userData) in servers)
        {
            _bed.CheckFirstBoot(name, userData, ca, _bootstrap);
            Assert.Single(events, e => e.Reason == "NodeBundleFetched" && e.Message.StartsWith($"node {name} fetched "));
            if (_bed.Role(name) == "init") Assert.Contains("calico", Exec(name, "cat", "/var/log/nodebed/kubectl-applied"));
        }

        // The agent's timer, enabled once the node was Ready, fires every 30 s: at least twice on every node.
        var deadline = DateTime.UtcNow.AddSeconds(150);
        foreach (var (name, _) in servers)
        {
            int runs;
            while ((runs = AgentRuns(name)) < 2 && DateTime.UtcNow < deadline) await Task.Delay(2000);
            Assert.True(runs >= 2, $"{name}: the agent ran {runs} time(s)\n{Exec(name, "journalctl", "--no-pager", "-u", "magnetar-node-agent.service")}");
            // every 30 s after the last run ended (AccuracySec=1s: systemd's default 1 min would let it drift to 90 s)
            var times = _bed.AgentRunTimes(name);
            Assert.All(times.Zip(times.Skip(1), (a, b) => b - a), gap => Assert.InRange(gap, 29, 45));
            Assert.Contains("active", Exec(name, "systemctl", "show", "-p", "ActiveState", "magnetar-node-agent.timer"));
            Assert.DoesNotContain("Failed", Exec(name, "journalctl", "--no-pager", "-u", "magnetar-node-agent.service"));
        }
        Console.WriteLine($"booted nodes: root ready after {prepared.TotalSeconds:F0} s, servers after {created.TotalSeconds:F0} s, " +
            $"CREATE_COMPLETE after {complete.TotalSeconds:F0} s (the boots took {(complete - created).TotalSeconds:F0} s), all checks after {clock.Elapsed.TotalSeconds:F0} s");
    }

    [BootedNodeFact]
    public async Task A_node_that_cannot_reach_the_bootstrap_endpoint_fails_the_cluster_by_the_report_timeout_naming_it()
    {
        _bed.Prepare();
        // The node boots on a network that does not reach Magnetar (the bed gives it no way to the bootstrap URL): it can
        // fetch nothing, so it holds no report credential and can never say what went wrong. Magnetar says it instead.
        await StartMagnetar(reportTimeoutSeconds: 45);
        var cluster = await CreateCluster("f1", masters: 1, workers: 0);
        var servers = await WaitForServers(cluster, 1);
        var (name, userData) = servers.Single();
        Boot(name, userData, "--offline");

        var show = await Magnum.WaitFor(cluster, c => c["status"]!.GetValue<string>() != "CREATE_IN_PROGRESS", 150);
        Assert.Equal("CREATE_FAILED", show["status"]!.GetValue<string>());
        var reason = show["status_reason"]!.GetValue<string>();
        Assert.Matches($"^node {name} \\(nodegroup default-master\\) never contacted Magnetar within 45 seconds", reason);
        // On the node: cloud-init is still running the node script, which keeps trying the unreachable endpoint.
        var output = Exec(name, "cat", "/var/log/cloud-init-output.log");
        Assert.Contains("bundle not available yet (HTTP 000)", output);
        Assert.Contains("status: running", _bed.Bed(["exec", name, "cloud-init", "status"], check: false).Output);
        Assert.True(_bed.Test(name, "test", "-e", "/etc/magnetar/bootstrap-token"), "the offline node lost its fetch credential");
    }

    [BootedNodeFact]
    public async Task A_node_whose_kubeadm_fails_reports_it_and_the_cluster_fails_naming_node_phase_and_log_tail()
    {
        _bed.Prepare();
        await StartMagnetar(reportTimeoutSeconds: 600);
        var cluster = await CreateCluster("k1", masters: 1, workers: 1);
        var servers = await WaitForServers(cluster, 2);
        const string preflight = "[preflight] Some fatal errors occurred: [ERROR Port-10250]: Port 10250 is in use";
        foreach (var (name, userData) in servers)
            if (name.Contains("-worker-")) Boot(name, userData, "--fail-kubeadm", preflight); else Boot(name, userData);
        var worker = servers.Single(s => s.Name.Contains("-worker-")).Name;

        var show = await Magnum.WaitFor(cluster, c => c["status"]!.GetValue<string>() != "CREATE_IN_PROGRESS", 240);
        Assert.True(show["status"]!.GetValue<string>() == "CREATE_FAILED", $"{show.ToJsonString()}\n{Diagnostics(servers)}");
        var reason = show["status_reason"]!.GetValue<string>();
        // What the node's script sent from inside cloud-init's runcmd: the phase, kubeadm's exit code and its last lines.
        Assert.StartsWith($"node {worker} (nodegroup default-worker, worker) failed at phase kubeadm-done with exit code 3; last log lines:", reason);
        Assert.Contains(preflight, reason);
        // On the node: the script stopped there, cloud-init says so (runcmd failed), the log is where the README says.
        Assert.Contains(preflight, Exec(worker, "cat", "/var/log/magnetar/kubeadm-done.log"));
        var status = _bed.Bed(["exec", worker, "cloud-init", "status", "--wait", "--long"], check: false).Output;
        Assert.Contains("status: error", status);
        Assert.False(_bed.Test(worker, "systemctl", "is-enabled", "magnetar-node-agent.timer"), "the failed node's agent timer is on");
    }

    [BootedNodeFact]
    public async Task Ca_rotation_certificate_renewals_and_a_rolling_upgrade_are_carried_out_by_booted_nodes_through_their_agent_timers()
    {
        var clock = Stopwatch.StartNew();
        _bed.Prepare();
        await StartMagnetar(reportTimeoutSeconds: 600);
        await CreateTemplate("k8s-1.32", "v1.32.1");
        var cluster = await CreateCluster("d2", masters: 1, workers: 1);
        var db = new ServerDatabase(() => _server!.DataDir);
        // The cloud's hypervisor: each server boots as a node of the bed, and goes when its server is deleted. The agent's
        // timer fires every 5 s instead of 30 s (the bed's drop-in), so that the three rotation steps take seconds.
        await using var cloud = new BedHypervisor(_bed, () => db.Servers(cluster), "--agent-interval", "5");
        var show = await Settled(cluster, "CREATE_IN_PROGRESS", 240, cloud);
        Assert.True(show["status"]!.GetValue<string>() == "CREATE_COMPLETE", $"{show.ToJsonString()}\n{cloud.Error}\n{Diagnostics(cloud.Running)}");
        var created = clock.Elapsed;
        var original = cloud.Running;
        var master = original.Keys.Single(n => n.Contains("-master-"));
        var worker = original.Keys.Single(n => n.Contains("-worker-"));
        var oldCa = await CaPem(cluster);

        // ---- CA rotation (PATCH /v1/certificates/{cluster}): trust, reissue, finish, each node in turn, by its agent's timer.
        await Magnum.Api(HttpMethod.Patch, $"/v1/certificates/{cluster}", null, HttpStatusCode.Accepted);
        var both = NodeBed.Certificates(await CaPem(cluster));
        Assert.Equal(2, both.Count);
        show = await Settled(cluster, "UPDATE_IN_PROGRESS", 180, cloud);
        Assert.True(show["status"]!.GetValue<string>() == "UPDATE_COMPLETE", $"{show.ToJsonString()}\n{Diagnostics(cloud.Running)}");
        Assert.Equal("CA rotation completed: the cluster's 2 node(s) trust only the new CA", show["status_reason"]!.GetValue<string>());
        var newCa = await CaPem(cluster);
        Assert.Equal([both[1]], NodeBed.Certificates(newCa));
        var events = db.Events(cluster);
        Assert.Equal(new[] { "trust", "reissue", "finish" }.SelectMany(step => new[] { master, worker }.Select(n => $"node {n}: CA rotation step {step} done")),
            events.Where(e => e.Reason == "NodeCaRotation").Select(e => e.Message));
        foreach (var n in new[] { master, worker })
        {
            Assert.Equal([both[1]], NodeBed.Certificates(Exec(n, "cat", "/etc/kubernetes/pki/ca.crt")));
            // The kubelet's client certificate (kubelet.conf names its file now) and serving certificate come from the new CA.
            _bed.CheckKubeconfig(n, "/etc/kubernetes/kubelet.conf", newCa, $"O=system:nodes, CN=system:node:{n}");
            Assert.Equal("OK", Fixtures.OpensslVerify(newCa, Exec(n, "cat", "/var/lib/kubelet/pki/kubelet-serving.crt"), "-purpose", "sslserver", "-verify_hostname", n));
            Assert.NotEqual("OK", Fixtures.OpensslVerify(oldCa, Exec(n, "cat", "/var/lib/kubelet/pki/kubelet-serving.crt"), "-purpose", "sslserver"));
            Assert.False(_bed.Test(n, "test", "-e", "/etc/magnetar/task"), $"{n}: the task's files (the CA key) were left behind");
            var agent = Exec(n, "journalctl", "--no-pager", "-u", "magnetar-node-agent.service");
            foreach (var step in new[] { "trust", "reissue", "finish" }) Assert.True(_bed.Test(n, "test", "-e", $"/var/log/magnetar/ca-{step}.log"), $"{n}: no log of step {step}\n{agent}");
        }
        // The control plane: kubeadm renewed its kubeconfigs from the new CA key; the lead restarted the workloads and
        // published the new CA in kube-public/cluster-info.
        Assert.Contains("certs renew all", Exec(master, "cat", "/var/log/nodebed/kubeadm.calls"));
        _bed.CheckKubeconfig(master, "/etc/kubernetes/admin.conf", newCa, "CN=kubernetes-admin, O=kubeadm:cluster-admins");
        _bed.CheckKubeconfig(master, "/etc/kubernetes/super-admin.conf", newCa, "CN=kubernetes-super-admin, O=system:masters");
        _bed.CheckKubeconfig(master, "/etc/kubernetes/controller-manager.conf", newCa, "CN=system:kube-controller-manager");
        _bed.CheckKubeconfig(master, "/etc/kubernetes/scheduler.conf", newCa, "CN=system:kube-scheduler");
        var restarted = Exec(master, "cat", "/var/log/nodebed/kubectl-restarted");
        Assert.Contains("kube-system deployment", restarted);
        Assert.Contains("kube-system daemonset", restarted);
        var clusterInfo = Exec(master, "cat", "/var/lib/nodebed/api/cluster-info.kubeconfig");
        var published = System.Text.RegularExpressions.Regex.Match(clusterInfo, "certificate-authority-data: *(\\S+)").Groups[1].Value;
        Assert.Equal([both[1]], NodeBed.Certificates(System.Text.Encoding.ASCII.GetString(Convert.FromBase64String(published))));
        var rotated = clock.Elapsed;

        // ---- renewals, due once a third of a certificate's validity is left (the database is moved on): the worker's kubelet
        // serving certificate and the master's kubeadm certificates, each renewed by the node's agent on its next run.
        static long In(int days) => (long)new Microsoft.EntityFrameworkCore.Storage.ValueConversion.DateTimeOffsetToBinaryConverter().ConvertToProvider(DateTimeOffset.UtcNow.AddDays(days))!;
        var servingBefore = Exec(worker, "cat", "/var/lib/kubelet/pki/kubelet-serving.crt");
        db.Exec($"UPDATE node_states SET ServingCertificateExpiresAt = {In(100)} WHERE ClusterUuid = '{cluster}' AND NodeName = '{worker}'");
        db.Exec($"UPDATE node_states SET ControlPlaneCertificatesExpireAt = {In(30)} WHERE ClusterUuid = '{cluster}' AND NodeName = '{master}'");
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!(db.Events(cluster) is var e && e.Any(x => x.Reason == "KubeletServingCertificate") && e.Any(x => x.Reason == "ControlPlaneCertificates")) && DateTime.UtcNow < deadline)
            await Task.Delay(1000);
        events = db.Events(cluster);
        Assert.Equal([$"node {worker}: kubelet serving certificate renewed"], events.Where(x => x.Reason == "KubeletServingCertificate").Select(x => x.Message));
        Assert.Equal([$"node {master}: control-plane certificates renewed"], events.Where(x => x.Reason == "ControlPlaneCertificates").Select(x => x.Message));
        var servingAfter = Exec(worker, "cat", "/var/lib/kubelet/pki/kubelet-serving.crt");
        Assert.NotEqual(servingBefore, servingAfter);
        Assert.Equal("OK", Fixtures.OpensslVerify(newCa, servingAfter, "-purpose", "sslserver", "-verify_hostname", worker));
        Assert.Equal(2, Exec(master, "cat", "/var/log/nodebed/kubeadm.calls").Split('\n').Count(l => l == "certs renew all"));
        Assert.Contains("certificate embedded in admin.conf renewed", Exec(master, "cat", "/var/log/magnetar/control-plane-certs-renewed.log"));

        // ---- a rolling upgrade to v1.32.1: every node replaced by one booted from the new version's user-data; the old
        // master leaves etcd (its agent runs kubeadm's remove-etcd-member) before its server goes.
        await Magnum.Api(HttpMethod.Post, $"/v1/clusters/{cluster}/actions/upgrade", new JsonObject { ["cluster_template"] = "k8s-1.32", ["max_batch_size"] = 1 }, HttpStatusCode.Accepted);
        show = await Settled(cluster, "UPDATE_IN_PROGRESS", 480, cloud);
        Assert.True(show["status"]!.GetValue<string>() == "UPDATE_COMPLETE", $"{show.ToJsonString()}\n{cloud.Error}\n{Diagnostics(cloud.Running)}");
        Assert.Equal("v1.32.1", show["coe_version"]!.GetValue<string>());
        foreach (var ng in (await Magnum.Api(HttpMethod.Get, $"/v1/clusters/{cluster}/nodegroups", null, HttpStatusCode.OK))["nodegroups"]!.AsArray())
            Assert.Equal("v1.32.1", (await Magnum.Api(HttpMethod.Get, $"/v1/clusters/{cluster}/nodegroups/{ng!["name"]}", null, HttpStatusCode.OK))["version"]!.GetValue<string>());
        deadline = DateTime.UtcNow.AddSeconds(30);
        while (cloud.Running.Keys.Intersect(original.Keys).Any() && DateTime.UtcNow < deadline) await Task.Delay(500);
        var replaced = cloud.Running;
        Assert.Equal(2, replaced.Count);
        Assert.Empty(replaced.Keys.Intersect(original.Keys));
        Assert.Equal(4, cloud.Boots.Count); // each node replaced once
        Assert.Contains("reset phase remove-etcd-member", cloud.Retired[master]);
        Assert.True(cloud.Retired.ContainsKey(worker), $"{worker} was not taken down");
        foreach (var (name, userData) in replaced)
        {
            _bed.CheckFirstBoot(name, userData, newCa, _bootstrap);
            Assert.Equal(name.Contains("-master-") ? "control-plane" : "worker", _bed.Role(name));
            Assert.Equal("Kubernetes v1.32.1", Exec(name, "kubelet", "--version").Trim());
        }
        Console.WriteLine($"booted day two: CREATE_COMPLETE after {created.TotalSeconds:F0} s, CA rotation {(rotated - created).TotalSeconds:F0} s, " +
            $"renewals and upgrade done after {clock.Elapsed.TotalSeconds:F0} s");
    }

    [Fact]
    public void The_bed_and_its_stand_ins_are_shellcheck_clean_and_every_stand_in_says_so()
    {
        var dir = Path.GetDirectoryName(_bed.Script)!;
        var standIns = Directory.GetFiles(Path.Combine(dir, "stand-ins"));
        Assert.All(standIns, f => Assert.Contains("STAND-IN", File.ReadAllText(f)));
        Assert.True(File.Exists("/usr/bin/shellcheck"), "shellcheck is not installed (scripts/test installs Debian's shellcheck)");
        var (code, text) = BootstrapArtifactTests.Run("shellcheck", [_bed.Script, .. standIns.Where(f => !f.EndsWith(".service"))]);
        Assert.True(code == 0, text);
    }

    // ---------------------------------------------------------------- helpers

    private MagnumSession Magnum => new(() => _http, () => _server!.Log);

    private async Task<string> CreateCluster(string name, int masters, int workers)
    {
        var r = await Magnum.Api(HttpMethod.Post, "/v1/clusters", new JsonObject
        {
            ["name"] = name, ["cluster_template_id"] = "k8s", ["master_count"] = masters, ["node_count"] = workers,
        }, HttpStatusCode.Accepted);
        return r["uuid"]!.GetValue<string>();
    }

    /// <summary>The simulated Nova's servers of the cluster and the user-data each was created with.</summary>
    private async Task<List<(string Name, string UserData)>> WaitForServers(string cluster, int count)
    {
        var db = new ServerDatabase(() => _server!.DataDir);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            var list = db.Servers(cluster).Where(s => !s.Deleting).Select(s => (s.Name, s.UserData)).ToList();
            if (list.Count == count) return list;
            Assert.True(DateTime.UtcNow < deadline, $"{list.Count} of {count} servers of {cluster}\n{_server!.Log}");
            await Task.Delay(200);
        }
    }

    private void Boot(string name, string userData, params string[] options) => _bed.Boot(name, userData, options);

    private string Exec(string node, params string[] command) => _bed.Exec(node, command);

    /// <summary>How many times magnetar-node-agent.service ran to success (what the timer starts).</summary>
    private int AgentRuns(string node) => _bed.AgentRunTimes(node).Count;

    private string Diagnostics(List<(string Name, string UserData)> servers)
        => _bed.Diagnostics(servers.Select(s => s.Name)) + $"\n--- magnetar\n{_server!.Log}";

    private string Diagnostics(Dictionary<string, string> nodes) => _bed.Diagnostics(nodes.Keys) + $"\n--- magnetar\n{_server!.Log}";

    /// <summary>The cluster once its status is no longer <paramref name="status"/>; on a timeout, what the nodes' agents say.</summary>
    private Task<JsonNode> Settled(string cluster, string status, int seconds, BedHypervisor cloud)
        => new MagnumSession(() => _http, () => $"{cloud.Error}\n" +
                string.Join("\n", cloud.Running.Keys.Select(n => $"--- {n} agent\n{_bed.Bed(["exec", n, "journalctl", "--no-pager", "-n", "60", "-u", "magnetar-node-agent.service"], check: false).Output}" +
                    $"\n{_bed.Bed(["exec", n, "sh", "-c", "tail -n 20 /var/log/magnetar/*.log"], check: false).Output}")) + $"\n--- magnetar\n{_server!.Log}")
            .WaitFor(cluster, c => c["status"]!.GetValue<string>() != status, seconds);

    private async Task<string> CaPem(string cluster)
        => (await Magnum.Api(HttpMethod.Get, $"/v1/certificates/{cluster}", null, HttpStatusCode.OK))["pem"]!.GetValue<string>();
}
