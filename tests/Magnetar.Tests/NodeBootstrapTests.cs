using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Magnetar.Bootstrap;
using Magnetar.Bootstrap.Kubeadm;
using Magnetar.Bootstrap.Pki;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using YamlDotNet.RepresentationModel;

namespace Magnetar.Tests;

/// <summary>
/// A <b>test node</b> plays a booted VM's part, since no VM can boot here: it takes the user-data Magnetar handed to
/// the (simulated) cloud, writes its files under a directory as cloud-init would, and runs the real
/// <c>magnetar-node</c> script from it — which fetches the node's bundle from Magnetar over TLS with the single-use
/// credential and reports phases with curl. kubeadm, containerd and kubelet are not run: the phases they would
/// perform are stood in for by commands that succeed or fail on purpose. Magnetar runs as its own process, the
/// Magnum API on HTTP and the bootstrap endpoint on HTTPS with a certificate of a test CA, readiness from reports.
/// </summary>
public sealed partial class NodeBootstrapTests : IAsyncLifetime
{
    private const int ReportTimeoutSeconds = 50;
    private const int RotationStepTimeoutSeconds = 30;
    private readonly string _dir = Directory.CreateTempSubdirectory("node-bootstrap-").FullName;
    private MagnetarProcess? _server;
    private string _api = "", _bootstrap = "", _caFile = "";
    private HttpClient _http = new();

    public async Task InitializeAsync()
    {
        (_server, _api, _bootstrap, _caFile) = MagnetarProcess.WithBootstrapTls(_dir,
            $"--Magnetar:Bootstrap:NodeReportTimeoutSeconds={ReportTimeoutSeconds}",
            $"--Magnetar:Bootstrap:CaRotationStepTimeoutSeconds={RotationStepTimeoutSeconds}", "--Magnetar:Conductor:LeaseSeconds=2",
            "--Magnetar:Cloud:Simulated:StepDelayMs=100", "--Magnetar:Conductor:PollIntervalMs=100");
        var data = _server.DataDir;
        await _server.StartAsync(() => File.Exists(Path.Combine(data, "openrc-demo")));

        _http.Dispose();
        _http = await _server.ClientAsync();
        await Api(HttpMethod.Post, "/v1/clustertemplates", new JsonObject
        {
            ["name"] = "k8s", ["coe"] = "kubernetes", ["image_id"] = "fedora-coreos-40", ["external_network_id"] = "public",
            ["flavor_id"] = "m1.small", ["master_flavor_id"] = "m1.medium", ["network_driver"] = "calico", ["master_lb_enabled"] = true,
            ["labels"] = new JsonObject { ["kube_tag"] = "v1.31.1" },
        }, HttpStatusCode.Created);
    }

    public async Task DisposeAsync()
    {
        if (_server is not null) await _server.DisposeAsync();
        _http.Dispose();
        try { Directory.Delete(_dir, true); } catch { }
    }

