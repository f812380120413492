using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Magnetar.Bootstrap.Kubeadm;
using Magnetar.Bootstrap.Pki;

namespace Magnetar.Tests;

/// <summary>Runs with the all-in-one (<see cref="OpenStackFactAttribute"/>) where nodes can boot (<see cref="BootedNodeFactAttribute"/>).</summary>
public sealed class OpenStackBootedNodeFactAttribute : FactAttribute
{
    public OpenStackBootedNodeFactAttribute() => Skip = OpenStackEnv.File.SkipReason ?? NodeBed.Unavailable();
}

/// <summary>
/// The whole path on the real all-in-one with readiness from node reports: Magnetar (its own process, keystone mode,
/// OpenStack driver, bootstrap endpoint on HTTPS) creates the servers in Nova; Nova's fake driver boots nothing, so
/// each server's user-data, read back from Nova as admin, <b>boots a node of tests/nodebed</b> (Debian under systemd,
/// cloud-init with a NoCloud seed of exactly that user-data; kubeadm, kubelet and kubectl are the bed's stand-ins).
/// The cluster completes only through the nodes' reports. The init node's bundle carries the cloud integration made
/// from the cluster's real Keystone application credential.
/// </summary>
[Trait("Category", "Integration")]
public sealed class OpenStackNodeBootstrapTests
{
    [OpenStackBootedNodeFact]
    public async Task Booted_nodes_run_the_user_data_in_nova_and_their_reports_complete_the_cluster()
    {
        var env = OpenStackEnv.Load();
        var dir = Directory.CreateTempSubdirectory("os-node-bootstrap-").FullName;
        await using var bed = new NodeBed(dir);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        bed.Prepare();
        var tlsCa = ClusterPki.CreateNamedAuthority("magnetar-test-ca", "test");
        var tls = ClusterPki.IssueCertificate(tlsCa, "magnetar", [], CertificatePurpose.Server,
            new SubjectAlternativeNames(["localhost"], [IPAddress.Loopback]), TimeSpan.FromDays(1));
        File.WriteAllText(Path.Combine(dir, "ca.pem"), tlsCa.CertificatePem);
        File.WriteAllText(Path.Combine(dir, "tls.crt"), tls.CertificatePem);
        File.WriteAllText(Path.Combine(dir, "tls.key"), tls.PrivateKeyPem);
        var api = $"http://127.0.0.1:{MagnetarProcess.FreePort()}";
        var bootstrap = $"https://127.0.0.1:{MagnetarProcess.FreePort()}";
        await using var server = new MagnetarProcess($"{api};{bootstrap}", Path.Combine(dir, "data"),
            [$"--Kestrel:Certificates:Default:Path={dir}/tls.crt", $"--Kestrel:Certificates:Default:KeyPath={dir}/tls.key",
            .. OpenStackEnv.ServerArgs(env),
            $"--Magnetar:PublicUrl={api}", $"--Magnetar:Bootstrap:Url={bootstrap}", $"--Magnetar:Bootstrap:CaFile={dir}/ca.pem",
            "--Magnetar:Bootstrap:NodeReadiness=reports", "--Magnetar:Conductor:PollIntervalMs=200", "--Magnetar:Conductor:LeaseSeconds=120"]);
        await server.StartAsync();

        using var c = await OpenStackEnv.DemoClientAsync(env, api);
        var tenant = OpenStackTenantView.Create(env, env["DEMO_USER"], env["DEMO_PASSWORD"], env["DEMO_PROJECT"]);
        var admin = OpenStackTenantView.Create(env, env["ADMIN_USER"], env["ADMIN_PASSWORD"], env["ADMIN_PROJECT"]);
        var withLb = await tenant.HasLoadBalancerServiceAsync();

        var template = await c.PostJson("/v1/clustertemplates", $$"""
            {"name": "k8s-nodes", "image_id": "debian-12", "external_network_id": "public", "coe": "kubernetes",
             "flavor_id": "m1.small", "master_flavor_id": "m1.medium", "network_driver": "cilium",
             "master_lb_enabled": {{(withLb ? "true" : "false")}}, "floating_ip_enabled": true, "labels": {"kube_tag": "v1.31.1", "kube_package_source": "image"} }
            """).ExpectAsync(201);
        var created = await c.PostJson("/v1/clusters", $$"""{"name": "nodes", "cluster_template_id": "{{template["uuid"]}}", "master_count": 1, "node_count": 2}""").ExpectAsync(202);
        var uuid = (string)created["uuid"]!;
        try
        {
            // Both servers ACTIVE in Nova and the API address known, yet the cluster waits for its nodes.
            var servers = new List<ComputeServerUserData>();
            var novaAddresses = new Dictionary<string, List<string>>();
            var deadline = DateTime.UtcNow.AddMinutes(4);
            while (servers.Count < 3)
            {
                Assert.True(DateTime.UtcNow < deadline, "servers did not appear\n" + server.Log);
                await Task.Delay(1000);
                var list = await tenant.Compute.ListServersByTagAsync(Magnetar.Cloud.OpenStack.OpenStackCloudProvider.Tag(uuid), default);
                if (list.Count(s => s.Status == "ACTIVE") < 3) continue;
                foreach (var s in list)
                {
                    var detailed = (await admin.Compute.FindServerAsync(s.Id, default))!; // user_data is admin-only in Nova
                    servers.Add(new ComputeServerUserData(s.Name, Encoding.UTF8.GetString(Convert.FromBase64String(detailed.UserData!))));
                    novaAddresses[s.Name] = detailed.AllAddresses.ToList();
                }
            }
            var waiting = await WaitAsync(c, uuid, n => ((string?)n["status_reason"])?.StartsWith("waiting for nodes to report Ready") == true, server);
            Assert.Equal("CREATE_IN_PROGRESS", (string?)waiting["status"]);
            var apiAddress = new Uri((string)waiting["api_address"]!);

            var active = clock.Elapsed;
            foreach (var (name, userData) in servers)
            {
                Assert.DoesNotContain("PRIVATE KEY", userData);
                bed.Boot(name, userData);
            }
            var done = await WaitAsync(c, uuid, n => (string?)n["status"] != "CREATE_IN_PROGRESS", server);
            Assert.True((string?)done["status"] == "CREATE_COMPLETE", $"{done.ToJsonString()}\n{bed.Diagnostics(servers.Select(s => s.Name))}");
            var complete = clock.Elapsed;
            var ca = (string)(await c.GetAsync($"/v1/certificates/{uuid}").ExpectAsync(200))["pem"]!;
            var events = new ServerDatabase(() => server.DataDir).Events(uuid);
            foreach (var (name, userData) in servers.OrderBy(s => s.Name))
            {
                bed.CheckFirstBoot(name, userData, ca, bootstrap);
                Assert.Single(events, e => e.Reason == "NodeBundleFetched" && e.Message.StartsWith($"node {name} fetched "));
                string Read(string path) => bed.Exec(name, "cat", path);
                var kubeadm = KubeadmConfigRenderer.Parse(Read("/etc/kubernetes/magnetar/kubeadm.yaml"));
                // The kubelet's serving certificate names the server's addresses: the fixed ones Nova lists and the
                // floating IP Neutron maps to it (Nova's copy of that lags without network agents).
                var fixedIps = novaAddresses[name];
                Assert.NotEmpty(fixedIps);
                var floatingIps = (await tenant.Network.ListFloatingIpsAsync($"fixed_ip_address={fixedIps[0]}&tags={Uri.EscapeDataString(Magnetar.Cloud.OpenStack.OpenStackCloudProvider.Tag(uuid))}", default)).Select(f => f.FloatingIpAddress);
                Assert.Equal(fixedIps.Union(floatingIps).Order(), Fixtures.IpSans(Read("/var/lib/kubelet/pki/kubelet-serving.crt")).Order());
                if (bed.Role(name) == "init")
                {
                    var cc = Assert.IsType<Bootstrap.Kubeadm.V1Beta4.ClusterConfiguration>(kubeadm[1]);
                    Assert.Equal($"{apiAddress.Host}:6443", cc.ControlPlaneEndpoint);
                    Assert.Contains(apiAddress.Host, cc.ApiServer!.CertSANs!);
                    // The cloud integration uses the cluster's own application credential, from Keystone.
                    var credentials = await tenant.Identity.ListApplicationCredentialsAsync(tenant.Session.UserId!, $"magnetar-{uuid}", default);
                    var cloudConfig = Read("/etc/kubernetes/magnetar/addons/20-cloud-config.yaml");
                    Assert.Contains(credentials.Single().Id, cloudConfig);
                    // The credential's secret is in the node's bundle, and nowhere in Magnetar's log.
                    var conf = k8s.KubernetesYaml.LoadAllFromString(cloudConfig).OfType<k8s.Models.V1Secret>().Single();
                    var ini = conf.StringData?["cloud.conf"] ?? System.Text.Encoding.UTF8.GetString(conf.Data["cloud.conf"]);
                    var secret = System.Text.RegularExpressions.Regex.Match(ini, "application-credential-secret *= *\"?([^\"\\n]+)").Groups[1].Value;
                    Assert.True(secret.Length >= 16, cloudConfig.Contains("application-credential-secret") ? "secret not parsed" : "no secret in cloud.conf");
                    Assert.DoesNotContain(secret, server.Log);
                    Assert.Contains(env["KEYSTONE_URL"], cloudConfig);
                    Assert.Equal("600", bed.Exec(name, "stat", "-c", "%a", "/etc/kubernetes/magnetar/addons/20-cloud-config.yaml").Trim());
                    // Every addon the bundle carried was applied by the node (the stand-in kubectl lists what it was given).
                    var addons = bed.Exec(name, "ls", "-1", "/etc/kubernetes/magnetar/addons").Split('\n', StringSplitOptions.RemoveEmptyEntries).Order().ToList();
                    Assert.Equal(["10-cni-cilium.yaml", "20-cloud-config.yaml", "21-openstack-cloud-controller-manager.yaml", "30-cinder-csi.yaml", "40-metrics-server.yaml"], addons);
                    Assert.Equal(addons, Read("/var/log/nodebed/kubectl-applied").Split('\n', StringSplitOptions.RemoveEmptyEntries).Order().ToList());
                }
                else Assert.IsType<Bootstrap.Kubeadm.V1Beta4.JoinConfiguration>(kubeadm[0]);
            }
            Console.WriteLine($"all-in-one booted nodes: 3 servers ACTIVE in Nova after {active.TotalSeconds:F0} s, CREATE_COMPLETE after " +
                $"{complete.TotalSeconds:F0} s (the boots took {(complete - active).TotalSeconds:F0} s), checks done after {clock.Elapsed.TotalSeconds:F0} s");
        }
        finally
        {
            await c.DeleteAsync($"/v1/clusters/{uuid}");
            var gone = DateTime.UtcNow.AddMinutes(4);
            while ((await c.GetAsync($"/v1/clusters/{uuid}")).StatusCode != HttpStatusCode.NotFound)
            {
                Assert.True(DateTime.UtcNow < gone, "cluster not deleted\n" + server.Log);
                await Task.Delay(1000);
            }
            Assert.Empty(await tenant.ClusterResourcesAsync(uuid, withLb));
            await c.DeleteAsync($"/v1/clustertemplates/{template["uuid"]}");
        }
    }

    private sealed record ComputeServerUserData(string Name, string UserData);

    private static async Task<JsonNode> WaitAsync(HttpClient c, string uuid, Func<JsonNode, bool> done, MagnetarProcess server)
    {
        var deadline = DateTime.UtcNow.AddMinutes(4);
        JsonNode last;
        do
        {
            last = await c.GetAsync($"/v1/clusters/{uuid}").ExpectAsync(200);
            if (done(last)) return last;
            await Task.Delay(1000);
        } while (DateTime.UtcNow < deadline);
        throw new TimeoutException($"cluster {uuid}: {last.ToJsonString()}\n{server.Log}");
    }
}
