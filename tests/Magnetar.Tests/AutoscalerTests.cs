using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using Grpc.Core;
using Grpc.Net.Client;
using Magnetar.Autoscaler.ExternalGrpc;
using Magnetar.Bootstrap.Secrets;

namespace Magnetar.Tests;

/// <summary>
/// Magnetar as the cluster-autoscaler's externalgrpc cloud provider, on the simulated cloud, through the server
/// process's mutual-TLS listener: a gRPC client plays the autoscaler's sequence with the credential Magnetar issues a
/// cluster (<c>magnetar autoscaler-credential</c>, the same issuance as the addon's), then the refusals.
/// </summary>
public sealed class AutoscalerTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("autoscaler-").FullName;
    private readonly int _grpcPort = MagnetarProcess.FreePort();
    private readonly string _url = $"http://127.0.0.1:{MagnetarProcess.FreePort()}";
    private MagnetarProcess? _server;
    private HttpClient _http = new();
    private readonly MagnumSession _magnum;
    private readonly ServerDatabase _db;
    private readonly List<GrpcChannel> _channels = [];

    public AutoscalerTests()
    {
        _magnum = new MagnumSession(() => _http, () => _server?.Log ?? "");
        _db = new ServerDatabase(() => Path.Combine(_dir, "data"));
    }

    private string[] ServerArgs(bool conductor) =>
    [
        "--Magnetar:Cloud:Simulated:StepDelayMs=100", "--Magnetar:Conductor:PollIntervalMs=100",
        $"--Magnetar:Autoscaler:Port={_grpcPort}", "--Magnetar:Autoscaler:Listen=127.0.0.1", $"--Magnetar:Conductor:Enabled={conductor}",
    ];

    private async Task StartAsync(bool conductor)
    {
        if (_server is not null) await _server.KillAsync();
        var data = Path.Combine(_dir, "data");
        _server = new MagnetarProcess(_url, data, ServerArgs(conductor));
        await _server.StartAsync(() => File.Exists(Path.Combine(data, "openrc-demo")));
        _http.Dispose();
        _http = await _server.ClientAsync();
    }

    public async Task InitializeAsync()
    {
        await StartAsync(conductor: true);
        await _magnum.Api(HttpMethod.Post, "/v1/clustertemplates", new JsonObject
        {
            ["name"] = "k8s", ["coe"] = "kubernetes", ["image_id"] = "fedora-coreos-40", ["external_network_id"] = "public",
            ["flavor_id"] = "m1.small", ["master_flavor_id"] = "m1.medium", ["master_lb_enabled"] = true,
            ["labels"] = new JsonObject { ["kube_tag"] = "v1.31.1" },
        }, HttpStatusCode.Created);
        await _magnum.Api(HttpMethod.Post, "/v1/clustertemplates", new JsonObject
        {
            ["name"] = "k8s-1.32", ["coe"] = "kubernetes", ["image_id"] = "fedora-coreos-40", ["external_network_id"] = "public",
            ["flavor_id"] = "m1.small", ["master_flavor_id"] = "m1.medium", ["master_lb_enabled"] = true,
            ["labels"] = new JsonObject { ["kube_tag"] = "v1.32.1" },
        }, HttpStatusCode.Created);
    }

    public async Task DisposeAsync()
    {
        foreach (var c in _channels) c.Dispose();
        _http.Dispose();
        if (_server is not null) await _server.KillAsync();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private async Task<string> CreateAsync(string name, int nodes, JsonObject labels)
    {
        var r = await _magnum.Api(HttpMethod.Post, "/v1/clusters", new JsonObject
        {
            ["name"] = name, ["cluster_template_id"] = "k8s", ["master_count"] = 1, ["node_count"] = nodes, ["labels"] = labels,
        }, HttpStatusCode.Accepted);
        return r["uuid"]!.GetValue<string>();
    }

    private static JsonObject AutoscalingLabels(int min, int max) => new()
    {
        ["kube_tag"] = "v1.31.1", ["auto_scaling_enabled"] = "true", ["min_node_count"] = $"{min}", ["max_node_count"] = $"{max}",
    };

    private Task<string> CredentialAsync(string cluster, int expectExit = 0, string? expectError = null)
        => AutoscalerHarness.CredentialAsync(_dir, cluster, [.. ServerArgs(false), "--data-dir", Path.Combine(_dir, "data")], expectExit, expectError);

    private CloudProvider.CloudProviderClient Client(string caDir, X509Certificate2? clientCertificate)
    {
        var (client, channel) = AutoscalerHarness.Client(_grpcPort, caDir, clientCertificate);
        _channels.Add(channel);
        return client;
    }

    private static X509Certificate2 Pfx(X509Certificate2 c) => AutoscalerHarness.Pfx(c);
    private static X509Certificate2 ClientCertificate(string dir) => AutoscalerHarness.ClientCertificate(dir);

    private List<(string Name, string Group, string? ServerId)> Nodes(string cluster)
    {
        using var db = _db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "SELECT NodeName, NodeGroup, ServerId FROM node_states WHERE ClusterUuid = $c AND NodeName NOT LIKE '%~retired-%' AND (ServerStatus IS NULL OR ServerStatus <> 'DELETED') ORDER BY Id";
        cmd.Parameters.AddWithValue("$c", cluster);
        var list = new List<(string, string, string?)>();
        using var r = cmd.ExecuteReader();
        while (r.Read()) list.Add((r.GetString(0), r.GetString(1), r.IsDBNull(2) ? null : r.GetString(2)));
        return list;
    }

    private List<string> WorkerServers(string cluster) =>
        _db.Servers(cluster).Where(s => !s.Deleting && s.Name.Contains("default-worker")).Select(s => s.Name).ToList();

    private static async Task<RpcException> Refused(Func<Task> call, StatusCode code, string text)
    {
        var e = await Assert.ThrowsAsync<RpcException>(call);
        Assert.True(e.StatusCode == code, $"expected {code}, got {e.StatusCode}: {e.Status.Detail}");
        Assert.Contains(text, e.Status.Detail);
        return e;
    }

    [Fact]
    public async Task The_autoscalers_sequence_scales_exactly_what_it_asks_within_min_and_max_and_only_its_own_cluster()
    {
        var a = await CreateAsync("scaled", 2, AutoscalingLabels(1, 5));
        var b = await CreateAsync("other", 1, AutoscalingLabels(1, 3));
        var plain = await CreateAsync("plain", 1, new JsonObject { ["kube_tag"] = "v1.31.1" });
        foreach (var c in new[] { a, b, plain }) await _magnum.WaitFor(c, x => x["status"]!.GetValue<string>() == "CREATE_COMPLETE");
        // The labels set the default worker's range, as Magnum's do.
        var ng = await _magnum.Api(HttpMethod.Get, $"/v1/clusters/{a}/nodegroups/default-worker", null, HttpStatusCode.OK);
        Assert.Equal(1, ng["min_node_count"]!.GetValue<int>());
        Assert.Equal(5, ng["max_node_count"]!.GetValue<int>());

        var credA = await CredentialAsync("scaled");
        await CredentialAsync(plain, 1, "does not have auto_scaling_enabled=true");
        await AddonCarriesTheCredentialAsync(a, credA);
        var ca = Client(credA, ClientCertificate(credA));

        // Refresh → NodeGroups → NodeGroupForNode for every node.
        await ca.RefreshAsync(new RefreshRequest());
        var groups = (await ca.NodeGroupsAsync(new NodeGroupsRequest())).NodeGroups;
        var group = Assert.Single(groups); // the control plane is not the autoscaler's
        Assert.Equal(("default-worker", 1, 5), (group.Id, group.MinSize, group.MaxSize));
        var nodes = Nodes(a);
        Assert.Equal(3, nodes.Count);
        Assert.All(nodes, n => Assert.False(string.IsNullOrEmpty(n.ServerId), $"no server id recorded for {n.Name}"));
        foreach (var n in nodes)
        {
            var byProviderId = await ca.NodeGroupForNodeAsync(new NodeGroupForNodeRequest { Node = new ExternalGrpcNode { Name = n.Name, ProviderID = "openstack:///" + n.ServerId } });
            var byName = await ca.NodeGroupForNodeAsync(new NodeGroupForNodeRequest { Node = new ExternalGrpcNode { Name = n.Name } });
            var expected = n.Group == "default-worker" ? "default-worker" : "";
            Assert.Equal(expected, byProviderId.NodeGroup.Id);
            Assert.Equal(expected, byName.NodeGroup.Id);
        }
        var instances = (await ca.NodeGroupNodesAsync(new NodeGroupNodesRequest { Id = "default-worker" })).Instances;
        Assert.Equal(nodes.Where(n => n.Group == "default-worker").Select(n => "openstack:///" + n.ServerId).Order(), instances.Select(i => i.Id).Order());
        Assert.All(instances, i => Assert.Equal(InstanceStatus.Types.InstanceState.InstanceRunning, i.Status.InstanceState));

        // IncreaseSize by 2: the target is 4 at once, and two servers appear.
        await ca.NodeGroupIncreaseSizeAsync(new NodeGroupIncreaseSizeRequest { Id = "default-worker", Delta = 2 });
        Assert.Equal(4, (await ca.NodeGroupTargetSizeAsync(new NodeGroupTargetSizeRequest { Id = "default-worker" })).TargetSize);
        Assert.Equal("UPDATE_IN_PROGRESS", (await _magnum.Cluster(a))["status"]!.GetValue<string>());
        await _magnum.WaitFor(a, x => x["status"]!.GetValue<string>() == "UPDATE_COMPLETE");
        var servers = WorkerServers(a);
        Assert.Equal(4, servers.Count);
        Assert.Equal(4, (await ca.NodeGroupNodesAsync(new NodeGroupNodesRequest { Id = "default-worker" })).Instances
            .Count(i => i.Status.InstanceState == InstanceStatus.Types.InstanceState.InstanceRunning));

        // DeleteNodes of one named node — not the newest: exactly that one goes.
        var victim = Nodes(a).Where(n => n.Group == "default-worker").ElementAt(1);
        await ca.NodeGroupDeleteNodesAsync(new NodeGroupDeleteNodesRequest
        {
            Id = "default-worker", Nodes = { new ExternalGrpcNode { Name = victim.Name, ProviderID = "openstack:///" + victim.ServerId } },
        });
        Assert.Equal(3, (await ca.NodeGroupTargetSizeAsync(new NodeGroupTargetSizeRequest { Id = "default-worker" })).TargetSize);
        await _magnum.WaitFor(a, x => x["status"]!.GetValue<string>() == "UPDATE_COMPLETE" && x["node_count"]!.GetValue<int>() == 3);
        Assert.Equal(servers.Where(s => s != victim.Name).Order(), WorkerServers(a).Order());
        var events = _db.Events(a).Where(e => e.Reason == "Autoscaler").Select(e => e.Message).ToList();
        Assert.Contains("autoscaler: +2 nodes in default-worker (2 → 4)", events);
        Assert.Contains($"autoscaler: removing {victim.Name} from default-worker (4 → 3)", events);

        // Beyond max and below min.
        await Refused(() => ca.NodeGroupIncreaseSizeAsync(new NodeGroupIncreaseSizeRequest { Id = "default-worker", Delta = 3 }).ResponseAsync,
            StatusCode.OutOfRange, "exceeds its max_node_count (5)");
        // A new max_node_count (openstack coe nodegroup update) is what the next Refresh sees.
        using (var patch = new HttpRequestMessage(HttpMethod.Patch, $"/v1/clusters/{a}/nodegroups/default-worker")
        { Content = new StringContent("""[{"op": "replace", "path": "/max_node_count", "value": 6}]""", System.Text.Encoding.UTF8, "application/json") })
        using (var patched = await _http.SendAsync(patch))
            Assert.True(patched.StatusCode == HttpStatusCode.Accepted, await patched.Content.ReadAsStringAsync());
        await _magnum.WaitFor(a, x => x["status"]!.GetValue<string>() == "UPDATE_COMPLETE");
        await ca.RefreshAsync(new RefreshRequest());
        Assert.Equal(6, Assert.Single((await ca.NodeGroupsAsync(new NodeGroupsRequest())).NodeGroups).MaxSize);
        var left = Nodes(a).Where(n => n.Group == "default-worker").ToList();
        await Refused(() => ca.NodeGroupDeleteNodesAsync(new NodeGroupDeleteNodesRequest
        {
            Id = "default-worker", Nodes = { left.Select(n => new ExternalGrpcNode { Name = n.Name, ProviderID = "openstack:///" + n.ServerId }) },
        }).ResponseAsync, StatusCode.FailedPrecondition, "below its min_node_count (1)");
        await Refused(() => ca.NodeGroupTargetSizeAsync(new NodeGroupTargetSizeRequest { Id = "default-master" }).ResponseAsync, StatusCode.NotFound, "no worker nodegroup 'default-master'");

        // Another cluster's certificate sees and scales only its own cluster.
        var credB = await CredentialAsync(b);
        var cb = Client(credB, ClientCertificate(credB));
        var bGroup = Assert.Single((await cb.NodeGroupsAsync(new NodeGroupsRequest())).NodeGroups);
        Assert.Equal((1, 3), (bGroup.MinSize, bGroup.MaxSize));
        var aWorker = left[0];
        Assert.Equal("", (await cb.NodeGroupForNodeAsync(new NodeGroupForNodeRequest { Node = new ExternalGrpcNode { Name = aWorker.Name, ProviderID = "openstack:///" + aWorker.ServerId } })).NodeGroup.Id);
        await Refused(() => cb.NodeGroupDeleteNodesAsync(new NodeGroupDeleteNodesRequest
        {
            Id = "default-worker", Nodes = { new ExternalGrpcNode { Name = aWorker.Name, ProviderID = "openstack:///" + aWorker.ServerId } },
        }).ResponseAsync, StatusCode.NotFound, "is not a node of default-worker in cluster other");
        Assert.Equal(3, WorkerServers(a).Count);

        // No certificate, one of another CA, an expired one of the right CA: refused, saying why.
        var none = Client(credA, null);
        await Refused(() => none.NodeGroupsAsync(new NodeGroupsRequest()).ResponseAsync, StatusCode.Unauthenticated, "no client certificate");
        var foreign = Client(credA, SelfSigned($"cluster-autoscaler:{a}"));
        await Refused(() => foreign.NodeGroupsAsync(new NodeGroupsRequest()).ResponseAsync, StatusCode.Unauthenticated, "not issued by this Magnetar's autoscaler CA");
        var expired = Client(credA, ExpiredFromMagnetarsCa(a));
        await Refused(() => expired.NodeGroupsAsync(new NodeGroupsRequest()).ResponseAsync, StatusCode.Unauthenticated, "expired");
        // The matrix: every call of the service × {no certificate, another CA's, expired} is Unauthenticated and changes nothing.
        var aNode = new ExternalGrpcNode { Name = left[0].Name, ProviderID = "openstack:///" + left[0].ServerId };
        var calls = new (string Name, Func<CloudProvider.CloudProviderClient, Task> Call)[]
        {
            ("NodeGroups", x => x.NodeGroupsAsync(new NodeGroupsRequest()).ResponseAsync),
            ("NodeGroupForNode", x => x.NodeGroupForNodeAsync(new NodeGroupForNodeRequest { Node = aNode }).ResponseAsync),
            ("PricingNodePrice", x => x.PricingNodePriceAsync(new PricingNodePriceRequest { Node = aNode }).ResponseAsync),
            ("PricingPodPrice", x => x.PricingPodPriceAsync(new PricingPodPriceRequest()).ResponseAsync),
            ("GPULabel", x => x.GPULabelAsync(new GPULabelRequest()).ResponseAsync),
            ("GetAvailableGPUTypes", x => x.GetAvailableGPUTypesAsync(new GetAvailableGPUTypesRequest()).ResponseAsync),
            ("Cleanup", x => x.CleanupAsync(new CleanupRequest()).ResponseAsync),
            ("Refresh", x => x.RefreshAsync(new RefreshRequest()).ResponseAsync),
            ("NodeGroupTargetSize", x => x.NodeGroupTargetSizeAsync(new NodeGroupTargetSizeRequest { Id = "default-worker" }).ResponseAsync),
            ("NodeGroupIncreaseSize", x => x.NodeGroupIncreaseSizeAsync(new NodeGroupIncreaseSizeRequest { Id = "default-worker", Delta = 1 }).ResponseAsync),
            ("NodeGroupDeleteNodes", x => x.NodeGroupDeleteNodesAsync(new NodeGroupDeleteNodesRequest { Id = "default-worker", Nodes = { aNode } }).ResponseAsync),
            ("NodeGroupDecreaseTargetSize", x => x.NodeGroupDecreaseTargetSizeAsync(new NodeGroupDecreaseTargetSizeRequest { Id = "default-worker", Delta = -1 }).ResponseAsync),
            ("NodeGroupNodes", x => x.NodeGroupNodesAsync(new NodeGroupNodesRequest { Id = "default-worker" }).ResponseAsync),
            ("NodeGroupTemplateNodeInfo", x => x.NodeGroupTemplateNodeInfoAsync(new NodeGroupTemplateNodeInfoRequest { Id = "default-worker" }).ResponseAsync),
            ("NodeGroupGetOptions", x => x.NodeGroupGetOptionsAsync(new NodeGroupAutoscalingOptionsRequest { Id = "default-worker" }).ResponseAsync),
        };
        foreach (var (who, client) in new[] { ("none", none), ("foreign CA", foreign), ("expired", expired) })
            foreach (var (name, call) in calls)
            {
                var e = await Assert.ThrowsAsync<RpcException>(() => call(client));
                Assert.True(e.StatusCode == StatusCode.Unauthenticated, $"{name} with {who}: {e.StatusCode} {e.Status.Detail}");
            }
        Assert.Equal(3, (await ca.NodeGroupTargetSizeAsync(new NodeGroupTargetSizeRequest { Id = "default-worker" })).TargetSize);
        Assert.Equal(3, WorkerServers(a).Count);
        // The calls answered by the caller's own certificate: Unimplemented only where the interface allows it.
        foreach (var name in new[] { "PricingNodePrice", "PricingPodPrice", "NodeGroupTemplateNodeInfo" })
            await Refused(() => calls.Single(c => c.Name == name).Call(ca), StatusCode.Unimplemented, "");
        Assert.Equal("nvidia.com/gpu.present", (await ca.GPULabelAsync(new GPULabelRequest())).Label);
        Assert.Empty((await ca.GetAvailableGPUTypesAsync(new GetAvailableGPUTypesRequest())).GpuTypes);
        var options = (await ca.NodeGroupGetOptionsAsync(new NodeGroupAutoscalingOptionsRequest
        {
            Id = "default-worker", Defaults = new NodeGroupAutoscalingOptions { ScaleDownUtilizationThreshold = 0.5 },
        })).NodeGroupAutoscalingOptions;
        Assert.Equal(0.5, options.ScaleDownUtilizationThreshold); // the defaults, no nodegroup label overriding them
        // The API port does not serve the autoscaler's service.
        using (var apiChannel = GrpcChannel.ForAddress(_url))
        {
            var e = await Assert.ThrowsAsync<RpcException>(() => new CloudProvider.CloudProviderClient(apiChannel).NodeGroupsAsync(new NodeGroupsRequest()).ResponseAsync);
            Assert.NotEqual(StatusCode.OK, e.StatusCode);
        }

        // Without a conductor (stopped) a scale-up waits: DecreaseTargetSize takes back only what was not created.
        await StartAsync(conductor: false);
        await ca.NodeGroupIncreaseSizeAsync(new NodeGroupIncreaseSizeRequest { Id = "default-worker", Delta = 2 });
        Assert.Equal(5, (await ca.NodeGroupTargetSizeAsync(new NodeGroupTargetSizeRequest { Id = "default-worker" })).TargetSize);
        await Refused(() => ca.NodeGroupDecreaseTargetSizeAsync(new NodeGroupDecreaseTargetSizeRequest { Id = "default-worker", Delta = -3 }).ResponseAsync,
            StatusCode.FailedPrecondition, "would delete existing nodes (3 exist)");
        await ca.NodeGroupDecreaseTargetSizeAsync(new NodeGroupDecreaseTargetSizeRequest { Id = "default-worker", Delta = -2 });
        Assert.Equal(3, (await ca.NodeGroupTargetSizeAsync(new NodeGroupTargetSizeRequest { Id = "default-worker" })).TargetSize);
        // An upgrade in progress: the autoscaler is refused, saying so.
        await _magnum.Api(HttpMethod.Post, $"/v1/clusters/{b}/actions/upgrade", new JsonObject { ["cluster_template"] = "k8s-1.32" }, HttpStatusCode.Accepted);
        await Refused(() => cb.NodeGroupIncreaseSizeAsync(new NodeGroupIncreaseSizeRequest { Id = "default-worker", Delta = 1 }).ResponseAsync,
            StatusCode.FailedPrecondition, "cluster other is being upgraded");

        // The conductor back: the resize converges with the servers it had; deleting the clusters leaves nothing.
        await StartAsync(conductor: true);
        await _magnum.WaitFor(a, x => x["status"]!.GetValue<string>() == "UPDATE_COMPLETE" && x["node_count"]!.GetValue<int>() == 3, 120);
        Assert.Equal(3, WorkerServers(a).Count);
        foreach (var c in new[] { a, b, plain }) await _magnum.Api(HttpMethod.Delete, $"/v1/clusters/{c}", null, HttpStatusCode.NoContent);
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (_db.Count("SELECT COUNT(*) FROM clusters") > 0 && DateTime.UtcNow < deadline) await Task.Delay(300);
        Assert.Equal(0, _db.Count("SELECT COUNT(*) FROM clusters"));
        Assert.Equal(0, _db.Count("SELECT COUNT(*) FROM simulated_resources"));
        // A deleted cluster's certificate is void.
        await Refused(() => ca.NodeGroupsAsync(new NodeGroupsRequest()).ResponseAsync, StatusCode.Unauthenticated, "no longer exists");
    }

    /// <summary>
    /// The addon rendered with a credential Magnetar issued: parsed strictly through KubernetesClient, its cloud-config
    /// parses and names the mounted files, its client certificate verifies against Magnetar's CA with openssl, the
    /// image is the cluster minor's release; without the label there is no addon.
    /// </summary>
    private async Task AddonCarriesTheCredentialAsync(string cluster, string dir)
    {
        string Read(string f) => File.ReadAllText(Path.Combine(dir, f));
        var config = new Magnetar.Bootstrap.Addons.AutoscalerCloudConfig($"127.0.0.1:{_grpcPort}", Read("ca.crt"), Read("tls.crt"), Read("tls.key"));
        Magnetar.Bootstrap.Addons.AddonValues Values(string enabled) => new(cluster, "scaled", "v1.31.1", "calico", "10.100.0.0/16", "10.254.0.0/16",
            new Dictionary<string, string> { ["auto_scaling_enabled"] = enabled }, null, config);
        Assert.DoesNotContain(Magnetar.Bootstrap.Addons.AddonRenderer.Render(Values("false")), x => x.FileName == "50-cluster-autoscaler.yaml");
        var addon = Assert.Single(Magnetar.Bootstrap.Addons.AddonRenderer.Render(Values("true")), x => x.FileName == "50-cluster-autoscaler.yaml");
        var objects = k8s.KubernetesYaml.LoadAllFromString(addon.Yaml, strict: true);
        var secret = Assert.Single(objects.OfType<k8s.Models.V1Secret>());
        var deployment = Assert.Single(objects.OfType<k8s.Models.V1Deployment>());
        Assert.Contains(objects, o => o is k8s.Models.V1ClusterRole);
        var container = Assert.Single(deployment.Spec.Template.Spec.Containers);
        Assert.Equal("registry.k8s.io/autoscaling/cluster-autoscaler:v1.31.0", container.Image);
        Assert.Contains("--cloud-provider=externalgrpc", container.Command);
        Assert.Contains("--cloud-config=/config/cloud-config", container.Command);
        Assert.Equal("/config", Assert.Single(container.VolumeMounts).MountPath);
        Assert.Equal(secret.Metadata.Name, Assert.Single(deployment.Spec.Template.Spec.Volumes).Secret.SecretName);
        Assert.True(deployment.Spec.Template.Spec.NodeSelector.ContainsKey("node-role.kubernetes.io/control-plane"));
        var cloudConfig = new YamlDotNet.Serialization.DeserializerBuilder().Build().Deserialize<Dictionary<string, string>>(secret.StringData["cloud-config"]);
        Assert.Equal(new Dictionary<string, string>
        {
            ["address"] = $"127.0.0.1:{_grpcPort}", ["cert"] = "/config/tls.crt", ["key"] = "/config/tls.key", ["cacert"] = "/config/ca.crt", ["grpc_timeout"] = "10s",
        }, cloudConfig);
        var check = Path.Combine(_dir, "addon-check");
        Directory.CreateDirectory(check);
        foreach (var key in new[] { "ca.crt", "tls.crt", "tls.key" }) File.WriteAllText(Path.Combine(check, key), secret.StringData[key]);
        var verify = await OpenStackCli.ExecAsync("openssl", _dir, null, ["verify", "-purpose", "sslclient", "-CAfile", Path.Combine(check, "ca.crt"), Path.Combine(check, "tls.crt")]);
        Assert.True(verify.ExitCode == 0 && verify.Stdout.Contains(": OK"), verify.Stdout + verify.Stderr);
        var subject = await OpenStackCli.ExecAsync("openssl", _dir, null, ["x509", "-noout", "-subject", "-in", Path.Combine(check, "tls.crt")]);
        Assert.Contains($"cluster-autoscaler:{cluster}", subject.Stdout);
        // The key in the Secret is the certificate's.
        using var pair = X509Certificate2.CreateFromPem(secret.StringData["tls.crt"], secret.StringData["tls.key"]);
        Assert.True(pair.HasPrivateKey);
    }

    private static X509Certificate2 SelfSigned(string cn)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest($"CN={cn}", key, HashAlgorithmName.SHA256);
        req.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], false));
        using var c = req.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        return Pfx(c);
    }

    /// <summary>A certificate for the right cluster from Magnetar's own autoscaler CA (unsealed with the data directory's key), expired yesterday.</summary>
    private X509Certificate2 ExpiredFromMagnetarsCa(string cluster)
    {
        using var db = _db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "SELECT CertificatePem, ProtectedPrivateKey FROM cluster_cas WHERE ClusterUuid = 'magnetar' AND CaType = 'autoscaler-ca'";
        using var r = cmd.ExecuteReader();
        Assert.True(r.Read(), "no autoscaler CA in the database");
        var protector = new AesGcmSecretProtector(KeyFile.LoadOrCreate(Path.Combine(_dir, "data", "secret.key")));
        var caKey = protector.Unprotect(r.GetString(1), "autoscaler-ca-key");
        using var ca = X509Certificate2.CreateFromPem(r.GetString(0), caKey);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest($"CN=cluster-autoscaler:{cluster}", key, HashAlgorithmName.SHA256);
        req.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], false));
        using var rsa = ca.GetRSAPrivateKey()!;
        using var c = req.Create(ca.SubjectName, X509SignatureGenerator.CreateForRSA(rsa, RSASignaturePadding.Pkcs1),
            DateTimeOffset.UtcNow.AddDays(-3), DateTimeOffset.UtcNow.AddDays(-1), [1, 2, 3, 4]);
        return Pfx(c.CopyWithPrivateKey(key));
    }
}