    [Fact]
    public async Task Test_nodes_fetch_their_bundles_over_tls_report_phases_and_the_cluster_follows()
    {
        // A cluster whose nodes never call back: it must fail with that said, after the report timeout.
        var silent = await CreateCluster("silent", masters: 1, workers: 1);
        var c1 = await CreateCluster("c1", masters: 3, workers: 2);
        var c2 = await CreateCluster("c2", masters: 1, workers: 1);
        var c3 = await CreateCluster("c3", masters: 1, workers: 1);

        // ---- c1: every node boots, fetches, and goes through all its phases.
        var nodes = await WaitForServers(c1, 5);
        var booted = new Dictionary<string, TestNode>();
        foreach (var (name, userData) in nodes) booted[name] = TestNode.Boot(userData, Path.Combine(_dir, "nodes", name));
        var ca = (await Api(HttpMethod.Get, $"/v1/certificates/{c1}", null, HttpStatusCode.OK))["pem"]!.GetValue<string>();
        var servingIps = new Dictionary<string, List<string>>();
        var roles = new List<string>();
        foreach (var (name, node) in booted)
        {
            var token = node.File("etc/magnetar/bootstrap-token").Trim();
            Assert.StartsWith("mgb1.", token);
            await node.Ok("fetch");
            Assert.False(File.Exists(node.Path("etc/magnetar/bootstrap-token")));
            var env = node.File("etc/magnetar/node.env");
            var role = env.Split('\n').Single(l => l.StartsWith("MAGNETAR_ROLE=")).Split('=')[1];
            roles.Add(role);
            var kubeadm = KubeadmConfigRenderer.Parse(node.File("etc/kubernetes/magnetar/kubeadm.yaml"));
            // Every kubelet gets a serving certificate of the cluster CA for its name and its server's addresses.
            var servingPem = node.File("var/lib/kubelet/pki/kubelet-serving.crt");
            Assert.Equal("OK", Fixtures.OpensslVerify(ca, servingPem, "-purpose", "sslserver", "-verify_hostname", name));
            Assert.Equal(Pub(node.Path("var/lib/kubelet/pki/kubelet-serving.key")), Pub(node.Path("var/lib/kubelet/pki/kubelet-serving.crt"), cert: true));
            Assert.Equal("600", Mode(node.Path("var/lib/kubelet/pki/kubelet-serving.key")));
            servingIps[name] = Fixtures.IpSans(servingPem);
            Assert.NotEmpty(servingIps[name]);
            if (role != "init")
            {
                // Joining nodes discover the cluster from a kubeconfig with their own short-lived client certificate,
                // not a shared bootstrap token: system:node:<name> in system:nodes, from the cluster CA.
                var join = Assert.IsType<Bootstrap.Kubeadm.V1Beta4.JoinConfiguration>(kubeadm[0]);
                Assert.Equal("/etc/kubernetes/magnetar/join.conf", join.Discovery!.File!.KubeConfigPath);
                Assert.Null(join.Discovery.BootstrapToken);
                var (joinCa, joinCert) = KubeconfigCredentials(node.File("etc/kubernetes/magnetar/join.conf"));
                Assert.Equal(ca.Trim(), joinCa.Trim());
                Assert.Equal("OK", Fixtures.OpensslVerify(ca, joinCert, "-purpose", "sslclient"));
                Assert.Equal($"O=system:nodes, CN=system:node:{name}", Fixtures.Subject(joinCert));
                Assert.Equal("600", Mode(node.Path("etc/kubernetes/magnetar/join.conf")));
            }
            if (role == "worker")
            {
                Assert.False(File.Exists(node.Path("etc/kubernetes/pki/ca.key")), "a worker must not receive the CA key");
                // kubeadm join refuses a worker where pki/ca.crt exists (preflight); it writes the CA from join.conf.
                Assert.False(File.Exists(node.Path("etc/kubernetes/pki/ca.crt")), "kubeadm join writes a worker's ca.crt itself");
                Assert.Null(Assert.IsType<Bootstrap.Kubeadm.V1Beta4.JoinConfiguration>(kubeadm[0]).ControlPlane);
            }
            else
            {
                Assert.Equal(ca.Trim(), node.File("etc/kubernetes/pki/ca.crt").Trim());
                // kubeadm needs the CA keys on control-plane nodes; they match the CA the API serves.
                Assert.Equal(Pub(node.Path("etc/kubernetes/pki/ca.key")), Pub(node.Path("etc/kubernetes/pki/ca.crt"), cert: true));
                foreach (var f in new[] { "sa.key", "sa.pub", "front-proxy-ca.crt", "front-proxy-ca.key", "etcd/ca.crt", "etcd/ca.key" })
                    Assert.True(File.Exists(node.Path("etc/kubernetes/pki/" + f)), f);
                Assert.Equal("600", Mode(node.Path("etc/kubernetes/pki/ca.key")));
                if (role == "init")
                {
                    Assert.IsType<Bootstrap.Kubeadm.V1Beta4.InitConfiguration>(kubeadm[0]);
                    // The first control-plane node applies the addons: the CNI of the template (calico) with the pod CIDR;
                    // no cloud integration on the simulated cloud (it has no Keystone application credential to give).
                    var addons = string.Join("\n", Directory.GetFiles(node.Path("etc/kubernetes/magnetar/addons")).Order().Select(System.IO.File.ReadAllText));
                    Assert.Contains("calico", addons);
                    Assert.Contains("10.100.0.0/16", addons);
                    Assert.DoesNotContain("openstack-cloud-controller-manager", addons);
                }
                else Assert.NotNull(Assert.IsType<Bootstrap.Kubeadm.V1Beta4.JoinConfiguration>(kubeadm[0]).ControlPlane);
            }
            // Single use: the same credential again is refused.
            Assert.Equal("401", await Curl("-X", "POST", "-H", $"Authorization: Bearer {token}", _bootstrap + "/bootstrap/v1/bundle"));
            await node.Ok("report", "booted", "ok");
            await node.Ok("run", "containerd-ready", "true");
            await node.Ok("run", "kubeadm-done", "true");
            if (role == "init") await node.Ok("run", "addons-applied", "true");
        }
        Assert.Equal(["control-plane", "control-plane", "init", "worker", "worker"], roles.Order());

        // Plain HTTP is refused; a report credential cannot fetch a bundle; garbage is refused.
        Assert.Equal("403", await Curl("-X", "POST", _api + "/bootstrap/v1/bundle"));
        var reportToken = booted.First().Value.File("etc/magnetar/report-token").Trim();
        Assert.Equal("401", await Curl("-X", "POST", "-H", $"Authorization: Bearer {reportToken}", _bootstrap + "/bootstrap/v1/bundle"));
        Assert.Equal("401", await Curl("-X", "POST", "-H", "Authorization: Bearer mgb1.0000000000000000.nope", _bootstrap + "/bootstrap/v1/report?phase=ready&status=ok"));
        Assert.Equal("400", await Curl("-X", "POST", "-H", $"Authorization: Bearer {reportToken}", _bootstrap + "/bootstrap/v1/report?phase=bogus&status=ok"));

        // All but one node Ready: still in progress, and the reason names the one it waits for.
        var last = booted.Keys.Last();
        foreach (var (name, node) in booted.Where(b => b.Key != last)) await node.Ok("run", "ready", "true");
        var show = await WaitFor(c1, c => c["status_reason"]?.GetValue<string>() == $"waiting for nodes to report Ready: {last} (kubeadm-done)");
        Assert.Equal("CREATE_IN_PROGRESS", show["status"]!.GetValue<string>());
        await booted[last].Ok("run", "ready", "true");
        show = await WaitFor(c1, c => c["status"]!.GetValue<string>() != "CREATE_IN_PROGRESS");
        Assert.Equal("CREATE_COMPLETE", show["status"]!.GetValue<string>());
        // The serving certificates carry the addresses the cloud gave the servers, one server's each.
        var clusterAddresses = show["master_addresses"]!.AsArray().Concat(show["node_addresses"]!.AsArray()).Select(a => a!.GetValue<string>()).ToList();
        // (fixed and floating; the API shows the floating ones): each node's certificate names exactly one shown address.
        Assert.All(servingIps, n => Assert.Single(n.Value.Intersect(clusterAddresses)));
        Assert.Equal(clusterAddresses.Order(), servingIps.Values.SelectMany(ips => ips.Intersect(clusterAddresses)).Order());
        var conditions = show["conditions"]!.AsArray().ToDictionary(x => x!["type"]!.GetValue<string>(), x => x!);
        Assert.Equal("True", conditions["NodesReady"]!["status"]!.GetValue<string>());
        Assert.Equal("True", conditions["AddonsReady"]!["status"]!.GetValue<string>());
        Assert.Equal("applied by c1-default-master-0", conditions["AddonsReady"]!["message"]!.GetValue<string>());

        // ---- kubeconfig: the real CLI writes it; kubectl uses it against the init node's API server. No kube-apiserver
        // binary exists here: a stand-in serves /version over TLS with a serving certificate issued, as kubeadm does, from
        // the CA key of the node's bundle, and accepts only client certificates of that CA. The kubeconfig's server
        // (the simulated load balancer's address) is not routable, so kubectl is pointed at the stand-in with --server.
        var init = booted.Values.Single(n => n.File("etc/magnetar/node.env").Contains("MAGNETAR_ROLE=init"));
        var nodeCa = new CertificateAuthorityMaterial(init.File("etc/kubernetes/pki/ca.crt"), init.File("etc/kubernetes/pki/ca.key"));
        await using var apiServer = await ApiServerStandIn.StartAsync(nodeCa);
        await BringUp(c3, 2);
        var kube1 = await ClusterConfig("c1");
        var kube3 = await ClusterConfig("c3");
        var (rc, output) = BootstrapArtifactTests.Run("kubectl", ["--kubeconfig", kube1, "--server", apiServer.Url, "get", "--raw", "/version"]);
        Assert.True(rc == 0, $"kubectl with c1's kubeconfig: {output}");
        Assert.Equal("v1.31.1", JsonNode.Parse(output)!["gitVersion"]!.GetValue<string>());
        var accepted = apiServer.Accepted;
        Assert.True(accepted >= 1, $"{accepted} requests reached /version");
        (rc, output) = BootstrapArtifactTests.Run("kubectl", ["--kubeconfig", kube3, "--server", apiServer.Url, "get", "--raw", "/version"]);
        Assert.True(rc != 0, "c3's kubeconfig must not trust c1's API server: " + output);
        // Even told to trust c1's CA, c3's client certificate is refused by c1's API server.
        var c1CaFile = Path.Combine(_dir, "c1-ca.pem");
        System.IO.File.WriteAllText(c1CaFile, nodeCa.CertificatePem);
        (rc, output) = BootstrapArtifactTests.Run("kubectl", ["--kubeconfig", kube3, "--server", apiServer.Url, "--certificate-authority", c1CaFile, "get", "--raw", "/version"]);
        Assert.True(rc != 0, "c3's client certificate must be refused by c1's API server: " + output);
        Assert.Contains("Unable to connect to the server", output); // the TLS handshake, not the request, failed
        Assert.Equal(accepted, apiServer.Accepted);
        // A worker's join kubeconfig authenticates to c1's API server as that node (what the kubelet's TLS bootstrap sends).
        var worker = booted.First(b => b.Value.File("etc/magnetar/node.env").Contains("MAGNETAR_ROLE=worker"));
        (rc, output) = BootstrapArtifactTests.Run("kubectl", ["--kubeconfig", worker.Value.Path("etc/kubernetes/magnetar/join.conf"), "--server", apiServer.Url, "get", "--raw", "/version"]);
        Assert.True(rc == 0, $"kubectl with {worker.Key}'s join.conf: {output}");
        Assert.Equal($"O=system:nodes, CN=system:node:{worker.Key}", apiServer.Clients.Last());

        // ---- c2: the worker's kubeadm join fails; the cluster says which node, which phase, the exit code and the log tail.
        var c2Nodes = await WaitForServers(c2, 2);
        foreach (var (name, userData) in c2Nodes)
        {
            var node = TestNode.Boot(userData, Path.Combine(_dir, "nodes", name));
            await node.Ok("fetch");
            await node.Ok("report", "booted", "ok");
            await node.Ok("run", "containerd-ready", "true");
            if (name.Contains("worker"))
            {
                var (code, text) = await node.Run("run", "kubeadm-done", "bash", "-c",
                    "echo '[preflight] Running pre-flight checks'; echo 'error execution phase kubelet-start: timed out waiting for the condition' >&2; exit 3");
                Assert.Equal(3, code);
                Assert.Contains("kubeadm-done failed with exit code 3", text);
            }
        }
        show = await WaitFor(c2, c => c["status"]!.GetValue<string>() != "CREATE_IN_PROGRESS");
        Assert.Equal("CREATE_FAILED", show["status"]!.GetValue<string>());
        var reason = show["status_reason"]!.GetValue<string>();
        Assert.StartsWith("node c2-default-worker-0 (nodegroup default-worker, worker) failed at phase kubeadm-done with exit code 3; last log lines:", reason);
        Assert.Contains("error execution phase kubelet-start: timed out waiting for the condition", reason);

        // ---- silent: nobody fetched, nobody reported.
        show = await WaitFor(silent, c => c["status"]!.GetValue<string>() != "CREATE_IN_PROGRESS", ReportTimeoutSeconds + 60);
        Assert.Equal("CREATE_FAILED", show["status"]!.GetValue<string>());
        Assert.Matches($"^node silent-default-(master|worker)-0 \\(nodegroup default-(master|worker)\\) never contacted Magnetar within {ReportTimeoutSeconds} seconds", show["status_reason"]!.GetValue<string>());

        // Deleting removes every bootstrap record with the clusters.
        foreach (var c in new[] { c1, c2, c3, silent }) await Api(HttpMethod.Delete, $"/v1/clusters/{c}", null, HttpStatusCode.NoContent);
        foreach (var c in new[] { c1, c2, c3, silent })
        {
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while ((await _http.GetAsync($"{_api}/v1/clusters/{c}")).StatusCode != HttpStatusCode.NotFound)
            {
                Assert.True(DateTime.UtcNow < deadline, $"cluster {c} not deleted\n{_server!.Log}");
                await Task.Delay(200);
            }
        }
        Assert.Equal(0L, Scalar("SELECT COUNT(*) FROM node_credentials"));
        Assert.Equal(0L, Scalar("SELECT COUNT(*) FROM node_states"));

        // No secret in the server's log: not the credentials, not the keys, not the kubeadm token.
        var log = _server!.Log;
        Assert.DoesNotContain("PRIVATE KEY", log);
        Assert.DoesNotContain("mgb1.", log);
        foreach (var (name, node) in booted)
        {
            Assert.DoesNotContain(node.File("etc/magnetar/report-token").Trim().Split('.')[2], log);
            var token = System.Text.RegularExpressions.Regex.Match(node.File("etc/kubernetes/magnetar/kubeadm.yaml"), "token: ([a-z0-9]{6}\\.[a-z0-9]{16})").Groups[1].Value;
            if (node.File("etc/magnetar/node.env").Contains("MAGNETAR_ROLE=init"))
            {
                Assert.NotEmpty(token); // kubeadm init always makes one; nothing of Magnetar's uses it to join
                Assert.DoesNotContain(token.Split('.')[1], log);
            }
            else
            {
                Assert.Empty(token);
                var key = System.Text.RegularExpressions.Regex.Match(node.File("etc/kubernetes/magnetar/join.conf"), "client-key-data: (\\S+)").Groups[1].Value;
                Assert.True(key.Length > 100, "join.conf has no client key");
                Assert.DoesNotContain(key[..100], log);
            }
        }
    }

