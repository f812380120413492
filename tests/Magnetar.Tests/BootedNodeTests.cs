using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Magnetar.Bootstrap.Kubeadm;
using Magnetar.Bootstrap.Pki;
using YamlDotNet.RepresentationModel;

namespace Magnetar.Tests;

/// <summary>Runs when podman and runc are installed; required (fails instead of skipping) when MAGNETAR_REQUIRE_INTEGRATION=1.</summary>
public sealed class BootedNodeFactAttribute : FactAttribute
{
    public BootedNodeFactAttribute()
    {
        // podman makes its mounts private with "mount --make-rslave /", which fails where / is not a mount point: a
        // plain chroot (a bookworm chroot used to reproduce CI was one). Every VM and container has / mounted.
        if (!RootIsMountPoint())
        {
            Skip = "booted nodes need / to be a mount point (podman cannot run in a plain chroot; bind-mount the chroot's directory on itself)";
            return;
        }
        if (Environment.GetEnvironmentVariable("MAGNETAR_REQUIRE_INTEGRATION") == "1") return;
        var missing = new[] { "/usr/bin/podman", "/usr/sbin/runc", "/usr/sbin/debootstrap" }.Where(f => !File.Exists(f)).ToList();
        if (missing.Count > 0) Skip = $"booted nodes need {string.Join(", ", missing.Select(Path.GetFileName))} (Debian packages; scripts/test installs them)";
        else if (Environment.UserName != "root") Skip = "booted nodes need root (podman --privileged with runc, debootstrap)";
    }

