using System.Net;
using System.Text.Json.Nodes;
using Magnetar.Cloud.Simulated;
using Magnetar.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Magnetar.Tests;

/// <summary>The Magnum v1 contract, run against SQLite and against PostgreSQL (see the two subclasses at the end).</summary>
public abstract class ApiContractTests(HostFixture fixture)
{
    protected TestHost Host => fixture.Host;

    // ---------- discovery and microversions ----------

    [Fact]
    public async Task Root_and_v1_discovery_are_public_and_shaped_like_magnum()
    {
        var root = await Host.Anonymous().GetAsync("/").ExpectAsync(200);
        Assert.Equal("OpenStack Magnum API", root["name"]!.GetValue<string>());
        var v = root["versions"]![0]!;
        Assert.Equal("v1", v["id"]!.GetValue<string>());
        Assert.Equal("1.10", v["max_version"]!.GetValue<string>());
        Assert.Equal("1.1", v["min_version"]!.GetValue<string>());
        var resp = await Host.Anonymous().GetAsync("/v1");
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        Assert.Equal("container-infra 1.1", resp.Headers.GetValues("OpenStack-API-Minimum-Version").Single());
        Assert.Equal("container-infra 1.10", resp.Headers.GetValues("OpenStack-API-Maximum-Version").Single());
        var v1 = await resp.ReadJsonAsync();
        Assert.Contains("/v1/clusters/", v1["clusters"]![0]!["href"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("container-infra latest", 200, "container-infra 1.10")]
    [InlineData("container-infra 1.4", 200, "container-infra 1.4")]
    [InlineData("container-infra 1.11", 406, null)]
    [InlineData("container-infra 2.0", 406, null)]
    [InlineData("container-infra 1.0", 406, null)]
    [InlineData("compute 1.4", 406, null)]
    [InlineData("container-infra one.two", 406, null)]
    [InlineData("garbage", 406, null)]
    public async Task Microversion_negotiation(string header, int status, string? echoed)
    {
        var c = await Host.ClientAsync("demo");
        c.DefaultRequestHeaders.Remove("OpenStack-API-Version");
        c.DefaultRequestHeaders.TryAddWithoutValidation("OpenStack-API-Version", header);
        var resp = await c.GetAsync("/v1/clusters");
        Assert.Equal(status, (int)resp.StatusCode);
        if (echoed is not null) Assert.Equal(echoed, resp.Headers.GetValues("OpenStack-API-Version").Single());
        else Assert.NotNull((await resp.ReadJsonAsync()).ErrorDetail());
    }

    [Fact]
    public async Task Nodegroups_need_microversion_1_9_and_default_is_1_1()
    {
        var admin = await Host.ClientAsync("admin");
        var t = await Clusters.CreateTemplateAsync(admin);
        var uuid = await Clusters.CreateClusterAsync(admin, t["uuid"]!.GetValue<string>());
        var old = await Host.ClientAsync("admin", "1.8");
        await old.GetAsync($"/v1/clusters/{uuid}/nodegroups").ExpectAsync(406);
        var none = Host.Anonymous();
        none.DefaultRequestHeaders.Add("X-Auth-Token", await Host.IssueTokenAsync("t-admin", "admin"));
        var resp = await none.GetAsync("/v1/clusters");
        Assert.Equal("container-infra 1.1", resp.Headers.GetValues("OpenStack-API-Version").Single());
    }

    // ---------- authentication and policy ----------

    [Fact]
    public async Task Missing_or_bogus_token_is_401_in_magnum_format()
    {
        var anon = Host.Anonymous();
        var body = await anon.GetAsync("/v1/clusters").ExpectAsync(401);
        Assert.Contains("requires authentication", body.ErrorDetail());
        anon.DefaultRequestHeaders.Add("X-Auth-Token", "mgtAAAAbogus");
        await anon.GetAsync("/v1/clustertemplates").ExpectAsync(401);
    }

    [Fact]
    public async Task Reader_reads_but_cannot_write()
    {
        var demo = await Host.ClientAsync("demo");
        var reader = await Host.ClientAsync("reader");
        var t = await Clusters.CreateTemplateAsync(demo);
        await reader.GetAsync($"/v1/clustertemplates/{t["uuid"]}").ExpectAsync(200);
        var err = await reader.PostJson("/v1/clusters", $$"""{"name": "r1", "cluster_template_id": "{{t["uuid"]}}"}""").ExpectAsync(403);
        Assert.Contains("cluster:create", err.ErrorDetail());
        await reader.DeleteAsync($"/v1/clustertemplates/{t["uuid"]}").ExpectAsync(403);
    }

    [Fact]
    public async Task Other_projects_objects_are_not_found_and_admin_sees_all()
    {
        var demo = await Host.ClientAsync("demo");
        var other = await Host.ClientAsync("other");
        var admin = await Host.ClientAsync("admin");
        var t = await Clusters.CreateTemplateAsync(demo);
        var uuid = await Clusters.CreateClusterAsync(demo, t["uuid"]!.GetValue<string>());
        var name = (await demo.GetAsync($"/v1/clusters/{uuid}").ExpectAsync(200))["name"]!.GetValue<string>();

        var err = await other.GetAsync($"/v1/clusters/{uuid}").ExpectAsync(404);
        Assert.Equal($"Cluster {uuid} could not be found.", err.ErrorDetail());
        await other.GetAsync($"/v1/clusters/{name}").ExpectAsync(404);
        await other.DeleteAsync($"/v1/clusters/{uuid}").ExpectAsync(404);
        await other.GetAsync($"/v1/clustertemplates/{t["uuid"]}").ExpectAsync(404);
        await other.GetAsync($"/v1/certificates/{uuid}").ExpectAsync(404);
        var list = await other.GetAsync("/v1/clusters").ExpectAsync(200);
        Assert.DoesNotContain(list["clusters"]!.AsArray(), c => c!["uuid"]!.GetValue<string>() == uuid);

        await admin.GetAsync($"/v1/clusters/{uuid}").ExpectAsync(200);
        var all = await admin.GetAsync("/v1/clusters?limit=1000").ExpectAsync(200);
        Assert.Contains(all["clusters"]!.AsArray(), c => c!["uuid"]!.GetValue<string>() == uuid);
    }

    [Fact]
    public async Task Public_and_hidden_templates_are_admin_only()
    {
        var demo = await Host.ClientAsync("demo");
        var err = await demo.PostJson("/v1/clustertemplates", """{"coe": "kubernetes", "image_id": "img", "public": true}""").ExpectAsync(403);
        Assert.Equal("Not authorized to set public or hidden flag for cluster template.", err.ErrorDetail());
        var admin = await Host.ClientAsync("admin");
        var pub = await Clusters.CreateTemplateAsync(admin, extra: ", \"public\": true");
        // visible to every project, editable only by its owner or an admin
        var other = await Host.ClientAsync("other");
        await other.GetAsync($"/v1/clustertemplates/{pub["uuid"]}").ExpectAsync(200);
        await other.PatchJson($"/v1/clustertemplates/{pub["uuid"]}", """[{"op": "replace", "path": "/name", "value": "stolen"}]""").ExpectAsync(403);
        var hidden = await Clusters.CreateTemplateAsync(admin, extra: ", \"public\": true, \"hidden\": true");
        var list = await other.GetAsync("/v1/clustertemplates").ExpectAsync(200);
        Assert.Contains(list["clustertemplates"]!.AsArray(), x => x!["uuid"]!.GetValue<string>() == pub["uuid"]!.GetValue<string>());
        Assert.DoesNotContain(list["clustertemplates"]!.AsArray(), x => x!["uuid"]!.GetValue<string>() == hidden["uuid"]!.GetValue<string>());
    }

    // ---------- cluster templates ----------

    [Fact]
    public async Task Template_crud_with_json_patch()
    {
        var demo = await Host.ClientAsync("demo");
        var name = Clusters.UniqueName("tpl");
        var t = await Clusters.CreateTemplateAsync(demo, name);
        var uuid = t["uuid"]!.GetValue<string>();
        Assert.Equal("kubernetes", t["coe"]!.GetValue<string>());
        Assert.True(t["floating_ip_enabled"]!.GetValue<bool>());
        Assert.False(t["public"]!.GetValue<bool>());
        Assert.Equal("vm", t["server_type"]!.GetValue<string>());
        Assert.Equal($"http://magnetar.test/v1/clustertemplates/{uuid}", t["links"]![0]!["href"]!.GetValue<string>());

        var byName = await demo.GetAsync($"/v1/clustertemplates/{name}").ExpectAsync(200);
        Assert.Equal(uuid, byName["uuid"]!.GetValue<string>());

        var patched = await demo.PatchJson($"/v1/clustertemplates/{uuid}", """
            [{"op": "replace", "path": "/labels", "value": "{'kube_tag': 'v1.32.0', 'a': 'b'}"},
             {"op": "add", "path": "/dns_nameserver", "value": "1.1.1.1"},
             {"op": "remove", "path": "/flavor_id"},
             {"op": "replace", "path": "/docker_volume_size", "value": 20}]
            """).ExpectAsync(200);
        Assert.Equal("v1.32.0", patched["labels"]!["kube_tag"]!.GetValue<string>());
        Assert.Equal("b", patched["labels"]!["a"]!.GetValue<string>());
        Assert.Equal("1.1.1.1", patched["dns_nameserver"]!.GetValue<string>());
        Assert.Null(patched["flavor_id"]);
        Assert.Equal(20, patched["docker_volume_size"]!.GetValue<int>());

        var e1 = await demo.PatchJson($"/v1/clustertemplates/{uuid}", """[{"op": "replace", "path": "/uuid", "value": "x"}]""").ExpectAsync(400);
        Assert.Contains("internal attribute", e1.ErrorDetail());
        var e2 = await demo.PatchJson($"/v1/clustertemplates/{uuid}", """[{"op": "remove", "path": "/coe"}]""").ExpectAsync(400);
        Assert.Contains("mandatory attribute", e2.ErrorDetail());
        var e3 = await demo.PatchJson($"/v1/clustertemplates/{uuid}", """[{"op": "add", "path": "/image_id", "value": "x"}]""").ExpectAsync(400);
        Assert.Contains("please use 'replace'", e3.ErrorDetail());
        var e4 = await demo.PatchJson($"/v1/clustertemplates/{uuid}", """[{"op": "replace", "path": "/nonsense", "value": "x"}]""").ExpectAsync(400);
        Assert.NotEmpty(e4.ErrorDetail());
        var e5 = await demo.PatchJson($"/v1/clustertemplates/{uuid}", """[{"op": "move", "path": "/name", "value": "x"}]""").ExpectAsync(400);
        Assert.NotEmpty(e5.ErrorDetail());
        var e6 = await demo.PatchJson($"/v1/clustertemplates/{uuid}", """{"op": "replace"}""").ExpectAsync(400);
        Assert.NotEmpty(e6.ErrorDetail());

        var detail = await demo.GetAsync("/v1/clustertemplates/detail").ExpectAsync(200);
        Assert.Contains(detail["clustertemplates"]!.AsArray(), x => x!["uuid"]!.GetValue<string>() == uuid);
        await demo.DeleteAsync($"/v1/clustertemplates/{uuid}").ExpectAsync(204);
        var gone = await demo.GetAsync($"/v1/clustertemplates/{uuid}").ExpectAsync(404);
        Assert.Equal($"ClusterTemplate {uuid} could not be found.", gone.ErrorDetail());
    }

    [Theory]
    [InlineData("""{"coe": "kubernetes"}""", "image_id")]
    [InlineData("""{"image_id": "x"}""", "coe")]
    [InlineData("""{"coe": "mesos2", "image_id": "x"}""", "coe")]
    [InlineData("""{"coe": "swarm", "image_id": "x"}""", "not supported")]
    [InlineData("""{"coe": "kubernetes", "image_id": "x", "bogus": 1}""", "Unknown attribute")]
    [InlineData("""{"coe": "kubernetes", "image_id": "x", "apiserver_port": 80}""", "apiserver_port")]
    [InlineData("""{"coe": "kubernetes", "image_id": "x", "docker_volume_size": "big"}""", "docker_volume_size")]
    [InlineData("""{"coe": "kubernetes", "image_id": "x", "network_driver": "weave"}""", "Network driver")]
    [InlineData("""{"coe": "kubernetes", "image_id": "x", "labels": {"a": {"nested": 1}}}""", "labels")]
    [InlineData("""{"coe": "kubernetes", "image_id": "x", "labels": {"kube_tag": "latest; rm -rf /"}}""", "kube_tag")]
    [InlineData("""{"coe": "kubernetes", "image_id": "x", "public": "maybe"}""", "public")]
    [InlineData("""{"coe": "kubernetes", "image_id": ""}""", "image_id")]
    [InlineData("""[1, 2]""", "JSON object")]
    [InlineData("""{"coe": "kubernetes", "image_id": "no-such-image"}""", "Image no-such-image could not be found.")]
    [InlineData("""{"coe": "kubernetes", "image_id": "fedora-coreos-40", "flavor_id": "m9.huge"}""", "Unable to find flavor m9.huge.")]
    [InlineData("""{"coe": "kubernetes", "image_id": "fedora-coreos-40", "external_network_id": "nowhere"}""", "Unable to find external network nowhere.")]
    [InlineData("""{"coe": "kubernetes", "image_id": """, "Invalid JSON")]
    [InlineData("""{"coe": "kubernetes", "image_id": "x", "image_id": "y"}""", "Invalid JSON")]
    public async Task Template_bad_input_is_400_with_a_reason(string body, string expected)
    {
        var demo = await Host.ClientAsync("demo");
        var err = await demo.PostJson("/v1/clustertemplates", body).ExpectAsync(400);
        Assert.Contains(expected, err.ErrorDetail());
    }

    [Fact]
    public async Task Unicode_template_names_round_trip()
    {
        var demo = await Host.ClientAsync("demo");
        var t = await Clusters.CreateTemplateAsync(demo, "模板-ü-✓");
        var again = await demo.GetAsync($"/v1/clustertemplates/{Uri.EscapeDataString("模板-ü-✓")}").ExpectAsync(200);
        Assert.Equal(t["uuid"]!.GetValue<string>(), again["uuid"]!.GetValue<string>());
    }

    [Fact]
    public async Task Oversize_body_is_413_and_deep_nesting_400()
    {
        var demo = await Host.ClientAsync("demo");
        var huge = "{\"coe\": \"kubernetes\", \"image_id\": \"" + new string('a', 2 * 1024 * 1024) + "\"}";
        var err = await demo.PostJson("/v1/clustertemplates", huge).ExpectAsync(413);
        Assert.NotEmpty(err.ErrorDetail());
        var deep = new string('[', 500) + new string(']', 500);
        await demo.PostJson("/v1/clustertemplates", deep).ExpectAsync(400);
        var longName = await demo.PostJson("/v1/clustertemplates", $$"""{"coe": "kubernetes", "image_id": "x", "name": "{{new string('n', 256)}}"}""").ExpectAsync(400);
        Assert.Contains("name", longName.ErrorDetail());
    }

    // ---------- clusters ----------

    /// <summary>Magnum's cluster list fields (expand=False in magnum/api/controllers/v1/cluster.py) and links.</summary>
    private static readonly string[] SummaryKeys = ["uuid", "name", "cluster_template_id", "keypair", "docker_volume_size", "labels",
        "node_count", "status", "master_flavor_id", "flavor_id", "create_timeout", "master_count", "stack_id", "health_status", "links"];

    [Fact]
    public async Task Cluster_list_detail_and_show_render_the_same_cluster_alike()
    {
        var admin = await Host.ClientAsync("admin");
        var t = await Clusters.CreateTemplateAsync(admin);
        var uuid = await Clusters.CreateClusterAsync(admin, t["uuid"]!.GetValue<string>(),
            extra: ", \"node_count\": 2, \"labels\": {\"kube_tag\": \"v1.31.1\", \"b\": \"<é>\"}, \"merge_labels\": true");
        var show = await Clusters.WaitForStatusAsync(admin, uuid, "CREATE_COMPLETE");
        async Task<JsonNode> Find(string path)
        {
            var page = await admin.GetAsync(path + "?limit=1000").ExpectAsync(200);
            return page["clusters"]!.AsArray().Single(c => c!["uuid"]!.GetValue<string>() == uuid)!;
        }
        var summary = await Find("/v1/clusters");
        var detail = await Find("/v1/clusters/detail");
        Assert.Equal(SummaryKeys.Order(), summary.AsObject().Select(p => p.Key).Order());
        // The detail list is show without the faults and the conditions (a Magnetar extension).
        Assert.Equal(show.AsObject().Select(p => p.Key).Where(k => k is not ("faults" or "conditions")).Order(), detail.AsObject().Select(p => p.Key).Order());
        Assert.NotEmpty(show["conditions"]!.AsArray());
        foreach (var (key, value) in detail.AsObject())
            Assert.True(JsonNode.DeepEquals(value, show[key]), $"{key}: detail {value?.ToJsonString()} show {show[key]?.ToJsonString()}");
        foreach (var (key, value) in summary.AsObject())
            Assert.True(JsonNode.DeepEquals(value, show[key]), $"{key}: list {value?.ToJsonString()} show {show[key]?.ToJsonString()}");
        Assert.Equal(2, summary["node_count"]!.GetValue<int>());
        Assert.Equal(1, summary["master_count"]!.GetValue<int>());
        Assert.Equal("<é>", summary["labels"]!["b"]!.GetValue<string>());
        Assert.Equal("v1.31.1", show["labels"]!["kube_tag"]!.GetValue<string>());
        Assert.Equal("<é>", show["labels_added"]!["b"]!.GetValue<string>());
        Assert.Equal(2, show["node_addresses"]!.AsArray().Count);
        Assert.EndsWith($"/v1/clusters/{uuid}", summary["links"]![0]!["href"]!.GetValue<string>());
    }

    [Fact]
    public async Task Cluster_lifecycle_create_show_patch_resize_upgrade_delete()
    {
        var demo = await Host.ClientAsync("demo");
        var t = await demo.PostJson("/v1/clustertemplates", $$$"""{"name": "{{{Clusters.UniqueName("tpl")}}}", "coe": "kubernetes", "image_id": "fedora-coreos-40", "flavor_id": "m1.small", "master_flavor_id": "m1.medium", "master_lb_enabled": true, "labels": {"kube_tag": "v1.31.1", "from_template": "yes"}}""").ExpectAsync(201);
        var name = Clusters.UniqueName("life");
        var created = await demo.PostJson("/v1/clusters", $$"""{"name": "{{name}}", "cluster_template_id": "{{t["name"]}}", "node_count": 2, "labels": {"extra": "1"}, "merge_labels": true}""").ExpectAsync(202);
        Assert.Null(created["status"]); // Magnum's 202 body carries only the uuid
        var uuid = created["uuid"]!.GetValue<string>();

        var inProgress = await demo.GetAsync($"/v1/clusters/{uuid}").ExpectAsync(200);
        Assert.Equal(t["uuid"]!.GetValue<string>(), inProgress["cluster_template_id"]!.GetValue<string>());

        var done = await Clusters.WaitForStatusAsync(demo, uuid, "CREATE_COMPLETE");
        Assert.Equal("v1.31.1", done["coe_version"]!.GetValue<string>());
        Assert.Equal("HEALTHY", done["health_status"]!.GetValue<string>());
        Assert.StartsWith("https://", done["api_address"]!.GetValue<string>());
        Assert.Single(done["master_addresses"]!.AsArray());
        Assert.Equal(2, done["node_addresses"]!.AsArray().Count);
        Assert.Equal(2, done["node_count"]!.GetValue<int>());
        Assert.Equal(1, done["master_count"]!.GetValue<int>());
        Assert.Equal("1", done["labels"]!["extra"]!.GetValue<string>());
        Assert.Equal("yes", done["labels"]!["from_template"]!.GetValue<string>());
        Assert.Equal("1", done["labels_added"]!["extra"]!.GetValue<string>());
        Assert.Equal("m1.small", done["flavor_id"]!.GetValue<string>());
        Assert.Equal("m1.medium", done["master_flavor_id"]!.GetValue<string>());
        Assert.True(done["floating_ip_enabled"]!.GetValue<bool>());
        Assert.Contains(done["conditions"]!.AsArray(), c => c!["type"]!.GetValue<string>() == "ControlPlaneReady" && c["status"]!.GetValue<string>() == "True");

        var summary = await demo.GetAsync("/v1/clusters").ExpectAsync(200);
        var row = summary["clusters"]!.AsArray().Single(c => c!["uuid"]!.GetValue<string>() == uuid)!;
        Assert.Null(row["api_address"]); // list carries Magnum's summary fields only
        Assert.Equal("CREATE_COMPLETE", row["status"]!.GetValue<string>());

        await demo.PatchJson($"/v1/clusters/{uuid}", """[{"op": "replace", "path": "/node_count", "value": 3}]""").ExpectAsync(202);
        var updated = await Clusters.WaitForStatusAsync(demo, uuid, "UPDATE_COMPLETE");
        Assert.Equal(3, updated["node_addresses"]!.AsArray().Count);

        var e = await demo.PatchJson($"/v1/clusters/{uuid}", """[{"op": "replace", "path": "/flavor_id", "value": "m1.large"}]""").ExpectAsync(400);
        Assert.Contains("cannot change cluster property(ies) flavor_id", e.ErrorDetail());

        var nodes = await demo.GetAsync($"/v1/clusters/{uuid}/nodegroups/default-worker").ExpectAsync(200);
        Assert.Equal(3, nodes["node_count"]!.GetValue<int>());
        await demo.PostJson($"/v1/clusters/{uuid}/actions/resize", $$"""{"node_count": 1, "nodes_to_remove": ["{{name}}-default-worker-0"]}""").ExpectAsync(202);
        var resized = await Clusters.WaitForStatusAsync(demo, uuid, "UPDATE_COMPLETE");
        Assert.Equal(1, resized["node_count"]!.GetValue<int>());
        Assert.Single(resized["node_addresses"]!.AsArray());
        var hr = resized["health_status_reason"]!.AsObject();
        Assert.DoesNotContain($"{name}-default-worker-0.Ready", hr.Select(kv => kv.Key)); // the node named in nodes_to_remove went

        var newer = await demo.PostJson("/v1/clustertemplates", $$$"""{"name": "{{{Clusters.UniqueName("tpl")}}}", "coe": "kubernetes", "image_id": "fedora-coreos-40", "labels": {"kube_tag": "v1.32.2"}}""").ExpectAsync(201);
        await demo.PostJson($"/v1/clusters/{uuid}/actions/upgrade", $$"""{"cluster_template": "{{newer["uuid"]}}"}""").ExpectAsync(202);
        var upgraded = await Clusters.WaitForStatusAsync(demo, uuid, "UPDATE_COMPLETE");
        Assert.Equal("v1.32.2", upgraded["coe_version"]!.GetValue<string>());
        Assert.Equal(newer["uuid"]!.GetValue<string>(), upgraded["cluster_template_id"]!.GetValue<string>());

        var inUse = await demo.DeleteAsync($"/v1/clustertemplates/{newer["uuid"]}").ExpectAsync(400);
        Assert.Contains("is referenced by one or multiple clusters", inUse.ErrorDetail());

        await demo.DeleteAsync($"/v1/clusters/{uuid}").ExpectAsync(204);
        await Clusters.WaitForGoneAsync(demo, uuid);
        await using var scope = Host.App.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<MagnetarDbContext>();
        Assert.Equal(0, await db.SimulatedResources.CountAsync(r => r.ClusterUuid == uuid));
        Assert.Equal(0, await db.CertificateAuthorities.CountAsync(r => r.ClusterUuid == uuid));
        await demo.DeleteAsync($"/v1/clustertemplates/{newer["uuid"]}").ExpectAsync(204);
    }

    [Theory]
    [InlineData("""{"cluster_template_id": "TPL", "node_count": -1}""", 400, "node_count")]
    [InlineData("""{"cluster_template_id": "TPL", "master_count": 0}""", 400, "master_count")]
    [InlineData("""{"cluster_template_id": "TPL", "master_count": 3}""", 400, "master_count must be 1 when master_lb_enabled is False")]
    [InlineData("""{"cluster_template_id": "TPL", "name": "1starts-with-digit"}""", 400, "name")]
    [InlineData("""{"cluster_template_id": "TPL", "name": "../../etc/passwd"}""", 400, "name")]
    [InlineData("""{"cluster_template_id": "TPL", "name": "ünïcode"}""", 400, "name")]
    [InlineData("""{"cluster_template_id": "TPL", "node_count": "two"}""", 400, "node_count")]
    [InlineData("""{"cluster_template_id": "TPL", "labels": ["a"]}""", 400, "labels")]
    [InlineData("""{"cluster_template_id": "TPL", "status": "CREATE_COMPLETE", "uuid": "x"}""", 202, null)]
    [InlineData("""{"name": "x"}""", 400, "cluster_template_id")]
    [InlineData("""{"cluster_template_id": "does-not-exist"}""", 404, "ClusterTemplate does-not-exist could not be found.")]
    [InlineData("""{"cluster_template_id": "TPL", "flavor_id": "aaa"}""", 400, "Unable to find flavor aaa.")]
    public async Task Cluster_create_validation(string body, int status, string? expected)
    {
        var demo = await Host.ClientAsync("demo");
        var t = await Clusters.CreateTemplateAsync(demo);
        var resp = await demo.PostJson("/v1/clusters", body.Replace("TPL", t["uuid"]!.GetValue<string>())).ExpectAsync(status);
        if (expected is not null) Assert.Contains(expected, resp.ErrorDetail());
    }

    [Fact]
    public async Task Unknown_template_is_400_before_microversion_1_10()
    {
        var demo = await Host.ClientAsync("demo", "1.9");
        var err = await demo.PostJson("/v1/clusters", """{"cluster_template_id": "nope"}""").ExpectAsync(400);
        Assert.Equal("ClusterTemplate nope could not be found.", err.ErrorDetail());
        var zero = await demo.PostJson("/v1/clusters", $$"""{"cluster_template_id": "{{(await Clusters.CreateTemplateAsync(demo))["uuid"]}}", "node_count": 0}""").ExpectAsync(400);
        Assert.Contains("zero is not supported", zero.ErrorDetail());
    }

    [Fact]
    public async Task Cluster_names_are_unique_per_project()
    {
        var demo = await Host.ClientAsync("demo");
        var other = await Host.ClientAsync("other");
        var t = await Clusters.CreateTemplateAsync(demo, extra: ", \"public\": false");
        var t2 = await Clusters.CreateTemplateAsync(other);
        var name = Clusters.UniqueName("dup");
        await Clusters.CreateClusterAsync(demo, t["uuid"]!.GetValue<string>(), name);
        var err = await demo.PostJson("/v1/clusters", $$"""{"name": "{{name}}", "cluster_template_id": "{{t["uuid"]}}"}""").ExpectAsync(409);
        Assert.Contains("already exists", err.ErrorDetail());
        await Clusters.CreateClusterAsync(other, t2["uuid"]!.GetValue<string>(), name); // another project may use it
    }

    [Fact]
    public async Task A_name_is_free_again_as_soon_as_its_cluster_is_being_deleted()
    {
        var demo = await Host.ClientAsync("demo");
        var t = await Clusters.CreateTemplateAsync(demo);
        var name = Clusters.UniqueName("again");
        var first = await Clusters.CreateClusterAsync(demo, t["uuid"]!.GetValue<string>(), name);
        await demo.DeleteAsync($"/v1/clusters/{first}").ExpectAsync(204);
        var second = await Clusters.CreateClusterAsync(demo, t["uuid"]!.GetValue<string>(), name);
        Assert.NotEqual(first, second);
        await Clusters.WaitForGoneAsync(demo, first);
        var shown = await demo.GetAsync($"/v1/clusters/{name}").ExpectAsync(200);
        Assert.Equal(second, shown["uuid"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_malformed_patch_is_400_even_for_an_unknown_object()
    {
        var demo = await Host.ClientAsync("demo");
        var e = await demo.PatchJson($"/v1/clustertemplates/{Guid.NewGuid()}", """{"name": "not a patch"}""").ExpectAsync(400);
        Assert.Contains("JSON-patch", e.ErrorDetail());
        await demo.PatchJson($"/v1/clusters/{Guid.NewGuid()}", """[{"op": "jump", "path": "/node_count"}]""").ExpectAsync(400);
    }

    [Fact]
    public async Task Operations_in_progress_are_refused_and_resize_bounds_checked()
    {
        var demo = await Host.ClientAsync("demo");
        var t = await Clusters.CreateTemplateAsync(demo);
        var uuid = await Clusters.CreateClusterAsync(demo, t["uuid"]!.GetValue<string>(), extra: ", \"labels\": {\"simulated_fault\": \"none\"}");
        var busy = await demo.PostJson($"/v1/clusters/{uuid}/actions/resize", """{"node_count": 2}""");
        if ((int)busy.StatusCode == 400) Assert.Contains("operation in progress", (await busy.ReadJsonAsync()).ErrorDetail());
        await Clusters.WaitForStatusAsync(demo, uuid, "CREATE_COMPLETE");
        var master = await demo.PostJson($"/v1/clusters/{uuid}/actions/resize", """{"node_count": 2, "nodegroup": "default-master"}""").ExpectAsync(400);
        Assert.Equal("Resizing a master nodegroup is not supported.", master.ErrorDetail());
        await demo.PatchJson($"/v1/clusters/{uuid}/nodegroups/default-worker", """[{"op": "replace", "path": "/max_node_count", "value": 2}]""").ExpectAsync(202);
        var bounds = await demo.PostJson($"/v1/clusters/{uuid}/actions/resize", """{"node_count": 5}""").ExpectAsync(400);
        Assert.Contains("outside the allowed range", bounds.ErrorDetail());
        var old = await Host.ClientAsync("demo", "1.6");
        await old.PostJson($"/v1/clusters/{uuid}/actions/resize", """{"node_count": 2}""").ExpectAsync(406);
    }

    [Fact]
    public async Task Pagination_limit_marker_next_and_sorting()
    {
        var admin = await Host.ClientAsync("admin");
        var prefix = Clusters.UniqueName("page");
        for (int i = 0; i < 5; i++) await Clusters.CreateTemplateAsync(admin, $"{prefix}-{i}");
        var first = await admin.GetAsync("/v1/clustertemplates?limit=2&sort_key=name&sort_dir=asc").ExpectAsync(200);
        Assert.Equal(2, first["clustertemplates"]!.AsArray().Count);
        var next = first["next"]!.GetValue<string>();
        Assert.Contains("marker=", next);
        Assert.Contains("limit=2", next);
        var second = await admin.GetAsync(new Uri(next).PathAndQuery).ExpectAsync(200);
        var n1 = first["clustertemplates"]![1]!["name"]!.GetValue<string>();
        var n2 = second["clustertemplates"]![0]!["name"]!.GetValue<string>();
        Assert.True(string.CompareOrdinal(n1, n2) < 0, $"{n1} should sort before {n2}");
        var desc = await admin.GetAsync("/v1/clustertemplates?sort_key=name&sort_dir=desc").ExpectAsync(200);
        var names = desc["clustertemplates"]!.AsArray().Select(x => x!["name"]!.GetValue<string>()).ToList();
        Assert.Equal(names.OrderByDescending(x => x, StringComparer.Ordinal).ToList(), names);
        Assert.Contains("Limit must be positive", (await admin.GetAsync("/v1/clusters?limit=0").ExpectAsync(400)).ErrorDetail());
        Assert.Contains("Invalid sort direction", (await admin.GetAsync("/v1/clusters?sort_dir=up").ExpectAsync(400)).ErrorDetail());
        Assert.Contains("invalid field for sorting", (await admin.GetAsync("/v1/clusters?sort_key=password").ExpectAsync(400)).ErrorDetail());
        await admin.GetAsync($"/v1/clusters?marker={Guid.NewGuid()}").ExpectAsync(404);
    }

    // ---------- nodegroups ----------

    [Fact]
    public async Task Nodegroup_create_list_show_update_delete()
    {
        var demo = await Host.ClientAsync("demo");
        var t = await Clusters.CreateTemplateAsync(demo);
        var uuid = await Clusters.CreateClusterAsync(demo, t["uuid"]!.GetValue<string>());
        await Clusters.WaitForStatusAsync(demo, uuid, "CREATE_COMPLETE");
        var list = await demo.GetAsync($"/v1/clusters/{uuid}/nodegroups").ExpectAsync(200);
        Assert.Equal(["default-master", "default-worker"], list["nodegroups"]!.AsArray().Select(n => n!["name"]!.GetValue<string>()).Order().ToArray());

        var ng = await demo.PostJson($"/v1/clusters/{uuid}/nodegroups", """{"name": "gpu", "node_count": 2, "min_node_count": 1, "max_node_count": 3, "flavor_id": "g1.large"}""").ExpectAsync(202);
        Assert.Equal("worker", ng["role"]!.GetValue<string>());
        Assert.False(ng["is_default"]!.GetValue<bool>());
        var dup = await demo.PostJson($"/v1/clusters/{uuid}/nodegroups", """{"name": "gpu"}""").ExpectAsync(409);
        Assert.Contains("already exists", dup.ErrorDetail());
        await Clusters.WaitForStatusAsync(demo, uuid, "UPDATE_COMPLETE");
        var shown = await demo.GetAsync($"/v1/clusters/{uuid}/nodegroups/gpu").ExpectAsync(200);
        Assert.Equal("CREATE_COMPLETE", shown["status"]!.GetValue<string>());
        Assert.Equal(2, shown["node_addresses"]!.AsArray().Count);
        Assert.Equal("g1.large", shown["flavor_id"]!.GetValue<string>());
        var cluster = await demo.GetAsync($"/v1/clusters/{uuid}").ExpectAsync(200);
        Assert.Equal(3, cluster["node_count"]!.GetValue<int>());

        var badCounts = await demo.PostJson($"/v1/clusters/{uuid}/nodegroups", """{"name": "bad", "node_count": 1, "min_node_count": 3}""").ExpectAsync(409);
        Assert.Contains("min_node_count", badCounts.ErrorDetail());
        await demo.PostJson($"/v1/clusters/{uuid}/nodegroups", """{"name": "m2", "role": "master"}""").ExpectAsync(400);
        var internalAttr = await demo.PatchJson($"/v1/clusters/{uuid}/nodegroups/gpu", """[{"op": "replace", "path": "/node_count", "value": 5}]""").ExpectAsync(400);
        Assert.Contains("internal attribute", internalAttr.ErrorDetail());
        var upd = await demo.PatchJson($"/v1/clusters/{uuid}/nodegroups/gpu", """[{"op": "replace", "path": "/max_node_count", "value": 4}]""").ExpectAsync(202);
        Assert.Equal(4, upd["max_node_count"]!.GetValue<int>());
        await demo.DeleteAsync($"/v1/clusters/{uuid}/nodegroups/default-worker").ExpectAsync(400);
        await demo.DeleteAsync($"/v1/clusters/{uuid}/nodegroups/gpu").ExpectAsync(204);
        await Clusters.WaitForStatusAsync(demo, uuid, "UPDATE_COMPLETE");
        await demo.GetAsync($"/v1/clusters/{uuid}/nodegroups/gpu").ExpectAsync(404);
        var after = await demo.GetAsync($"/v1/clusters/{uuid}").ExpectAsync(200);
        Assert.Equal(1, after["node_count"]!.GetValue<int>());
    }

    // ---------- faults in the simulated cloud ----------

    [Fact]
    public async Task Failed_server_gives_precise_reason_and_failed_cluster_deletes_cleanly()
    {
        var demo = await Host.ClientAsync("demo");
        var t = await Clusters.CreateTemplateAsync(demo);
        var name = Clusters.UniqueName("fault");
        var uuid = await Clusters.CreateClusterAsync(demo, t["uuid"]!.GetValue<string>(), name, ", \"labels\": {\"simulated_fault\": \"create:server:default-worker\"}");
        var failed = await Clusters.WaitForStatusAsync(demo, uuid, "CREATE_FAILED");
        var reason = failed["status_reason"]!.GetValue<string>();
        Assert.Contains($"server {name}-default-worker-0", reason);
        Assert.Contains("nodegroup default-worker", reason);
        Assert.Contains("No valid host was found", reason);
        Assert.Contains("default-worker", failed["faults"]!.AsObject().Select(kv => kv.Key));
        await demo.DeleteAsync($"/v1/clusters/{uuid}").ExpectAsync(204);
        await Clusters.WaitForGoneAsync(demo, uuid);
        await using var scope = Host.App.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<MagnetarDbContext>();
        Assert.Equal(0, await db.SimulatedResources.CountAsync(r => r.ClusterUuid == uuid));
    }

    [Fact]
    public async Task Stuck_load_balancer_delete_is_delete_failed_and_a_retry_succeeds()
    {
        var demo = await Host.ClientAsync("demo");
        var t = await Clusters.CreateTemplateAsync(demo, extra: ", \"master_lb_enabled\": true");
        var name = Clusters.UniqueName("lbfault");
        var fault = $"delete:loadbalancer";
        var uuid = await Clusters.CreateClusterAsync(demo, t["uuid"]!.GetValue<string>(), name);
        await Clusters.WaitForStatusAsync(demo, uuid, "CREATE_COMPLETE");
        var faults = Host.App.Services.GetRequiredService<SimulatedCloudFaults>();
        faults.Add(fault);
        try
        {
            await demo.DeleteAsync($"/v1/clusters/{uuid}").ExpectAsync(204);
            var failed = await Clusters.WaitForStatusAsync(demo, uuid, "DELETE_FAILED");
            Assert.Contains($"load balancer {name}-api-lb", failed["status_reason"]!.GetValue<string>());
        }
        finally { faults.Remove(fault); }
        await demo.DeleteAsync($"/v1/clusters/{uuid}").ExpectAsync(204);
        await Clusters.WaitForGoneAsync(demo, uuid);
    }

    // ---------- certificates ----------

    [Fact]
    public async Task Certificates_ca_sign_rotate_with_tempest_sha1_csr()
    {
        var demo = await Host.ClientAsync("demo");
        var t = await Clusters.CreateTemplateAsync(demo);
        var uuid = await Clusters.CreateClusterAsync(demo, t["uuid"]!.GetValue<string>());
        await Clusters.WaitForStatusAsync(demo, uuid, "CREATE_COMPLETE");
        var ca = await demo.GetAsync($"/v1/certificates/{uuid}").ExpectAsync(200);
        var caPem = ca["pem"]!.GetValue<string>();
        Assert.StartsWith("-----BEGIN CERTIFICATE-----", caPem);
        Assert.Equal(uuid, ca["cluster_uuid"]!.GetValue<string>());

        var signed = await demo.PostAsync("/v1/certificates", Http.Json(new JsonObject { ["cluster_uuid"] = uuid, ["csr"] = Fixtures.TempestCsr })).ExpectAsync(201);
        var pem = signed["pem"]!.GetValue<string>();
        Assert.Equal("OK", Fixtures.OpensslVerify(caPem, pem));

        var bad = await demo.PostAsync("/v1/certificates", Http.Json(new JsonObject { ["cluster_uuid"] = uuid, ["csr"] = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----" })).ExpectAsync(400);
        Assert.Contains("csr", bad.ErrorDetail());
        await demo.PostAsync("/v1/certificates", Http.Json(new JsonObject { ["cluster_uuid"] = Guid.NewGuid().ToString(), ["csr"] = Fixtures.TempestCsr })).ExpectAsync(400);

        await demo.PatchAsync($"/v1/certificates/{uuid}", null).ExpectAsync(202);
        // Asynchronous, as Magnum's: UPDATE_IN_PROGRESS until the nodes went through it (none bootstrapped here).
        await Clusters.WaitForStatusAsync(demo, uuid, "UPDATE_COMPLETE");
        var rotated = await demo.GetAsync($"/v1/certificates/{uuid}").ExpectAsync(200);
        Assert.NotEqual(caPem, rotated["pem"]!.GetValue<string>());
        Assert.NotEqual("OK", Fixtures.OpensslVerify(rotated["pem"]!.GetValue<string>(), pem));
    }

    [Fact]
    public async Task Csr_subject_is_decided_by_policy_not_by_the_csr()
    {
        var admin = await Host.ClientAsync("admin");
        var t = await Clusters.CreateTemplateAsync(admin);
        var uuid = await Clusters.CreateClusterAsync(admin, t["uuid"]!.GetValue<string>());
        // The tempest CSR asks for whatever subject it likes; the admin gets cluster-admin, named after the user.
        var signed = await admin.PostAsync("/v1/certificates", Http.Json(new JsonObject { ["cluster_uuid"] = uuid, ["csr"] = Fixtures.TempestCsr })).ExpectAsync(201);
        var subject = Fixtures.Subject(signed["pem"]!.GetValue<string>());
        Assert.Contains("CN=t-admin", subject);
        Assert.Contains("O=system:masters", subject);

        // A member who did not create the cluster (same project, different user) does not get system:masters.
        var store = Host.App.Services.GetRequiredService<Magnetar.Identity.BuiltInIdentityStore>();
        store.EnsureUser("colleague", TestHost.Password, "admin", "member");
        var colleague = Host.Anonymous();
        colleague.DefaultRequestHeaders.Add("X-Auth-Token", await Host.IssueTokenAsync("colleague", "admin"));
        var csr = Fixtures.MakeCsr("CN=admin, O=system:masters");
        var theirs = await colleague.PostAsync("/v1/certificates", Http.Json(new JsonObject { ["cluster_uuid"] = uuid, ["csr"] = csr })).ExpectAsync(201);
        var s2 = Fixtures.Subject(theirs["pem"]!.GetValue<string>());
        Assert.Contains("CN=colleague", s2);
        Assert.DoesNotContain("system:masters", s2);
    }

    [Fact]
    public async Task Ca_private_key_is_encrypted_at_rest()
    {
        var demo = await Host.ClientAsync("demo");
        var t = await Clusters.CreateTemplateAsync(demo);
        var uuid = await Clusters.CreateClusterAsync(demo, t["uuid"]!.GetValue<string>());
        await demo.GetAsync($"/v1/certificates/{uuid}").ExpectAsync(200);
        await Clusters.WaitForStatusAsync(demo, uuid, "CREATE_COMPLETE"); // the conductor adds the node secrets
        await using var scope = Host.App.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<MagnetarDbContext>();
        var conn = db.Database.GetDbConnection();
        await conn.OpenAsync();
        await using var cmd = conn.CreateCommand();
        cmd.CommandText = $"SELECT \"CaType\", \"CertificatePem\", \"ProtectedPrivateKey\" FROM cluster_cas WHERE \"ClusterUuid\" = '{uuid}' ORDER BY \"CaType\"";
        var rows = new List<(string Type, string Public, string Sealed)>();
        await using (var reader = await cmd.ExecuteReaderAsync())
            while (await reader.ReadAsync()) rows.Add((reader.GetString(0), reader.GetString(1), reader.GetString(2)));
        Assert.Equal(["etcd", "front-proxy", "kubeadm-token", "kubernetes", "service-account"], rows.Select(r => r.Type));
        var protector = Host.App.Services.GetRequiredService<Magnetar.Bootstrap.Secrets.ISecretProtector>();
        foreach (var (type, pub, raw) in rows)
        {
            Assert.StartsWith("mg1:", raw);
            Assert.DoesNotContain("PRIVATE KEY", raw);
            Assert.DoesNotContain("PRIVATE KEY", pub);
            // Sealed, not encoded: the secret opens with the cluster's purpose only, and no run of it is in the stored text.
            var secret = protector.Unprotect(raw, type == "kubernetes" ? $"cluster-ca-key:{uuid}" : $"cluster-secret:{type}:{uuid}");
            Assert.Throws<Magnetar.Bootstrap.Secrets.SecretUnprotectException>(() => protector.Unprotect(raw, $"cluster-secret:{type}:{Guid.NewGuid()}"));
            var runs = type == "kubeadm-token" ? [secret.Split('.')[1]] : secret.Split('\n').Where(l => l.Length >= 32 && !l.StartsWith("-----")).ToArray();
            Assert.NotEmpty(runs);
            Assert.All(runs, run => Assert.DoesNotContain(run, raw));
        }
        Assert.Matches("^[a-z0-9]{6}$", rows.Single(r => r.Type == "kubeadm-token").Public); // only the token's public id
    }

    // ---------- quotas, stats, services ----------

    [Fact]
    public async Task Quotas_are_admin_managed_and_enforced()
    {
        var admin = await Host.ClientAsync("admin");
        var store = Host.App.Services.GetRequiredService<Magnetar.Identity.BuiltInIdentityStore>();
        var project = store.EnsureProject("quota-" + Guid.NewGuid().ToString("N")[..6]);
        store.EnsureUser("q-" + project.Name, TestHost.Password, project.Name, "member");
        var user = Host.Anonymous();
        user.DefaultRequestHeaders.Add("X-Auth-Token", await Host.IssueTokenAsync("q-" + project.Name, project.Name));
        user.DefaultRequestHeaders.Add("OpenStack-API-Version", "container-infra latest");

        await user.PostJson("/v1/quotas", $$"""{"project_id": "{{project.Id}}", "resource": "Cluster", "hard_limit": 1}""").ExpectAsync(403);
        var q = await admin.PostJson("/v1/quotas", $$"""{"project_id": "{{project.Id}}", "resource": "Cluster", "hard_limit": 1}""").ExpectAsync(201);
        Assert.Equal(1, q["hard_limit"]!.GetValue<int>());
        await admin.PostJson("/v1/quotas", $$"""{"project_id": "{{project.Id}}", "resource": "Cluster", "hard_limit": 1}""").ExpectAsync(409);
        var shown = await user.GetAsync($"/v1/quotas/{project.Id}/Cluster").ExpectAsync(200);
        Assert.Equal(1, shown["hard_limit"]!.GetValue<int>());
        await user.GetAsync($"/v1/quotas/someone-else/Cluster").ExpectAsync(403);

        var t = await Clusters.CreateTemplateAsync(user);
        await Clusters.CreateClusterAsync(user, t["uuid"]!.GetValue<string>());
        var over = await user.PostJson("/v1/clusters", $$"""{"cluster_template_id": "{{t["uuid"]}}"}""").ExpectAsync(403);
        Assert.Contains("maximum clusters per project, 1", over.ErrorDetail());

        var upd = await admin.PatchJson($"/v1/quotas/{project.Id}/Cluster", """{"hard_limit": 2}""").ExpectAsync(202);
        Assert.Equal(2, upd["hard_limit"]!.GetValue<int>());
        await Clusters.CreateClusterAsync(user, t["uuid"]!.GetValue<string>());
        var all = await admin.GetAsync("/v1/quotas?all_tenants=true").ExpectAsync(200);
        Assert.Contains(all["quotas"]!.AsArray(), x => x!["project_id"]!.GetValue<string>() == project.Id);
        await admin.DeleteAsync($"/v1/quotas/{project.Id}/Cluster").ExpectAsync(204);
        await admin.DeleteAsync($"/v1/quotas/{project.Id}/Cluster").ExpectAsync(404);
        var dflt = await user.GetAsync($"/v1/quotas/{project.Id}/Cluster").ExpectAsync(200);
        Assert.Equal(20, dflt["hard_limit"]!.GetValue<int>());

        var stats = await user.GetAsync("/v1/stats").ExpectAsync(200);
        Assert.Equal(2, stats["clusters"]!.GetValue<int>());
        Assert.Equal(4, stats["nodes"]!.GetValue<int>()); // 2 clusters × (1 master + 1 worker)
        await user.GetAsync("/v1/stats?project_id=other").ExpectAsync(403);
        await user.GetAsync("/v1/stats?type=nodes").ExpectAsync(400);
    }

    [Fact]
    public async Task Service_list_shows_this_conductor_to_admins_only()
    {
        var admin = await Host.ClientAsync("admin");
        var deadline = DateTime.UtcNow.AddSeconds(10);
        JsonNode body;
        do
        {
            body = await admin.GetAsync("/v1/mservices").ExpectAsync(200);
            if (body["mservices"]!.AsArray().Count > 0) break;
            await Task.Delay(100);
        } while (DateTime.UtcNow < deadline);
        var svc = body["mservices"]![0]!;
        Assert.Equal("magnum-conductor", svc["binary"]!.GetValue<string>());
        Assert.Equal("up", svc["state"]!.GetValue<string>());
        await (await Host.ClientAsync("demo")).GetAsync("/v1/mservices").ExpectAsync(403);
    }

    [Fact]
    public async Task Unknown_routes_are_magnum_404s()
    {
        var demo = await Host.ClientAsync("demo");
        var e = await demo.GetAsync("/v1/bogus/thing").ExpectAsync(404);
        Assert.NotEmpty(e.ErrorDetail());
    }
}

public sealed class SqliteApiTests(SqliteHostFixture f) : ApiContractTests(f), IClassFixture<SqliteHostFixture>;
public sealed class PostgresApiTests(PostgresHostFixture f) : ApiContractTests(f), IClassFixture<PostgresHostFixture>;
