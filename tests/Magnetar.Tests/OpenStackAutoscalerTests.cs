using System.Net;
using System.Text;
using Magnetar.Autoscaler.ExternalGrpc;
using Magnetar.Cloud.OpenStack;

namespace Magnetar.Tests;

/// <summary>
/// The autoscaler's calls on the real all-in-one: Magnetar (its own process, keystone mode, OpenStack driver) with its
/// externalgrpc listener; IncreaseSize creates Nova servers carrying the nodegroup's user-data, DeleteNodes given
/// <c>openstack:///&lt;server id&gt;</c> deletes exactly that server, and deleting the cluster leaves nothing.
/// Nova's fake driver boots nothing: nodes count as ready when their servers are ACTIVE.
/// </summary>
[Trait("Category", "Integration")]
public sealed class OpenStackAutoscalerTests
{
    [OpenStackFact]
    public async Task IncreaseSize_creates_nova_servers_and_DeleteNodes_deletes_exactly_the_server_named()
    {
        var env = OpenStackEnv.Load();
        var dir = Directory.CreateTempSubdirectory("os-autoscaler-").FullName;
        var api = $"http://127.0.0.1:{MagnetarProcess.FreePort()}";
        var grpcPort = MagnetarProcess.FreePort();
        string[] args =
        [
            .. OpenStackEnv.ServerArgs(env),
            $"--Magnetar:PublicUrl={api}", "--Magnetar:Bootstrap:NodeReadiness=cloud", "--Magnetar:Conductor:PollIntervalMs=200",
            "--Magnetar:Conductor:LeaseSeconds=60", $"--Magnetar:Autoscaler:Port={grpcPort}", "--Magnetar:Autoscaler:Listen=127.0.0.1",
        ];
        await using var server = new MagnetarProcess(api, Path.Combine(dir, "data"), args);
        await server.StartAsync();
        using var c = await OpenStackEnv.DemoClientAsync(env, api);
        var tenant = OpenStackTenantView.Create(env, env["DEMO_USER"], env["DEMO_PASSWORD"], env["DEMO_PROJECT"]);
        var admin = OpenStackTenantView.Create(env, env["ADMIN_USER"], env["ADMIN_PASSWORD"], env["ADMIN_PROJECT"]);
        var withLb = await tenant.HasLoadBalancerServiceAsync();

        var template = await c.PostJson("/v1/clustertemplates", $$"""
            {"name": "k8s-autoscaled", "image_id": "fedora-coreos-40", "external_network_id": "public", "coe": "kubernetes",
             "flavor_id": "m1.tiny", "master_flavor_id": "m1.tiny", "master_lb_enabled": {{(withLb ? "true" : "false")}},
             "floating_ip_enabled": false, "labels": {"kube_tag": "v1.31.1"} }
            """).ExpectAsync(201);
        var uuid = (string)(await c.PostJson("/v1/clusters", $$"""
            {"name": "autoscaled", "cluster_template_id": "{{template["uuid"]}}", "master_count": 1, "node_count": 1, "merge_labels": true,
             "labels": {"auto_scaling_enabled": "true", "min_node_count": "1", "max_node_count": "4"} }
            """).ExpectAsync(202))["uuid"]!;
        var channels = new List<Grpc.Net.Client.GrpcChannel>();
        try
        {
            await WaitAsync(c, uuid, "CREATE_COMPLETE", server);
            var credential = await AutoscalerHarness.CredentialAsync(dir, uuid, [.. args, "--data-dir", Path.Combine(dir, "data")]);
            var (ca, channel) = AutoscalerHarness.Client(grpcPort, credential, AutoscalerHarness.ClientCertificate(credential));
            channels.Add(channel);

            await ca.RefreshAsync(new RefreshRequest());
            var group = Assert.Single((await ca.NodeGroupsAsync(new NodeGroupsRequest())).NodeGroups);
            Assert.Equal(("default-worker", 1, 4), (group.Id, group.MinSize, group.MaxSize));
            var before = await WorkersAsync(tenant, uuid);
            var first = Assert.Single(before);
            // The node the autoscaler sees (providerID as openstack-cloud-controller-manager sets it) is that Nova server's.
            Assert.Equal("default-worker", (await ca.NodeGroupForNodeAsync(new NodeGroupForNodeRequest
            {
                Node = new ExternalGrpcNode { Name = first.Name, ProviderID = "openstack:///" + first.Id },
            })).NodeGroup.Id);

            // IncreaseSize by 2: two Nova servers, each with the default-worker nodegroup's user-data.
            await ca.NodeGroupIncreaseSizeAsync(new NodeGroupIncreaseSizeRequest { Id = "default-worker", Delta = 2 });
            Assert.Equal(3, (await ca.NodeGroupTargetSizeAsync(new NodeGroupTargetSizeRequest { Id = "default-worker" })).TargetSize);
            await WaitAsync(c, uuid, "UPDATE_COMPLETE", server);
            var grown = await WorkersAsync(tenant, uuid);
            Assert.Equal(3, grown.Count);
            foreach (var s in grown.Where(s => s.Id != first.Id))
            {
                var userData = Encoding.UTF8.GetString(Convert.FromBase64String((await admin.Compute.FindServerAsync(s.Id, default))!.UserData!));
                Assert.Contains("MAGNETAR_NODEGROUP='default-worker'", userData);
                Assert.Contains($"MAGNETAR_NODE='{s.Name}'", userData);
                Assert.Contains("MAGNETAR_ROLE=worker", userData);
                Assert.Contains("MAGNETAR_KUBE_VERSION='v1.31.1'", userData);
            }
            var instances = (await ca.NodeGroupNodesAsync(new NodeGroupNodesRequest { Id = "default-worker" })).Instances;
            Assert.Equal(grown.Select(s => "openstack:///" + s.Id).Order(), instances.Select(i => i.Id).Order());

            // DeleteNodes given openstack:///<server id> of the middle server: exactly that one goes.
            var victim = grown.OrderBy(s => s.Name).ElementAt(1);
            await ca.NodeGroupDeleteNodesAsync(new NodeGroupDeleteNodesRequest
            {
                Id = "default-worker", Nodes = { new ExternalGrpcNode { Name = victim.Name, ProviderID = "openstack:///" + victim.Id } },
            });
            await WaitAsync(c, uuid, "UPDATE_COMPLETE", server, x => (int?)x["node_count"] == 2);
            var after = await WorkersAsync(tenant, uuid);
            Assert.Equal(grown.Where(s => s.Id != victim.Id).Select(s => s.Id).Order(), after.Select(s => s.Id).Order());
        }
        finally
        {
            foreach (var ch in channels) ch.Dispose();
            await c.DeleteAsync($"/v1/clusters/{uuid}");
            var gone = DateTime.UtcNow.AddMinutes(5);
            while ((await c.GetAsync($"/v1/clusters/{uuid}")).StatusCode != HttpStatusCode.NotFound)
            {
                Assert.True(DateTime.UtcNow < gone, "cluster not deleted\n" + server.Log);
                await Task.Delay(1000);
            }
            Assert.Empty(await tenant.ClusterResourcesAsync(uuid, withLb));
            await c.DeleteAsync($"/v1/clustertemplates/{template["uuid"]}");
        }
    }