    // ---------------------------------------------------------------- helpers

    /// <summary>Every node of the cluster boots, fetches and reports all its phases; the cluster must complete.</summary>
    private async Task<Dictionary<string, TestNode>> BringUp(string cluster, int count)
    {
        var nodes = new Dictionary<string, TestNode>();
        foreach (var (name, userData) in await WaitForServers(cluster, count))
        {
            var node = nodes[name] = TestNode.Boot(userData, Path.Combine(_dir, "nodes", name));
            await node.Ok("fetch");
            await node.Ok("report", "booted", "ok");
            foreach (var phase in new[] { "containerd-ready", "kubeadm-done" }) await node.Ok("run", phase, "true");
            if (node.File("etc/magnetar/node.env").Contains("MAGNETAR_ROLE=init")) await node.Ok("run", "addons-applied", "true");
            await node.Ok("run", "ready", "true");
        }
        var show = await WaitFor(cluster, c => c["status"]!.GetValue<string>() != "CREATE_IN_PROGRESS");
        Assert.Equal("CREATE_COMPLETE", show["status"]!.GetValue<string>());
        return nodes;
    }

    /// <summary><c>openstack coe cluster config NAME</c> as the demo user; the path of the kubeconfig it wrote.</summary>
    private async Task<string> ClusterConfig(string name, string tag = "")
    {
        var dir = Directory.CreateDirectory(Path.Combine(_dir, "kubeconfig-" + name + tag)).FullName;
        var home = Directory.CreateDirectory(Path.Combine(_dir, "home-" + name)).FullName;
        var r = await OpenStackCli.ExecAsync("openstack", home, OpenStackCli.ReadOpenrc(Path.Combine(_server!.DataDir, "openrc-demo")),
            ["coe", "cluster", "config", name, "--dir", dir], 90);
        Assert.True(r.ExitCode == 0, $"cluster config {name}: {r.Stderr}{r.Stdout}");
        return Path.Combine(dir, "config");
    }

