using System.Diagnostics;
using System.Text.Json.Nodes;
using Magnetar.Bootstrap.Kubeadm;
using YamlDotNet.RepresentationModel;

namespace Magnetar.Tests;

/// <summary>Runs when podman and runc are installed; required (fails instead of skipping) when MAGNETAR_REQUIRE_INTEGRATION=1.</summary>
public sealed class BootedNodeFactAttribute : FactAttribute
{
    public BootedNodeFactAttribute()
    {
        Skip = NodeBed.Unavailable();
    }
}

/// <summary>
/// tests/nodebed driven from a test: boots servers' user-data as Debian nodes under systemd (see <see cref="BootedNodeTests"/>),
/// runs commands in them, and checks what a boot left on each node. Every node of one <see cref="NodeBed"/> belongs to
/// its run id; <see cref="DisposeAsync"/> takes down exactly those.
/// </summary>
internal sealed class NodeBed(string dir) : IAsyncDisposable
{
    private readonly string _script = Path.Combine(RepoRoot(), "tests", "nodebed", "nodebed");
    private readonly HashSet<string> _booted = [];

    public string Run { get; } = "t" + Guid.NewGuid().ToString("N")[..8];
    public string Script => _script;

    /// <summary>Why booted nodes cannot run here, or null when they can.</summary>
    public static string? Unavailable()
    {
        // podman makes its mounts private with "mount --make-rslave /", which fails where / is not a mount point: a
        // plain chroot (a bookworm chroot used to reproduce CI was one). Every VM and container has / mounted.
        if (!RootIsMountPoint())
            return "booted nodes need / to be a mount point (podman cannot run in a plain chroot; bind-mount the chroot's directory on itself)";
        if (Environment.GetEnvironmentVariable("MAGNETAR_REQUIRE_INTEGRATION") == "1") return null;
        var missing = new[] { "/usr/bin/podman", "/usr/sbin/runc", "/usr/sbin/debootstrap" }.Where(f => !File.Exists(f)).ToList();
        if (missing.Count > 0) return $"booted nodes need {string.Join(", ", missing.Select(Path.GetFileName))} (Debian packages; scripts/test installs them)";
        return Environment.UserName != "root" ? "booted nodes need root (podman --privileged with runc, debootstrap)" : null;
    }

    private static bool RootIsMountPoint()
    {
        try { return File.ReadLines("/proc/self/mountinfo").Any(l => l.Split(' ') is { Length: > 4 } f && f[4] == "/"); }
        catch (IOException) { return true; }
    }

    /// <summary>The cached root filesystem (built on first use, a minute or more).</summary>
    public void Prepare() => Bed(["prepare"], timeoutSeconds: 900);

    public IReadOnlyCollection<string> Booted { get { lock (_booted) return _booted.ToList(); } }

    /// <summary>Boots <paramref name="name"/> with exactly <paramref name="userData"/> as its NoCloud user-data.</summary>
    public void Boot(string name, string userData, params string[] options)
    {
        var file = Path.Combine(dir, name + ".user-data");
        File.WriteAllText(file, userData);
        Bed(["boot", name, file, "--instance-id", $"{name}-{Run}", .. options]);
        lock (_booted) _booted.Add(name);
    }

    /// <summary>Stops a node (its server was deleted).</summary>
    public void Down(string name)
    {
        Bed(["down", name], check: false);
        lock (_booted) _booted.Remove(name);
    }

    public ValueTask DisposeAsync()
    {
        Bed(["down", "--all-of-run", Run], check: false);
        return ValueTask.CompletedTask;
    }

