using System.Collections.Concurrent;
using Magnetar.Bootstrap.Pki;

namespace Magnetar.Tests;

/// <summary>
/// Plays a cluster's VMs for the day-2 tests: boots every new server of the cluster from its user-data (fetch, phases,
/// Ready, its Node in the stand-in API, its etcd member for a control-plane node), runs each live node's agent
/// (<c>magnetar-node task</c>, what magnetar-node-agent.timer runs), stops nodes whose servers are deleted, and samples
/// how many workers serve.
/// </summary>
/// <summary>
/// Plays the VMs: boots every new server of the cluster from its user-data (fetch, phases, Ready, its Node in the
/// stand-in API), runs each live node's agent, stops nodes whose servers are deleted, and samples how many workers serve.
/// </summary>
internal sealed class TestFleet : IAsyncDisposable
{
    private readonly string _dir, _stubs, _cluster;
    private readonly int _apiPort;
    private readonly ServerDatabase _db;
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

    /// <summary>
    /// Stand-ins for what a node has and this machine has not, each logging its call to the node's stub.log: the kubelet
    /// (its version is the one node.env asks for), kubeadm (<c>reset phase remove-etcd-member</c> removes the node's own
    /// member from <see cref="EtcdMembers"/>), and kubectl for the one call the node script makes through it here, etcdctl
    /// in the node's etcd pod (<c>member list</c>, <c>member remove ID</c>).
    /// </summary>
    public static string WriteStubs(string dir)
    {
        Directory.CreateDirectory(dir);
        void Stub(string name, string body)
        {
            File.WriteAllText(Path.Combine(dir, name), "#!/bin/bash\necho \"" + name + " $*\" >>\"$MAGNETAR_NODE_ROOT/stub.log\"\n" + body);
            File.SetUnixFileMode(Path.Combine(dir, name), (UnixFileMode)0b111_101_101);
        }
        Stub("kubelet", "sed -n \"s/^MAGNETAR_KUBE_VERSION='\\{0,1\\}\\([^']*\\)'\\{0,1\\}$/Kubernetes \\1/p\" \"$MAGNETAR_NODE_ROOT/etc/magnetar/node.env\"\n");
        Stub("kubeadm", """
            case " $* " in
              *" reset phase remove-etcd-member "*)
                node=$(sed -n "s/^MAGNETAR_NODE='\{0,1\}\([^']*\)'\{0,1\}$/\1/p" "$MAGNETAR_NODE_ROOT/etc/magnetar/node.env")
                sed -i "/, started, $node, /d" "$STUB_ETCD_MEMBERS" ;;
            esac

            """);
        Stub("kubectl", """
            case " $* " in
              *" etcdctl "*" member list "*) cat "$STUB_ETCD_MEMBERS" ;;
              *" etcdctl "*" member remove "*)
                id=${*: -1}
                grep -q "^$id, " "$STUB_ETCD_MEMBERS" || { echo "Error: etcdserver: member not found" >&2; exit 1; }
                sed -i "/^$id, /d" "$STUB_ETCD_MEMBERS"
                echo "Member $id removed from cluster" ;;
              *) echo "kubectl stand-in: unexpected call" >&2; exit 1 ;;
            esac

            """);
        return dir;
    }

    /// <param name="stubs">a directory put first on the nodes' PATH (stand-ins for kubeadm, the kubelet, kubectl)</param>
    /// <param name="apiPort">where the stand-in API server listens (Magnetar's ClusterApiUrlOverride)</param>
    public TestFleet(string dir, string stubs, int apiPort, ServerDatabase db, string cluster)
    {
        (_dir, _stubs, _apiPort, _db, _cluster) = (dir, stubs, apiPort, db, cluster);
        EtcdMembers = Path.Combine(dir, "etcd-members");
        File.WriteAllText(EtcdMembers, "");
        _loop = Task.Run(LoopAsync);
    }

    /// <summary>
    /// etcd's member list as the nodes' etcdctl stand-in sees it (<c>id, started, name, peer URL, client URL, false</c>):
    /// a control-plane node is added when it boots (kubeadm join adds its member); stand-ins remove members.
    /// </summary>
    public string EtcdMembers { get; }
    /// <summary>The most members etcd had at once (after each join).</summary>
    public int MaxEtcdMembers { get; private set; }
    /// <summary>Workers that booted with a kubelet newer than a control-plane node still serving (the skew policy forbids it).</summary>
    public ConcurrentQueue<string> SkewViolations { get; } = new();
    public List<string> MemberNames() => File.ReadAllLines(EtcdMembers).Where(l => l.Length > 0).Select(l => l.Split(", ")[2]).ToList();