    private async Task<string> CreateCluster(string name, int masters, int workers)
    {
        var r = await Api(HttpMethod.Post, "/v1/clusters", new JsonObject
        {
            ["name"] = name, ["cluster_template_id"] = "k8s", ["master_count"] = masters, ["node_count"] = workers,
        }, HttpStatusCode.Accepted);
        return r["uuid"]!.GetValue<string>();
    }

    private MagnumSession Magnum => new(() => _http, () => _server!.Log);
    private Task<JsonNode> Api(HttpMethod method, string path, JsonObject? body, HttpStatusCode expect) => Magnum.Api(method, path, body, expect);
    private Task<JsonNode> WaitFor(string cluster, Func<JsonNode, bool> done, int seconds = 60) => Magnum.WaitFor(cluster, done, seconds);

    /// <summary>The simulated Nova's record of the cluster's servers and the user-data each was created with.</summary>
    private async Task<List<(string Name, string UserData)>> WaitForServers(string cluster, int count)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            using var db = new SqliteConnection($"Data Source={_server!.DataDir}/magnetar.db;Mode=ReadOnly");
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = "SELECT Name, UserData FROM simulated_resources WHERE ClusterUuid = $c AND Kind = 'server' AND UserData IS NOT NULL ORDER BY Name";
            cmd.Parameters.AddWithValue("$c", cluster);
            var list = new List<(string, string)>();
            using (var r = cmd.ExecuteReader()) while (r.Read()) list.Add((r.GetString(0), r.GetString(1)));
            if (list.Count == count) return list;
            Assert.True(DateTime.UtcNow < deadline, $"{list.Count} of {count} servers of {cluster}\n{_server.Log}");
            await Task.Delay(200);
        }
    }

    private long Scalar(string sql)
    {
        using var db = new SqliteConnection($"Data Source={_server!.DataDir}/magnetar.db;Mode=ReadOnly");
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        return (long)cmd.ExecuteScalar()!;
    }

    private async Task<string> Curl(params string[] args)
    {
        var (code, text) = await Task.Run(() => BootstrapArtifactTests.Run("curl", ["-sS", "--cacert", _caFile, "-o", "/dev/null", "-w", "%{http_code}", .. args]));
        return code == 0 ? text.Trim() : "curl failed: " + text;
    }

    private static string Pub(string file, bool cert = false)
    {
        var (code, text) = BootstrapArtifactTests.Run("bash", ["-c", cert ? $"openssl x509 -in '{file}' -noout -pubkey" : $"openssl pkey -in '{file}' -pubout"]);
        Assert.True(code == 0, text);
        return text.Trim();
    }

    /// <summary>The CA and client certificate (PEM) of a kubeconfig, as kubectl reads them.</summary>
    private static (string Ca, string ClientCert) KubeconfigCredentials(string yaml)
    {
        var config = ReadKubeconfig(yaml);
        return (FromBase64(config.Clusters.Single().ClusterEndpoint.CertificateAuthorityData),
            FromBase64(config.Users.Single().UserCredentials.ClientCertificateData));
    }

    private static string Mode(string file) => Convert.ToString((int)File.GetUnixFileMode(file) & 0x1FF, 8);

}