    public (int Code, string Output) Bed(string[] args, bool check = true, int timeoutSeconds = 120)
    {
        var psi = new ProcessStartInfo(_script, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.Environment["NODEBED_RUN"] = Run;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeoutSeconds * 1000)) { p.Kill(true); Assert.Fail($"nodebed {string.Join(' ', args)} took more than {timeoutSeconds} s"); }
        p.WaitForExit();
        var output = stdout.Result + stderr.Result;
        if (check) Assert.True(p.ExitCode == 0, $"nodebed {string.Join(' ', args)}: exit {p.ExitCode}\n{output}");
        return (p.ExitCode, output);
    }

    public string Exec(string node, params string[] command) => Bed(["exec", node, .. command]).Output;

    public bool Test(string node, params string[] command) => Bed(["exec", node, .. command], check: false).Code == 0;

    /// <summary>When magnetar-node-agent.service finished its runs (seconds since the epoch, from the node's journal).</summary>
    public List<double> AgentRunTimes(string node)
        => Bed(["exec", node, "journalctl", "--no-pager", "-o", "short-unix", "-u", "magnetar-node-agent.service"], check: false).Output
            .Split('\n').Where(l => l.Contains(" Finished magnetar-node-agent.service"))
            .Select(l => double.Parse(l.Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture)).ToList();

    /// <summary>Each node's cloud-init status and the end of its cloud-init output, for an assertion's message.</summary>
    public string Diagnostics(IEnumerable<string> nodes)
        => string.Join("\n", nodes.Select(n => $"--- {n}\n{Bed(["status", n], check: false).Output}\n" +
            $"{Bed(["exec", n, "tail", "-n", "40", "/var/log/cloud-init-output.log"], check: false).Output}\n" +
            $"{Bed(["exec", n, "journalctl", "--no-pager", "-n", "30", "-u", "magnetar-node-agent.service"], check: false).Output}"));

    /// <summary>The role the node's bundle gave it (init, control-plane, worker).</summary>
    public string Role(string node) => Exec(node, "sed", "-n", "s/^MAGNETAR_ROLE=//p", "/etc/magnetar/node.env").Trim();

    /// <summary>
    /// What a first boot must have left on <paramref name="node"/>: cloud-init done without errors, systemd running,
    /// the fetch credential consumed (replayed from the node: 401), kubeadm run once with the bundle's configuration,
    /// containerd configured and running, the agent's units valid, modes and owners, certificates and kubeconfigs of
    /// the cluster CA <paramref name="ca"/>.
    /// </summary>
    public void CheckFirstBoot(string node, string userData, string ca, string bootstrapUrl)
    {
        var role = Role(node);
        // cloud-init ran the user-data to the end, without errors; systemd has nothing failed.
        // (--wait: a node reports Ready from its runcmd, a moment before cloud-init's final stage ends)
        var status = Exec(node, "cloud-init", "status", "--wait", "--long").TrimStart('.', '\n'); // --wait prints dots while waiting
        Assert.True(status.StartsWith("status: done"), $"{node}: {status}");
        var result = JsonNode.Parse(Exec(node, "cat", "/run/cloud-init/result.json"))!; // cloud-init 22.4's summary of every stage
        Assert.True(result["v1"]!["errors"]!.AsArray().Count == 0, $"{node}: {result.ToJsonString()}");
        var system = Bed(["exec", node, "systemctl", "is-system-running"], check: false).Output.Trim();
        Assert.True(system == "running", $"{node}: system {system}: {Bed(["exec", node, "systemctl", "--failed", "--no-legend"], check: false).Output}");

        // The single-use credential of the user-data was consumed by the node's fetch: replayed from the node, refused.
        var token = WriteFiles(userData)["/etc/magnetar/bootstrap-token"].Trim();
        Assert.False(Test(node, "test", "-e", "/etc/magnetar/bootstrap-token"), $"{node} kept its fetch credential");
        var replay = Exec(node, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", "/etc/magnetar/magnetar-ca.pem",
            "-X", "POST", "-H", $"Authorization: Bearer {token}", $"{bootstrapUrl}/bootstrap/v1/bundle");
        Assert.Equal("401", replay.Trim());

        // The stand-in kubeadm was run once, with the configuration Magnetar rendered into this node's bundle.
        var calls = Exec(node, "cat", "/var/log/nodebed/kubeadm.calls").Trim();
        var sub = role == "init" ? "init" : "join";
        Assert.Equal($"{sub} --config /etc/kubernetes/magnetar/kubeadm.yaml", calls);
        var given = Exec(node, "cat", $"/var/log/nodebed/kubeadm-1-{sub}.yaml");
        Assert.Equal(Exec(node, "cat", "/etc/kubernetes/magnetar/kubeadm.yaml"), given);
        CheckKubeadmConfig(given, role, node);

        // containerd's configuration is the real `containerd config default`, with systemd cgroups, and it runs.
        var containerd = Exec(node, "cat", "/etc/containerd/config.toml");
        Assert.Contains("SystemdCgroup = true", containerd);
        Assert.Contains("[plugins.\"io.containerd.grpc.v1.cri\"]", containerd);
        Assert.Equal("active", Bed(["exec", node, "systemctl", "is-active", "containerd", "kubelet"], check: false).Output.Split('\n')[0].Trim());

        // The units Magnetar installs pass systemd's own verification, on the node.
        var verify = Bed(["exec", node, "systemd-analyze", "verify", "/etc/systemd/system/magnetar-node-agent.service", "/etc/systemd/system/magnetar-node-agent.timer"], check: false);
        Assert.True(verify.Code == 0 && verify.Output.Trim() == "", $"{node}: systemd-analyze verify: {verify.Output}");

        // Files, modes and owners as the boot left them.
        var modes = Exec(node, "stat", "-c", "%n %a %U:%G", "/etc/magnetar/node.env", "/etc/magnetar/report-token", "/usr/local/sbin/magnetar-node",
            "/var/lib/kubelet/pki/kubelet-serving.key", "/var/lib/kubelet/pki/kubelet-serving.crt", "/etc/kubernetes/kubelet.conf");
        Assert.Contains("/etc/magnetar/node.env 644 root:root", modes);
        Assert.Contains("/etc/magnetar/report-token 600 root:root", modes);
        Assert.Contains("/usr/local/sbin/magnetar-node 755 root:root", modes);
        Assert.Contains("/var/lib/kubelet/pki/kubelet-serving.key 600 root:root", modes);
        Assert.Contains("/etc/kubernetes/kubelet.conf 600 root:root", modes);
        var serving = Exec(node, "cat", "/var/lib/kubelet/pki/kubelet-serving.crt");
        Assert.Equal("OK", Fixtures.OpensslVerify(ca, serving, "-purpose", "sslserver", "-verify_hostname", node));
        if (role == "worker")
        {
            Assert.Contains("/etc/kubernetes/magnetar/join.conf 600 root:root", Exec(node, "stat", "-c", "%n %a %U:%G", "/etc/kubernetes/magnetar/join.conf"));
            Assert.False(Test(node, "test", "-e", "/etc/kubernetes/pki/ca.key"), $"{node}: a worker has the CA key");
            Assert.Equal(Certificates(ca), Certificates(Exec(node, "cat", "/etc/kubernetes/pki/ca.crt"))); // kubeadm join's, from join.conf
            CheckKubeconfig(node, "/etc/kubernetes/magnetar/join.conf", ca, $"O=system:nodes, CN=system:node:{node}");
        }
        else
        {
            var pki = Exec(node, "stat", "-c", "%n %a %U:%G", "/etc/kubernetes/pki/ca.key", "/etc/kubernetes/pki/sa.key", "/etc/kubernetes/pki/etcd/ca.key", "/etc/kubernetes/pki/ca.crt");
            Assert.Contains("/etc/kubernetes/pki/ca.key 600 root:root", pki);
            Assert.Contains("/etc/kubernetes/pki/sa.key 600 root:root", pki);
            Assert.Contains("/etc/kubernetes/pki/etcd/ca.key 600 root:root", pki);
            Assert.Equal(ca.Trim(), Exec(node, "cat", "/etc/kubernetes/pki/ca.crt").Trim());
            if (role == "init")
            {
                // The first control-plane node applied the addons Magnetar put in its bundle.
                Assert.Contains("apply --server-side", Exec(node, "cat", "/var/log/nodebed/kubectl.calls"));
                Assert.NotEmpty(Exec(node, "cat", "/var/log/nodebed/kubectl-applied").Trim());
            }
        }
        // kubectl reads every kubeconfig on the node (the kubelet's is the stand-in kubeadm's on the first node).
        CheckKubeconfig(node, "/etc/kubernetes/kubelet.conf", ca, role == "init" ? null : $"O=system:nodes, CN=system:node:{node}");
    }

    /// <summary>The write_files of a #cloud-config user-data, path to content.</summary>
    public static Dictionary<string, string> WriteFiles(string userData)
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

    /// <summary>
    /// kubectl reads the node's kubeconfig; it trusts <paramref name="ca"/> (all of it: a bundle mid-rotation) and its
    /// client certificate, named in it or embedded, verifies against <paramref name="signer"/> (default: <paramref name="ca"/>).
    /// </summary>
    public void CheckKubeconfig(string node, string path, string ca, string? subject, string? signer = null)
    {
        var file = Path.Combine(dir, $"{node}-{Path.GetFileName(path)}");
        File.WriteAllText(file, Exec(node, "cat", path));
        string View(string jsonpath)
        {
            var (code, text) = BootstrapArtifactTests.Run("kubectl", ["--kubeconfig", file, "config", "view", "--raw", "-o", $"jsonpath={jsonpath}"]);
            Assert.True(code == 0, $"{node}:{path}: kubectl config view: {text}");
            return text.Trim();
        }
        var data = View("{.users[0].user.client-certificate-data}");
        var cert = data != "" ? System.Text.Encoding.ASCII.GetString(Convert.FromBase64String(data)) : Exec(node, "cat", View("{.users[0].user.client-certificate}"));
        Assert.Equal(Certificates(ca), Certificates(System.Text.Encoding.ASCII.GetString(Convert.FromBase64String(View("{.clusters[0].cluster.certificate-authority-data}")))));
        Assert.Equal("OK", Fixtures.OpensslVerify(signer ?? ca, cert, "-purpose", "sslclient"));
        if (subject is not null) Assert.Equal(subject, Fixtures.Subject(cert));
    }

    /// <summary>The certificates of a PEM bundle, in order, without what surrounds them (a key in the same file).</summary>
    public static List<string> Certificates(string pem)
        => System.Text.RegularExpressions.Regex.Matches(pem, "-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----")
            .Select(m => m.Value.Replace("\n", "").Replace("\r", "")).ToList();

    public static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Magnetar.slnx"))) return d.FullName;
        throw new InvalidOperationException("Magnetar.slnx not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>
/// Plays the hypervisor of the simulated cloud for one cluster on a <see cref="NodeBed"/>: every second it boots each
/// new server of the cluster from the user-data it was created with, and takes down the node of each server that is
/// being deleted, keeping what its stand-in kubeadm was asked (<see cref="Retired"/>). A server name reused with other
/// user-data is a new machine.
/// </summary>
internal sealed class BedHypervisor : IAsyncDisposable
{
    private readonly NodeBed _bed;
    private readonly Func<List<(string Name, string UserData, bool Deleting)>> _servers;
    private readonly string[] _options;
    private readonly CancellationTokenSource _stop = new();
    private readonly Dictionary<string, string> _running = [];
    private readonly Task _loop;

    public BedHypervisor(NodeBed bed, Func<List<(string Name, string UserData, bool Deleting)>> servers, params string[] bootOptions)
    {
        (_bed, _servers, _options) = (bed, servers, bootOptions);
        _loop = Task.Run(Loop);
    }

    /// <summary>The stand-in kubeadm's calls on each node taken down, by name.</summary>
    public System.Collections.Concurrent.ConcurrentDictionary<string, string> Retired { get; } = new();

    /// <summary>Every boot in order: the server's name and its user-data.</summary>
    public System.Collections.Concurrent.ConcurrentQueue<(string Name, string UserData)> Boots { get; } = new();

    /// <summary>What failed last in the loop (a boot that did not start), for an assertion's message.</summary>
    public string? Error { get; private set; }

    /// <summary>The nodes running now, name to user-data.</summary>
    public Dictionary<string, string> Running { get { lock (_running) return new(_running); } }

    private async Task Loop()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                var servers = _servers();
                var live = servers.Where(s => !s.Deleting).ToDictionary(s => s.Name, s => s.UserData);
                foreach (var (name, userData) in Running.Where(r => live.GetValueOrDefault(r.Key) != r.Value))
                {
                    Retired[name] = _bed.Bed(["exec", name, "cat", "/var/log/nodebed/kubeadm.calls"], check: false).Output;
                    _bed.Down(name);
                    lock (_running) _running.Remove(name);
                }
                foreach (var (name, userData) in live.Where(s => !Running.ContainsKey(s.Key)))
                {
                    _bed.Boot(name, userData, _options);
                    lock (_running) _running[name] = userData;
                    Boots.Enqueue((name, userData));
                }
            }
            catch (Exception e) when (e is not OperationCanceledException) { Error = e.Message; }
            try { await Task.Delay(1000, _stop.Token); } catch (OperationCanceledException) { }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        await _loop;
    }
}