    /// <summary>The cluster's worker servers in Nova (those being deleted left out).</summary>
    private static async Task<List<Magnetar.Cloud.OpenStack.Server>> WorkersAsync(OpenStackTenantView tenant, string uuid) =>
        (await tenant.Compute.ListServersByTagAsync(OpenStackCloudProvider.Tag(uuid), default))
            .Where(s => s.Name.Contains("-default-worker-") && s.Status != "DELETED" && s.TaskState != "deleting").ToList();

    private static async Task WaitAsync(HttpClient c, string uuid, string status, MagnetarProcess server, Func<System.Text.Json.Nodes.JsonNode, bool>? also = null)
    {
        var deadline = DateTime.UtcNow.AddMinutes(6);
        System.Text.Json.Nodes.JsonNode last;
        do
        {
            last = await c.GetAsync($"/v1/clusters/{uuid}").ExpectAsync(200);
            if ((string?)last["status"] == status && (also?.Invoke(last) ?? true)) return;
            if (((string?)last["status"])?.EndsWith("_FAILED") == true) break;
            await Task.Delay(1000);
        } while (DateTime.UtcNow < deadline);
        throw new Xunit.Sdk.XunitException($"cluster {uuid} did not reach {status}: {last.ToJsonString()}\n{server.Log}");
    }
}