/// <summary>
/// Stands in for a cluster's kube-apiserver (no binary exists here): TLS with a serving certificate issued from the
/// cluster CA, client certificates required and verified against that CA only, GET /version.
/// </summary>
public sealed class ApiServerStandIn : IAsyncDisposable
{
    private readonly Microsoft.AspNetCore.Builder.WebApplication _app;
    private int _accepted;
    public string Url { get; private set; } = "";
    public int Accepted => _accepted;
    /// <summary>The subjects of the client certificates of accepted requests, in order.</summary>
    public System.Collections.Concurrent.ConcurrentQueue<string> Clients { get; } = new();

    private ApiServerStandIn(Microsoft.AspNetCore.Builder.WebApplication app) => _app = app;

    /// <summary>
    /// Serves with a certificate of <paramref name="ca"/>; accepts client certificates of that CA, or, given
    /// <paramref name="clientCaPem"/>, of the CAs in that file's content — kube-apiserver's --client-ca-file.
    /// </summary>
    public static async Task<ApiServerStandIn> StartAsync(CertificateAuthorityMaterial ca, string? clientCaPem = null)
    {
        var names = ClusterPki.ApiServerNames("10.254.0.0/16", "cluster.local", ["127.0.0.1"]);
        var serving = ClusterPki.IssueCertificate(ca, "kube-apiserver", [], CertificatePurpose.Server, names, TimeSpan.FromDays(1));
        using var pem = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(serving.CertificatePem, serving.PrivateKeyPem);
        var certificate = System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadPkcs12(pem.Export(System.Security.Cryptography.X509Certificates.X509ContentType.Pkcs12), null);
        var roots = new System.Security.Cryptography.X509Certificates.X509Certificate2Collection();
        roots.ImportFromPem(clientCaPem ?? ca.CertificatePem);
        var builder = Microsoft.AspNetCore.Builder.WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l => l.UseHttps(new Microsoft.AspNetCore.Server.Kestrel.Https.HttpsConnectionAdapterOptions
        {
            ServerCertificate = certificate,
            ClientCertificateMode = Microsoft.AspNetCore.Server.Kestrel.Https.ClientCertificateMode.RequireCertificate,
            ClientCertificateValidation = (client, _, _) =>
            {
                using var chain = new System.Security.Cryptography.X509Certificates.X509Chain();
                chain.ChainPolicy.TrustMode = System.Security.Cryptography.X509Certificates.X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.AddRange(roots);
                chain.ChainPolicy.RevocationMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck;
                chain.ChainPolicy.ApplicationPolicy.Add(new System.Security.Cryptography.Oid("1.3.6.1.5.5.7.3.2"));
                return chain.Build(client);
            },
        })));
        var app = builder.Build();
        var standIn = new ApiServerStandIn(app);
        app.MapGet("/version", (Microsoft.AspNetCore.Http.HttpContext http) =>
        {
            Interlocked.Increment(ref standIn._accepted);
            standIn.Clients.Enqueue(http.Connection.ClientCertificate?.Subject ?? "");
            return Microsoft.AspNetCore.Http.Results.Json(new { major = "1", minor = "31", gitVersion = "v1.31.1", platform = "linux/amd64" });
        });
        await app.StartAsync();
        standIn.Url = app.Urls.First().Replace("127.0.0.1", "127.0.0.1");
        return standIn;
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}