    private static bool RootIsMountPoint()
    {
        try { return File.ReadLines("/proc/self/mountinfo").Any(l => l.Split(' ') is { Length: > 4 } f && f[4] == "/"); }
        catch (IOException) { return true; }
    }
}

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
    private readonly string _run = "t" + Guid.NewGuid().ToString("N")[..8];
    private readonly string _bed = Path.Combine(RepoRoot(), "tests", "nodebed", "nodebed");
    private MagnetarProcess? _server;
    private string _api = "", _bootstrap = "", _caFile = "";
    private HttpClient _http = new();

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
        await Magnum.Api(HttpMethod.Post, "/v1/clustertemplates", new JsonObject
        {
            ["name"] = "k8s", ["coe"] = "kubernetes", ["image_id"] = "debian-12", ["external_network_id"] = "public",
            ["flavor_id"] = "m1.small", ["master_flavor_id"] = "m1.medium", ["network_driver"] = "calico", ["master_lb_enabled"] = true,
            ["labels"] = new JsonObject { ["kube_tag"] = "v1.31.1", ["kube_package_source"] = "image" },
        }, HttpStatusCode.Created);
    }

    public async Task DisposeAsync()
    {
        Bed(["down", "--all-of-run", _run], check: false);
        if (_server is not null) await _server.DisposeAsync();
        _http.Dispose();
        try { Directory.Delete(_dir, true); } catch { }
    }

    [BootedNodeFact]
    public async Task A_cluster_of_three_booted_nodes_completes_through_their_reports()
    {
        var clock = Stopwatch.StartNew();
        Bed(["prepare"], timeoutSeconds: 900);
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
            var role = Exec(name, "sed", "-n", "s/^MAGNETAR_ROLE=//p", "/etc/magnetar/node.env").Trim();
            // cloud-init ran the user-data to the end, without errors; systemd has nothing failed.
            // (--wait: a node reports Ready from its runcmd, a moment before cloud-init's final stage ends)
            var status = Exec(name, "cloud-init", "status", "--wait", "--long").TrimStart('.', '\n'); // --wait prints dots while waiting
            Assert.True(status.StartsWith("status: done"), $"{name}: {status}");
            var result = JsonNode.Parse(Exec(name, "cat", "/run/cloud-init/result.json"))!; // cloud-init 22.4's summary of every stage
            Assert.True(result["v1"]!["errors"]!.AsArray().Count == 0, $"{name}: {result.ToJsonString()}");
            var system = Bed(["exec", name, "systemctl", "is-system-running"], check: false).Output.Trim();
            Assert.True(system == "running", $"{name}: system {system}: {Bed(["exec", name, "systemctl", "--failed", "--no-legend"], check: false).Output}");

            // The single-use credential of the user-data was consumed by the node's fetch: replayed from the node, refused.
            var token = WriteFiles(userData)["/etc/magnetar/bootstrap-token"].Trim();
            Assert.False(Bed(["exec", name, "test", "-e", "/etc/magnetar/bootstrap-token"], check: false).Code == 0, $"{name} kept its fetch credential");
            var replay = Exec(name, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", "/etc/magnetar/magnetar-ca.pem",
                "-X", "POST", "-H", $"Authorization: Bearer {token}", $"{_bootstrap}/bootstrap/v1/bundle");
            Assert.Equal("401", replay.Trim());
            Assert.Single(events, e => e.Reason == "NodeBundleFetched" && e.Message.StartsWith($"node {name} fetched "));

            // The stand-in kubeadm was run once, with the configuration Magnetar rendered into this node's bundle.
            var calls = Exec(name, "cat", "/var/log/nodebed/kubeadm.calls").Trim();
            var sub = role == "init" ? "init" : "join";
            Assert.Equal($"{sub} --config /etc/kubernetes/magnetar/kubeadm.yaml", calls);
            var given = Exec(name, "cat", $"/var/log/nodebed/kubeadm-1-{sub}.yaml");
            Assert.Equal(Exec(name, "cat", "/etc/kubernetes/magnetar/kubeadm.yaml"), given);
            CheckKubeadmConfig(given, role, name);

            // containerd's configuration is the real `containerd config default`, with systemd cgroups, and it runs.
            var containerd = Exec(name, "cat", "/etc/containerd/config.toml");
            Assert.Contains("SystemdCgroup = true", containerd);
            Assert.Contains("[plugins.\"io.containerd.grpc.v1.cri\"]", containerd);
            Assert.Equal("active", Bed(["exec", name, "systemctl", "is-active", "containerd", "kubelet"], check: false).Output.Split('\n')[0].Trim());

            // The units Magnetar installs pass systemd's own verification, on the node.
            var verify = Bed(["exec", name, "systemd-analyze", "verify", "/etc/systemd/system/magnetar-node-agent.service", "/etc/systemd/system/magnetar-node-agent.timer"], check: false);
            Assert.True(verify.Code == 0 && verify.Output.Trim() == "", $"{name}: systemd-analyze verify: {verify.Output}");

            // Files, modes and owners as the boot left them.
            var modes = Exec(name, "stat", "-c", "%n %a %U:%G", "/etc/magnetar/node.env", "/etc/magnetar/report-token", "/usr/local/sbin/magnetar-node",
                "/var/lib/kubelet/pki/kubelet-serving.key", "/var/lib/kubelet/pki/kubelet-serving.crt", "/etc/kubernetes/kubelet.conf");
            Assert.Contains("/etc/magnetar/node.env 644 root:root", modes);
            Assert.Contains("/etc/magnetar/report-token 600 root:root", modes);
            Assert.Contains("/usr/local/sbin/magnetar-node 755 root:root", modes);
            Assert.Contains("/var/lib/kubelet/pki/kubelet-serving.key 600 root:root", modes);
            Assert.Contains("/etc/kubernetes/kubelet.conf 600 root:root", modes);
            var serving = Exec(name, "cat", "/var/lib/kubelet/pki/kubelet-serving.crt");
            Assert.Equal("OK", Fixtures.OpensslVerify(ca, serving, "-purpose", "sslserver", "-verify_hostname", name));
            if (role == "worker")
            {
                Assert.Contains("/etc/kubernetes/magnetar/join.conf 600 root:root", Exec(name, "stat", "-c", "%n %a %U:%G", "/etc/kubernetes/magnetar/join.conf"));
                Assert.NotEqual(0, Bed(["exec", name, "test", "-e", "/etc/kubernetes/pki/ca.key"], check: false).Code);
                CheckKubeconfig(name, "/etc/kubernetes/magnetar/join.conf", ca, $"O=system:nodes, CN=system:node:{name}");
            }
            else
            {
                var pki = Exec(name, "stat", "-c", "%n %a %U:%G", "/etc/kubernetes/pki/ca.key", "/etc/kubernetes/pki/sa.key", "/etc/kubernetes/pki/etcd/ca.key", "/etc/kubernetes/pki/ca.crt");
                Assert.Contains("/etc/kubernetes/pki/ca.key 600 root:root", pki);
                Assert.Contains("/etc/kubernetes/pki/sa.key 600 root:root", pki);
                Assert.Contains("/etc/kubernetes/pki/etcd/ca.key 600 root:root", pki);
                Assert.Equal(ca.Trim(), Exec(name, "cat", "/etc/kubernetes/pki/ca.crt").Trim());
                // The first control-plane node applied the addons Magnetar put in its bundle.
                Assert.Contains("apply --server-side", Exec(name, "cat", "/var/log/nodebed/kubectl.calls"));
                Assert.Contains("calico", Exec(name, "cat", "/var/log/nodebed/kubectl-applied"));
            }
            // kubectl reads every kubeconfig on the node (the kubelet's is the stand-in kubeadm's on the first node).
            CheckKubeconfig(name, "/etc/kubernetes/kubelet.conf", ca, role == "init" ? null : $"O=system:nodes, CN=system:node:{name}");
        }

        // The agent's timer, enabled once the node was Ready, fires every 30 s: at least twice on every node.
        var deadline = DateTime.UtcNow.AddSeconds(150);
        foreach (var (name, _) in servers)
        {
            int runs;
            while ((runs = AgentRuns(name)) < 2 && DateTime.UtcNow < deadline) await Task.Delay(2000);
            Assert.True(runs >= 2, $"{name}: the agent ran {runs} time(s)\n{Exec(name, "journalctl", "--no-pager", "-u", "magnetar-node-agent.service")}");
            // every 30 s after the last run ended (AccuracySec=1s: systemd's default 1 min would let it drift to 90 s)
            var times = AgentRunTimes(name);
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
        Bed(["prepare"], timeoutSeconds: 900);
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
        Assert.Contains("status: running", Bed(["exec", name, "cloud-init", "status"], check: false).Output);
        Assert.Equal(0, Bed(["exec", name, "test", "-e", "/etc/magnetar/bootstrap-token"], check: false).Code);
    }

    [BootedNodeFact]
    public async Task A_node_whose_kubeadm_fails_reports_it_and_the_cluster_fails_naming_node_phase_and_log_tail()
    {
        Bed(["prepare"], timeoutSeconds: 900);
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
        var status = Bed(["exec", worker, "cloud-init", "status", "--wait", "--long"], check: false).Output;
        Assert.Contains("status: error", status);
        Assert.NotEqual(0, Bed(["exec", worker, "systemctl", "is-enabled", "magnetar-node-agent.timer"], check: false).Code);
    }

    [Fact]
    public void The_bed_and_its_stand_ins_are_shellcheck_clean_and_every_stand_in_says_so()
    {
        var dir = Path.GetDirectoryName(_bed)!;
        var standIns = Directory.GetFiles(Path.Combine(dir, "stand-ins"));
        Assert.All(standIns, f => Assert.Contains("STAND-IN", File.ReadAllText(f)));
        Assert.True(File.Exists("/usr/bin/shellcheck"), "shellcheck is not installed (scripts/test installs Debian's shellcheck)");
        var (code, text) = BootstrapArtifactTests.Run("shellcheck", [_bed, .. standIns.Where(f => !f.EndsWith(".service"))]);
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

    private void Boot(string name, string userData, params string[] options)
    {
        var file = Path.Combine(_dir, name + ".user-data");
        File.WriteAllText(file, userData);
        Bed(["boot", name, file, "--instance-id", $"{name}-{_run}", .. options]);
    }

    private (int Code, string Output) Bed(string[] args, bool check = true, int timeoutSeconds = 120)
    {
        var psi = new ProcessStartInfo(_bed, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.Environment["NODEBED_RUN"] = _run;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeoutSeconds * 1000)) { p.Kill(true); Assert.Fail($"nodebed {string.Join(' ', args)} took more than {timeoutSeconds} s"); }
        p.WaitForExit();
        var output = stdout.Result + stderr.Result;
        if (check) Assert.True(p.ExitCode == 0, $"nodebed {string.Join(' ', args)}: exit {p.ExitCode}\n{output}");
        return (p.ExitCode, output);
    }

    private string Exec(string node, params string[] command) => Bed(["exec", node, .. command]).Output;

    /// <summary>How many times magnetar-node-agent.service ran to success (what the timer starts).</summary>
    private int AgentRuns(string node) => AgentRunTimes(node).Count;

    /// <summary>When magnetar-node-agent.service finished its runs (seconds since the epoch, from the node's journal).</summary>
    private List<double> AgentRunTimes(string node)
        => Bed(["exec", node, "journalctl", "--no-pager", "-o", "short-unix", "-u", "magnetar-node-agent.service"], check: false).Output
            .Split('\n').Where(l => l.Contains(" Finished magnetar-node-agent.service"))
            .Select(l => double.Parse(l.Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture)).ToList();

    private string Diagnostics(List<(string Name, string UserData)> servers)
        => string.Join("\n", servers.Select(s => $"--- {s.Name}\n{Bed(["status", s.Name], check: false).Output}\n" +
            $"{Bed(["exec", s.Name, "tail", "-n", "40", "/var/log/cloud-init-output.log"], check: false).Output}")) + $"\n--- magnetar\n{_server!.Log}";

    /// <summary>The write_files of a #cloud-config user-data, path to content.</summary>
    private static Dictionary<string, string> WriteFiles(string userData)
    {
        var doc = new YamlStream();
        doc.Load(new StringReader(userData));
        var root = (YamlMappingNode)doc.Documents[0].RootNode;
        return ((YamlSequenceNode)root["write_files"]).Cast<YamlMappingNode>()
            .ToDictionary(f => ((YamlScalarNode)f["path"]).Value!, f => ((YamlScalarNode)f["content"]).Value!);
    }

    /// <summary>What the stand-in kubeadm got: documents of kubeadm's schema (extracted from its Go types) for the node's role.</summary>
    private static void CheckKubeadmConfig(string yaml, string role, string node)
    {
        var kinds = BootstrapArtifactTests.CheckKubeadmSchemas(yaml, $"{node}: ");
        Assert.Equal(role == "init" ? ["InitConfiguration", "ClusterConfiguration", "KubeletConfiguration"] : ["JoinConfiguration", "KubeletConfiguration"], kinds);
        var first = KubeadmConfigRenderer.Parse(yaml)[0];
        if (role == "init") Assert.Equal(node, Assert.IsType<Bootstrap.Kubeadm.V1Beta4.InitConfiguration>(first).NodeRegistration!.Name);
        else
        {
            var join = Assert.IsType<Bootstrap.Kubeadm.V1Beta4.JoinConfiguration>(first);
            Assert.Equal(node, join.NodeRegistration!.Name);
            Assert.Equal(role == "control-plane", join.ControlPlane is not null);
        }
    }

    /// <summary>kubectl reads the node's kubeconfig; its CA is the cluster's and its client certificate verifies against it.</summary>
    private void CheckKubeconfig(string node, string path, string ca, string? subject)
    {
        var file = Path.Combine(_dir, $"{node}-{Path.GetFileName(path)}");
        File.WriteAllText(file, Exec(node, "cat", path));
        var (code, text) = BootstrapArtifactTests.Run("kubectl", ["--kubeconfig", file, "config", "view", "--raw", "-o", "jsonpath={.users[0].user.client-certificate-data}"]);
        Assert.True(code == 0, $"{node}:{path}: kubectl config view: {text}");
        var cert = System.Text.Encoding.ASCII.GetString(Convert.FromBase64String(text.Trim()));
        (code, text) = BootstrapArtifactTests.Run("kubectl", ["--kubeconfig", file, "config", "view", "--raw", "-o", "jsonpath={.clusters[0].cluster.certificate-authority-data}"]);
        Assert.True(code == 0, text);
        Assert.Equal(ca.Trim(), System.Text.Encoding.ASCII.GetString(Convert.FromBase64String(text.Trim())).Trim());
        Assert.Equal("OK", Fixtures.OpensslVerify(ca, cert, "-purpose", "sslclient"));
        if (subject is not null) Assert.Equal(subject, Fixtures.Subject(cert));
    }

    private static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Magnetar.slnx"))) return d.FullName;
        throw new InvalidOperationException("Magnetar.slnx not found above " + AppContext.BaseDirectory);
    }
}