    public string Root(string node) => Booted.TryGetValue(node, out var n) ? n.Path("") : Path.Combine(_dir, "nodes", node);
    /// <summary>The booted nodes whose servers exist now (read from the cloud, not the loop's last round).</summary>
    public HashSet<string> Live() => _db.Servers(_cluster).Where(s => !s.Deleting && _userData.GetValueOrDefault(s.Name) == s.UserData).Select(s => s.Name).ToHashSet();
    public void Silence(string node) => _silenced[Booted[node]] = true;
    public string VersionOf(string node) => Booted[node].File("etc/magnetar/node.env").Split('\n').Single(l => l.StartsWith("MAGNETAR_KUBE_VERSION=")).Split('=')[1].Trim('\'');

    /// <summary>The stand-in API server with the cluster CA of the first control-plane node, every live node registered.</summary>
    public async Task<KubernetesApiStandIn> StandInAsync(bool restart = false)
    {
        var init = Booted.Values.First(n => n.File("etc/magnetar/node.env").Contains("MAGNETAR_ROLE=init"));
        _ca ??= new CertificateAuthorityMaterial(init.File("etc/kubernetes/pki/ca.crt"), init.File("etc/kubernetes/pki/ca.key"));
        var api = await KubernetesApiStandIn.StartAsync(_ca, _apiPort);
        foreach (var n in Live()) api.AddNode(n, VersionOf(n));
        _api = api;
        _complete = true; // samples count from here (the cluster is complete)
        return api;
    }

    private async Task LoopAsync()
    {
        var env = new Dictionary<string, string> { ["PATH"] = $"{_stubs}:{Environment.GetEnvironmentVariable("PATH")}", ["STUB_ETCD_MEMBERS"] = EtcdMembers };
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                var servers = _db.Servers(_cluster);
                _live = servers.Where(s => !s.Deleting && _userData.GetValueOrDefault(s.Name) == s.UserData).Select(s => s.Name).ToHashSet();
                foreach (var s in servers.Where(s => !s.Deleting && _userData.GetValueOrDefault(s.Name) != s.UserData))
                {
                    // A new server: cloud-init runs the node script, which fetches its bundle and reports each phase.
                    var node = TestNode.Boot(s.UserData, Path.Combine(_dir, "nodes", $"{s.Name}.{Boots.Count}"));
                    // Kubernetes' version skew: a kubelet must not be newer than the API servers it joins.
                    var version = node.File("etc/magnetar/node.env").Split('\n').Single(l => l.StartsWith("MAGNETAR_KUBE_VERSION=")).Split('=')[1].Trim('\'');
                    if (node.File("etc/magnetar/node.env").Contains("MAGNETAR_ROLE=worker"))
                        foreach (var m in servers.Where(m => !m.Deleting && m.Name.Contains("-master-") && _userData.GetValueOrDefault(m.Name) == m.UserData))
                            if (Magnetar.Domain.KubeVersion.Compare(version, VersionOf(m.Name)) > 0) SkewViolations.Enqueue($"{s.Name} ({version}) booted beside {m.Name} ({VersionOf(m.Name)})");
                    if ((await node.RunWith(new(env), "fetch")).Item1 != 0) continue; // its addresses are not known yet: next round
                    Booted[s.Name] = node;
                    _userData[s.Name] = s.UserData;
                    Boots.Enqueue((s.Name, VersionOf(s.Name), DateTime.UtcNow));
                    await node.RunWith(new(env), "report", "booted", "ok");
                    foreach (var phase in new[] { "containerd-ready", "kubeadm-done" }) await node.RunWith(new(env), "run", phase, "true");
                    if (node.File("etc/magnetar/node.env").Contains("MAGNETAR_ROLE=init")) await node.RunWith(new(env), "run", "addons-applied", "true");
                    if (!node.File("etc/magnetar/node.env").Contains("MAGNETAR_ROLE=worker"))
                    {
                        // kubeadm join --control-plane adds the node's etcd member.
                        File.AppendAllText(EtcdMembers, $"{Guid.NewGuid().ToString("N")[..16]}, started, {s.Name}, https://{s.Name}:2380, https://{s.Name}:2379, false\n");
                        MaxEtcdMembers = Math.Max(MaxEtcdMembers, MemberNames().Count);
                    }
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