/// <summary>A directory that plays a booted server: cloud-init's write_files applied under it, then magnetar-node run from it.</summary>
internal sealed class TestNode(string root)
{
    public static TestNode Boot(string userData, string root)
    {
        Assert.StartsWith("#cloud-config\n", userData);
        var yaml = new YamlStream();
        yaml.Load(new StringReader(userData));
        foreach (YamlMappingNode f in (YamlSequenceNode)((YamlMappingNode)yaml.Documents[0].RootNode)["write_files"])
        {
            var path = System.IO.Path.Combine(root, ((YamlScalarNode)f["path"]).Value!.TrimStart('/'));
            Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
            System.IO.File.WriteAllText(path, ((YamlScalarNode)f["content"]).Value);
            System.IO.File.SetUnixFileMode(path, (UnixFileMode)Convert.ToInt32(((YamlScalarNode)f["permissions"]).Value, 8));
        }
        return new TestNode(root);
    }

    public string Path(string relative) => System.IO.Path.Combine(root, relative);
    public string File(string relative) => System.IO.File.ReadAllText(Path(relative));

    public Task<(int, string)> Run(params string[] args) => RunWith(new Dictionary<string, string>(), args);

    public Task<(int, string)> RunWith(Dictionary<string, string> env, params string[] args)
    {
        env["MAGNETAR_NODE_ROOT"] = root;
        env.TryAdd("MAGNETAR_FETCH_INTERVAL", "1");
        env.TryAdd("MAGNETAR_FETCH_ATTEMPTS", "60");
        return Task.Run(() => BootstrapArtifactTests.Run("bash", [Path("usr/local/sbin/magnetar-node"), .. args], env));
    }

    public async Task Ok(params string[] args)
    {
        var (code, text) = await Run(args);
        Assert.True(code == 0, $"magnetar-node {string.Join(' ', args)} exited {code}: {text}");
    }
}