/// <summary>What the autoscaler tests share: the credential command and a client made as the autoscaler makes one.</summary>
internal static class AutoscalerHarness
{
    /// <summary>Runs <c>magnetar autoscaler-credential</c> for a cluster with the server's arguments; the directory it wrote.</summary>
    public static async Task<string> CredentialAsync(string dir, string cluster, IEnumerable<string> serverArgs, int expectExit = 0, string? expectError = null)
    {
        var output = Path.Combine(dir, "cred-" + Guid.NewGuid().ToString("N")[..8]);
        var r = await OpenStackCli.ExecAsync("dotnet", dir, null,
            [Path.Combine(AppContext.BaseDirectory, "magnetar.dll"), "autoscaler-credential", "--cluster", cluster, "--output", output, .. serverArgs]);
        Assert.True(r.ExitCode == expectExit, $"autoscaler-credential {cluster}: exit {r.ExitCode}\n{r.Stdout}\n{r.Stderr}");
        if (expectError is not null) Assert.Contains(expectError, r.Stderr);
        return output;
    }

    /// <summary>A gRPC client as the autoscaler makes one from its cloud-config: the server verified against ca.crt (name included), the client certificate given.</summary>
    public static (CloudProvider.CloudProviderClient Client, GrpcChannel Channel) Client(int port, string caDir, X509Certificate2? clientCertificate)
    {
        var ca = X509Certificate2.CreateFromPem(File.ReadAllText(Path.Combine(caDir, "ca.crt")));
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, cert, _, errors) =>
        {
            if ((errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != SslPolicyErrors.None || cert is null) return false;
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.Add(ca);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            return chain.Build(X509CertificateLoader.LoadCertificate(cert.GetRawCertData()));
        };
        if (clientCertificate is not null) handler.SslOptions.ClientCertificates = [clientCertificate];
        var channel = GrpcChannel.ForAddress($"https://127.0.0.1:{port}", new GrpcChannelOptions { HttpHandler = handler });
        return (new CloudProvider.CloudProviderClient(channel), channel);
    }

    public static X509Certificate2 Pfx(X509Certificate2 c) => X509CertificateLoader.LoadPkcs12(c.Export(X509ContentType.Pkcs12), null);
    public static X509Certificate2 ClientCertificate(string dir) =>
        Pfx(X509Certificate2.CreateFromPemFile(Path.Combine(dir, "tls.crt"), Path.Combine(dir, "tls.key")));
}
