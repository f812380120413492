using System.Net;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Magnetar.Identity;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Magnetar.Tests;

/// <summary>
/// The standalone compute, network, image and orchestration endpoints (built-in identity + simulated cloud) in the
/// shapes Horizon's clients parse, their tenant isolation, and their absence in keystone mode.
/// </summary>
public sealed class StandaloneCloudEndpointTests(CliIdentityFixture server) : IClassFixture<CliIdentityFixture>
{
    private TestHost Host => server.Host;

    private async Task<HttpClient> As(string user, string? computeVersion = null)
    {
        var c = await Host.ClientAsync(user);
        if (computeVersion is not null) c.DefaultRequestHeaders.Add("X-OpenStack-Nova-API-Version", computeVersion);
        return c;
    }

    private async Task<JsonNode> TokenBody(string user)
    {
        var (name, project, _) = TestHost.Users[user];
        var resp = await Host.Anonymous().PostAsync("/identity/v3/auth/tokens", Http.Json(KeystoneRequests.PasswordAuth(name, TestHost.Password, project)));
        return (await resp.ReadJsonAsync())["token"]!;
    }

    private static string Id(string kind, string name) => Magnetar.Cloud.Simulated.SimulatedCatalog.IdOf(kind, name);

    [Fact]
    public async Task Catalog_lists_compute_network_image_and_orchestration_for_the_project()
    {
        var token = await TokenBody("demo");
        var projectId = token["project"]!["id"]!.GetValue<string>();
        var catalog = token["catalog"]!.AsArray().ToDictionary(s => s!["type"]!.GetValue<string>(), s => s!["endpoints"]![0]!["url"]!.GetValue<string>());
        Assert.Equal("http://magnetar.test/compute/v2.1", catalog["compute"]);
        Assert.Equal("http://magnetar.test/network", catalog["network"]);
        Assert.Equal("http://magnetar.test/image", catalog["image"]);
        Assert.Equal($"http://magnetar.test/orchestration/v1/{projectId}", catalog["orchestration"]);
        Assert.Equal(6, catalog.Count);

        // anonymous callers get keystonemiddleware's 401
        foreach (var path in new[] { "/compute/v2.1/flavors", "/network/v2.0/networks", "/image/v2/images", $"/orchestration/v1/{projectId}/stacks" })
        {
            var body = await Host.Anonymous().GetAsync(path).ExpectAsync(401);
            Assert.Equal(401, body["error"]!["code"]!.GetValue<int>());
        }
    }

    [Fact]
    public async Task Errors_raised_outside_the_endpoints_take_each_services_fault_format()
    {
        // An oversize body is refused (413) before routing by the error middleware, which writes Magnum's format on
        // /v1 and, here, the fault body each service's own client parses (novaclient read Magnum's as a bare 500).
        var c = await As("demo");
        var projectId = (await TokenBody("demo"))["project"]!["id"]!.GetValue<string>();
        var big = new string('x', 2 * 1024 * 1024);
        async Task<(int, string)> Post(string path)
        {
            var resp = await c.PostAsync(path, new StringContent("{\"a\": \"" + big + "\"}", System.Text.Encoding.UTF8, "application/json"));
            return ((int)resp.StatusCode, await resp.Content.ReadAsStringAsync());
        }

        var (code, body) = await Post("/compute/v2.1/os-keypairs");
        Assert.Equal(413, code);
        Assert.Equal(413, JsonNode.Parse(body)!["overLimit"]!["code"]!.GetValue<int>());
        Assert.Contains("Request body too large", JsonNode.Parse(body)!["overLimit"]!["message"]!.GetValue<string>());

        (code, body) = await Post("/network/v2.0/networks");
        Assert.Equal(413, code);
        Assert.Equal("HTTPRequestEntityTooLarge", JsonNode.Parse(body)!["NeutronError"]!["type"]!.GetValue<string>());

        (code, body) = await Post("/image/v2/images");
        Assert.Equal(413, code);
        Assert.StartsWith("413 Request Entity Too Large\n\nRequest body too large", body);

        (code, body) = await Post($"/orchestration/v1/{projectId}/stacks");
        Assert.Equal(413, code);
        var heat = JsonNode.Parse(body)!;
        Assert.Equal(413, heat["code"]!.GetValue<int>());
        Assert.Contains("Request body too large", heat["error"]!["message"]!.GetValue<string>());

        // Magnum's own routes keep Magnum's format.
        (code, body) = await Post("/v1/clusters");
        Assert.Equal(413, code);
        Assert.Equal(413, JsonNode.Parse(body)!["errors"]![0]!["status"]!.GetValue<int>());
    }

    [Fact]
    public async Task Compute_version_document_flavors_zones_and_microversions_follow_nova()
    {
        var c = await As("demo");
        var version = (await c.GetAsync("/compute/v2.1/").ExpectAsync(200))["version"]!;
        Assert.Equal("2.79", version["version"]!.GetValue<string>());
        Assert.Equal("2.1", version["min_version"]!.GetValue<string>());

        var flavors = (await c.GetAsync("/compute/v2.1/flavors/detail").ExpectAsync(200))["flavors"]!.AsArray();
        var small = flavors.Single(f => f!["name"]!.GetValue<string>() == "m1.small")!;
        Assert.Equal(Id("flavor", "m1.small"), small["id"]!.GetValue<string>());
        Assert.Equal(2048, small["ram"]!.GetValue<int>());
        Assert.Equal(1, small["vcpus"]!.GetValue<int>());
        Assert.Equal("", small["swap"]!.GetValue<string>()); // before 2.75
        Assert.True(small["os-flavor-access:is_public"]!.GetValue<bool>());
        await c.GetAsync($"/compute/v2.1/flavors/{Id("flavor", "m1.small")}").ExpectAsync(200);
        await c.GetAsync("/compute/v2.1/flavors/m1.small/os-extra_specs").ExpectAsync(200);
        var missing = await c.GetAsync("/compute/v2.1/flavors/nope").ExpectAsync(404);
        Assert.Equal(404, missing["itemNotFound"]!["code"]!.GetValue<int>());

        var zones = await c.GetAsync("/compute/v2.1/os-availability-zone").ExpectAsync(200);
        Assert.Equal("nova", zones["availabilityZoneInfo"]![0]!["zoneName"]!.GetValue<string>());
        Assert.Equal(-1, (await c.GetAsync("/compute/v2.1/limits").ExpectAsync(200))["limits"]!["absolute"]!["maxTotalInstances"]!.GetValue<int>());

        var at275 = await As("demo", "2.75");
        var resp = await at275.GetAsync("/compute/v2.1/flavors/detail");
        Assert.Equal("compute 2.75", resp.Headers.GetValues("OpenStack-API-Version").Single());
        Assert.Equal(0, (await resp.ReadJsonAsync())["flavors"]![0]!["swap"]!.GetValue<int>());
        var tooNew = await (await As("demo", "2.80")).GetAsync("/compute/v2.1/flavors").ExpectAsync(406);
        Assert.Contains("maximum is 2.79", tooNew["notAcceptable"]!["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task Images_networks_and_templates_referring_to_them_by_id_or_name()
    {
        var c = await As("demo");
        var images = await c.GetAsync("/image/v2/images?limit=2").ExpectAsync(200);
        Assert.Equal(2, images["images"]!.AsArray().Count);
        string? next = images["next"]!.GetValue<string>();
        Assert.StartsWith("/v2/images?", next);
        var seen = images["images"]!.AsArray().Select(i => i!["name"]!.GetValue<string>()).ToList();
        for (var pages = 1; next is not null; pages++)
        {
            Assert.True(pages < 5);
            var page = await c.GetAsync("/image" + next).ExpectAsync(200);
            Assert.True(page["images"]!.AsArray().Count <= 2);
            seen.AddRange(page["images"]!.AsArray().Select(i => i!["name"]!.GetValue<string>()));
            next = page["next"]?.GetValue<string>();
        }
        Assert.Equal(["fedora-coreos-40", "fedora-coreos-latest", "flatcar-stable", "ubuntu-22.04", "ubuntu-24.04"], seen.Order());
        var fcos = await c.GetAsync($"/image/v2/images/{Id("image", "fedora-coreos-40")}").ExpectAsync(200);
        Assert.Equal("fedora-coreos", fcos["os_distro"]!.GetValue<string>());
        Assert.Equal("active", fcos["status"]!.GetValue<string>());
        Assert.Equal("public", fcos["visibility"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.NotFound, (await c.GetAsync("/image/v2/images/fedora-coreos-40")).StatusCode);
        Assert.Equal("image", (await c.GetAsync("/image/v2/schemas/image").ExpectAsync(200))["name"]!.GetValue<string>());

        var external = await c.GetAsync("/network/v2.0/networks?router%3Aexternal=True").ExpectAsync(200);
        var pub = Assert.Single(external["networks"]!.AsArray())!;
        Assert.Equal(Id("network", "public"), pub["id"]!.GetValue<string>());
        Assert.True(pub["router:external"]!.GetValue<bool>());
        Assert.Empty((await c.GetAsync("/network/v2.0/networks?router%3Aexternal=False&shared=False").ExpectAsync(200))["networks"]!.AsArray());
        var subnets = await c.GetAsync($"/network/v2.0/subnets?network_id={pub["id"]}").ExpectAsync(200);
        Assert.Equal("172.24.0.0/16", subnets["subnets"]![0]!["cidr"]!.GetValue<string>());
        Assert.Empty((await c.GetAsync("/network/v2.0/ports").ExpectAsync(200))["ports"]!.AsArray());
        Assert.Contains((await c.GetAsync("/network/v2.0/extensions").ExpectAsync(200))["extensions"]!.AsArray(), e => e!["alias"]!.GetValue<string>() == "external-net");
        var notFound = await c.GetAsync("/network/v2.0/networks/nope").ExpectAsync(404);
        Assert.Equal("NetworkNotFound", notFound["NeutronError"]!["type"]!.GetValue<string>());

        // Horizon's forms send ids: the template resolves them as it resolves names
        var name = Clusters.UniqueName("tpl-ids");
        var body = $$"""{"name": "{{name}}", "coe": "kubernetes", "image_id": "{{Id("image", "fedora-coreos-40")}}", "external_network_id": "{{Id("network", "public")}}", "flavor_id": "{{Id("flavor", "m1.small")}}", "master_flavor_id": "{{Id("flavor", "m1.medium")}}"}""";
        await c.PostJson("/v1/clustertemplates", body).ExpectAsync(201);
        await c.PostJson("/v1/clustertemplates", body.Replace(name, name + "x").Replace(Id("image", "fedora-coreos-40"), Guid.NewGuid().ToString())).ExpectAsync(400);
    }

    [Fact]
    public async Task Keypairs_are_created_imported_listed_and_deleted_per_user()
    {
        var demo = await As("demo", "2.2");
        var created = await demo.PostJson("/compute/v2.1/os-keypairs", """{"keypair": {"name": "made-here"}}""").ExpectAsync(201);
        var kp = created["keypair"]!;
        Assert.StartsWith("-----BEGIN RSA PRIVATE KEY-----", kp["private_key"]!.GetValue<string>());
        Assert.StartsWith("ssh-rsa ", kp["public_key"]!.GetValue<string>());
        Assert.Equal("ssh", kp["type"]!.GetValue<string>());
        // the generated key pair is a real one: the private key's public half is the public key
        using (var rsa = RSA.Create())
        {
            rsa.ImportFromPem(kp["private_key"]!.GetValue<string>());
            var blob = Convert.FromBase64String(kp["public_key"]!.GetValue<string>().Split(' ')[1]);
            var modulus = rsa.ExportParameters(false).Modulus!;
            Assert.True(blob.AsSpan().IndexOf(modulus) > 0);
            Assert.Equal(string.Join(':', MD5.HashData(blob).Select(b => b.ToString("x2"))), kp["fingerprint"]!.GetValue<string>());
        }

        var imported = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHqtZAq0R/SSCCNdeDR3zdWyv3HmFsGcFeYi0T1Z2N4W user@host";
        var imp = await demo.PostJson("/compute/v2.1/os-keypairs", """{"keypair": {"name": "brought", "public_key": "KEY"}}""".Replace("KEY", imported)).ExpectAsync(201);
        Assert.Null(imp["keypair"]!["private_key"]);
        Assert.Equal(imported, imp["keypair"]!["public_key"]!.GetValue<string>());
        await demo.PostJson("/compute/v2.1/os-keypairs", """{"keypair": {"name": "brought"}}""").ExpectAsync(409);
        await demo.PostJson("/compute/v2.1/os-keypairs", """{"keypair": {"name": "bad", "public_key": "not a key"}}""").ExpectAsync(400);
        await demo.PostJson("/compute/v2.1/os-keypairs", """{"keypair": {"name": "bad/name"}}""").ExpectAsync(400);

        var list = (await demo.GetAsync("/compute/v2.1/os-keypairs").ExpectAsync(200))["keypairs"]!.AsArray().Select(k => k!["keypair"]!["name"]!.GetValue<string>()).ToList();
        Assert.Equal(["brought", "made-here"], list);
        var one = await demo.GetAsync("/compute/v2.1/os-keypairs/brought").ExpectAsync(200);
        Assert.Equal(imp["keypair"]!["fingerprint"]!.GetValue<string>(), one["keypair"]!["fingerprint"]!.GetValue<string>());

        // other users see none of them (demo's reader is another user of the same project, as in Nova)
        var other = await As("other", "2.2");
        Assert.Empty((await other.GetAsync("/compute/v2.1/os-keypairs").ExpectAsync(200))["keypairs"]!.AsArray());
        await other.GetAsync("/compute/v2.1/os-keypairs/brought").ExpectAsync(404);
        await other.DeleteAsync("/compute/v2.1/os-keypairs/brought").ExpectAsync(404);
        await (await As("reader", "2.2")).GetAsync("/compute/v2.1/os-keypairs/brought").ExpectAsync(404);

        // kept in the data directory, owner-only
        var file = Path.Combine(Host.DataDir, "keypairs.json");
        Assert.Contains("brought", File.ReadAllText(file));
        Assert.DoesNotContain("PRIVATE KEY", File.ReadAllText(file));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));

        Assert.Equal(HttpStatusCode.NoContent, (await demo.DeleteAsync("/compute/v2.1/os-keypairs/brought")).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await demo.DeleteAsync("/compute/v2.1/os-keypairs/made-here")).StatusCode);
        await demo.GetAsync("/compute/v2.1/os-keypairs/brought").ExpectAsync(404);
        Assert.Empty((await demo.GetAsync("/compute/v2.1/os-keypairs").ExpectAsync(200))["keypairs"]!.AsArray());
    }

    [Fact]
    public async Task Resize_form_finds_the_clusters_stack_and_counts_its_workers_and_tenants_see_only_their_own()
    {
        var demo = await As("demo");
        var template = await Clusters.CreateTemplateAsync(demo);
        var uuid = await Clusters.CreateClusterAsync(demo, template["uuid"]!.GetValue<string>(), extra: """, "node_count": 3""");
        var cluster = await Clusters.WaitForStatusAsync(demo, uuid, "CREATE_COMPLETE");
        Assert.Equal(uuid, cluster["stack_id"]!.GetValue<string>());
        var projectId = cluster["project_id"]!.GetValue<string>();
        var summary = (await demo.GetAsync("/v1/clusters").ExpectAsync(200))["clusters"]!.AsArray().Single(x => x!["uuid"]!.GetValue<string>() == uuid)!;
        Assert.Equal(uuid, summary["stack_id"]!.GetValue<string>());

        // heatclient: GET /stacks/<id> is redirected to /stacks/<name>/<id>
        var redirect = await demo.GetAsync($"/orchestration/v1/{projectId}/stacks/{uuid}");
        Assert.Equal(HttpStatusCode.Redirect, redirect.StatusCode);
        var location = redirect.Headers.Location!.ToString();
        Assert.StartsWith($"http://magnetar.test/orchestration/v1/{projectId}/stacks/", location);
        var stack = (await demo.GetAsync(location.Replace("http://magnetar.test", "")).ExpectAsync(200))["stack"]!;
        var stackName = stack["stack_name"]!.GetValue<string>();
        Assert.Equal(uuid, stack["id"]!.GetValue<string>());
        Assert.Equal("CREATE_COMPLETE", stack["stack_status"]!.GetValue<string>());
        Assert.StartsWith(cluster["name"]!.GetValue<string>() + "-", stackName);

        // magnum_ui/api/rest/magnum.py ClusterResize.get: servers named "<stack>-" whose name starts with <stack>-node or -minion
        var servers = (await demo.GetAsync($"/compute/v2.1/servers/detail?name={Uri.EscapeDataString(stackName + "-")}&project_id={projectId}").ExpectAsync(200))["servers"]!.AsArray();
        var workers = servers.Where(s => s!["name"]!.GetValue<string>().StartsWith(stackName + "-node") || s!["name"]!.GetValue<string>().StartsWith(stackName + "-minion")).ToList();
        Assert.Equal(cluster["node_count"]!.GetValue<int>(), workers.Count);
        Assert.Equal(3, workers.Count);
        Assert.Single(servers, s => s!["name"]!.GetValue<string>() == stackName + "-master-0");
        Assert.All(workers, w => Assert.StartsWith(cluster["name"]!.GetValue<string>() + "-default-worker-", w!["metadata"]!["magnetar_server_name"]!.GetValue<string>()));
        Assert.All(servers, s => Assert.Equal("ACTIVE", s!["status"]!.GetValue<string>()));
        Assert.Equal(Id("flavor", "m1.small"), workers[0]!["flavor"]!["id"]!.GetValue<string>()); // 2.1: the flavor by id
        Assert.Equal(Id("flavor", "m1.medium"), servers.Single(s => s!["name"]!.GetValue<string>() == stackName + "-master-0")!["flavor"]!["id"]!.GetValue<string>());

        // another nodegroup's servers, even one named like "node…", are not taken for default workers
        await demo.PostJson($"/v1/clusters/{uuid}/nodegroups", """{"name": "nodes-extra", "node_count": 1}""").ExpectAsync(202);
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while ((await demo.GetAsync($"/v1/clusters/{uuid}/nodegroups/nodes-extra").ExpectAsync(200))["status"]!.GetValue<string>() != "CREATE_COMPLETE")
        {
            Assert.True(DateTime.UtcNow < deadline, "nodegroup nodes-extra did not complete");
            await Task.Delay(50);
        }
        await Clusters.WaitForStatusAsync(demo, uuid, "UPDATE_COMPLETE");
        servers = (await demo.GetAsync($"/compute/v2.1/servers/detail?name={Uri.EscapeDataString(stackName + "-")}").ExpectAsync(200))["servers"]!.AsArray();
        Assert.Single(servers, s => s!["name"]!.GetValue<string>() == stackName + "-ng-nodes-extra-0");
        Assert.Equal(3, servers.Count(s => s!["name"]!.GetValue<string>().StartsWith(stackName + "-node") || s!["name"]!.GetValue<string>().StartsWith(stackName + "-minion")));

        // the ids the form offers for nodes_to_remove are the ones Magnum's resize accepts
        var removed = workers[0]!["id"]!.GetValue<string>();
        await demo.PostJson($"/v1/clusters/{uuid}/actions/resize", $$"""{"node_count": 2, "nodes_to_remove": ["{{removed}}"], "nodegroup": "default-worker"}""").ExpectAsync(202);
        await Clusters.WaitForStatusAsync(demo, uuid, "UPDATE_COMPLETE");
        var after = (await demo.GetAsync($"/compute/v2.1/servers/detail?name={Uri.EscapeDataString(stackName + "-")}").ExpectAsync(200))["servers"]!.AsArray();
        Assert.Equal(2, after.Count(s => s!["name"]!.GetValue<string>().StartsWith(stackName + "-node")));
        Assert.DoesNotContain(after, s => s!["id"]!.GetValue<string>() == removed);
        var one = await demo.GetAsync($"/compute/v2.1/servers/{after[0]!["id"]}").ExpectAsync(200);
        Assert.Equal(projectId, one["server"]!["tenant_id"]!.GetValue<string>());
        // at 2.47+ the flavor is embedded
        var embedded = await (await As("demo", "2.47")).GetAsync($"/compute/v2.1/servers/{after[0]!["id"]}").ExpectAsync(200);
        Assert.NotNull(embedded["server"]!["flavor"]!["original_name"]);

        // other tenants: no servers, no stack, not even with the project in the URL; admin sees them with all_tenants
        var other = await As("other");
        Assert.DoesNotContain((await other.GetAsync("/compute/v2.1/servers/detail").ExpectAsync(200))["servers"]!.AsArray(), s => s!["tenant_id"]!.GetValue<string>() == projectId);
        await other.GetAsync($"/compute/v2.1/servers/{after[0]!["id"]}").ExpectAsync(404);
        await other.GetAsync($"/orchestration/v1/{projectId}/stacks/{uuid}").ExpectAsync(403);
        var otherProject = (await TokenBody("other"))["project"]!["id"]!.GetValue<string>();
        await other.GetAsync($"/orchestration/v1/{otherProject}/stacks/{uuid}").ExpectAsync(404);
        var admin = await As("admin");
        Assert.DoesNotContain((await admin.GetAsync("/compute/v2.1/servers/detail").ExpectAsync(200))["servers"]!.AsArray(), s => s!["tenant_id"]!.GetValue<string>() == projectId);
        Assert.Contains((await admin.GetAsync("/compute/v2.1/servers/detail?all_tenants=1").ExpectAsync(200))["servers"]!.AsArray(), s => s!["tenant_id"]!.GetValue<string>() == projectId);
        // demo's own networks include its cluster's
        Assert.Contains((await demo.GetAsync($"/network/v2.0/networks?tenant_id={projectId}").ExpectAsync(200))["networks"]!.AsArray(), n => n!["name"]!.GetValue<string>() == cluster["name"]!.GetValue<string>() + "-net");
        Assert.Empty((await other.GetAsync($"/network/v2.0/networks?tenant_id={projectId}").ExpectAsync(200))["networks"]!.AsArray());
    }

    private sealed class StubValidator : ITokenValidator
    {
        public Task<TokenValidationResult> ValidateAsync(string token, CancellationToken cancellationToken) => Task.FromResult(TokenValidationResult.Valid(
            new AuthContext("user-1", "alice", "0123456789abcdef0123456789abcdef", "proj", "default", ["member"], DateTimeOffset.UtcNow.AddHours(1))));
    }

    [Fact]
    public async Task In_keystone_mode_there_are_no_such_endpoints_and_no_stack_id()
    {
        await using var host = await TestHost.StartAsync(Db.Sqlite, settings: new()
        {
            ["Magnetar:Identity:Mode"] = "keystone",
            ["Magnetar:Identity:Keystone:AuthUrl"] = "http://127.0.0.1:9/v3",
        }, services: s => s.Replace(ServiceDescriptor.Singleton<ITokenValidator>(new StubValidator())));
        var c = host.Anonymous();
        c.DefaultRequestHeaders.Add("X-Auth-Token", "anything");
        c.DefaultRequestHeaders.Add("OpenStack-API-Version", "container-infra latest");
        foreach (var path in new[] { "/compute/v2.1", "/compute/v2.1/flavors", "/compute/v2.1/os-keypairs", "/network/v2.0/networks", "/image/v2/images", "/orchestration/v1/0123456789abcdef0123456789abcdef/stacks", "/identity/v3/auth/tokens" })
            Assert.Equal(HttpStatusCode.NotFound, (await c.GetAsync(path)).StatusCode);
        Assert.Null(host.App.Services.GetService<BuiltInCatalogEntries>());

        var template = await Clusters.CreateTemplateAsync(c);
        var uuid = await Clusters.CreateClusterAsync(c, template["uuid"]!.GetValue<string>());
        var cluster = await c.GetAsync($"/v1/clusters/{uuid}").ExpectAsync(200);
        Assert.Null(cluster["stack_id"]);
        var ng = (await c.GetAsync($"/v1/clusters/{uuid}/nodegroups").ExpectAsync(200))["nodegroups"]!.AsArray();
        Assert.All(ng, n => Assert.Null(n!["stack_id"]));
    }
}

/// <summary>The installed Python clients Horizon uses (novaclient, neutronclient, glanceclient, heatclient) against the server process.</summary>
public sealed class StandaloneCloudClientTests(ServerProcessFixture server) : IClassFixture<ServerProcessFixture>
{
    private const string Script = """
        import json, sys
        from keystoneauth1 import session
        from keystoneauth1.identity import v3
        from novaclient import client as nova_client, api_versions
        from neutronclient.v2_0 import client as neutron_client
        from glanceclient import client as glance_client
        from heatclient import client as heat_client
        url, user, password, project, cluster = sys.argv[1:6]
        auth = v3.Password(auth_url=url, username=user, password=password, user_domain_name='Default', project_name=project, project_domain_name='Default')
        sess = session.Session(auth=auth)
        out = {}
        version = api_versions.discover_version(nova_client.Client('2.1', session=sess), api_versions.APIVersion('2.79'))
        nova = nova_client.Client(version.get_string(), session=sess)
        out['nova_version'] = version.get_string()
        out['flavors'] = [f.name for f in nova.flavors.list(detailed=True)]
        out['zones'] = [z.zoneName for z in nova.availability_zones.list(detailed=False)]
        kp = nova.keypairs.create('py-generated')
        out['generated_private'] = kp.private_key.startswith('-----BEGIN RSA PRIVATE KEY-----')
        imported = nova.keypairs.create('py-imported', public_key=kp.public_key)
        out['imported_fingerprint_matches'] = imported.fingerprint == kp.fingerprint
        out['keypairs'] = sorted(k.name for k in nova.keypairs.list())
        nova.keypairs.delete('py-generated')
        nova.keypairs.delete('py-imported')
        out['keypairs_after'] = [k.name for k in nova.keypairs.list()]
        neutron = neutron_client.Client(session=sess)
        out['external'] = [n['name'] for n in neutron.list_networks(**{'router:external': True})['networks']]
        out['subnets'] = [s['cidr'] for s in neutron.list_subnets()['subnets']]
        glance = glance_client.Client('2', session=sess)
        out['images'] = sorted(i.name for i in glance.images.list(page_size=2))
        # magnum_ui/api/rest/magnum.py ClusterResize.get, with Horizon's clients
        heat = heat_client.Client('1', endpoint=sess.get_endpoint(service_type='orchestration', interface='public'), token=sess.get_token())
        stack = heat.stacks.get(cluster)
        servers = nova.servers.list(search_opts={'name': '%s-' % stack.stack_name, 'project_id': sess.get_project_id()})
        out['stack_name'] = stack.stack_name
        out['stack_status'] = stack.stack_status
        out['workers'] = sorted(s.name for s in servers if s.name.startswith('%s-minion' % stack.stack_name) or s.name.startswith('%s-node' % stack.stack_name))
        print(json.dumps(out))
        """;

    [Fact]
    public async Task Novaclient_neutronclient_glanceclient_and_heatclient_read_the_simulated_cloud()
    {
        var rc = server.Openrc("openrc-demo");
        // a cluster with two workers, through the Magnum API
        using var http = new HttpClient { BaseAddress = new Uri(server.Url) };
        var auth = await http.PostAsync("/identity/v3/auth/tokens", Http.Json(KeystoneRequests.PasswordAuth(rc["OS_USERNAME"], rc["OS_PASSWORD"], rc["OS_PROJECT_NAME"])));
        http.DefaultRequestHeaders.Add("X-Auth-Token", auth.Headers.GetValues("X-Subject-Token").Single());
        http.DefaultRequestHeaders.Add("OpenStack-API-Version", "container-infra latest");
        var template = await Clusters.CreateTemplateAsync(http);
        var uuid = await Clusters.CreateClusterAsync(http, template["uuid"]!.GetValue<string>(), extra: """, "node_count": 2""");
        var cluster = await Clusters.WaitForStatusAsync(http, uuid, "CREATE_COMPLETE", 120);

        var script = Path.Combine(server.Home, "standalone_cloud.py");
        await File.WriteAllTextAsync(script, Script);
        var r = await OpenStackCli.ExecAsync("/usr/bin/python3", server.Home, null,
            [script, rc["OS_AUTH_URL"], rc["OS_USERNAME"], rc["OS_PASSWORD"], rc["OS_PROJECT_NAME"], cluster["stack_id"]!.GetValue<string>()], 90);
        Assert.True(r.ExitCode == 0, $"python failed ({r.ExitCode}): {r.Stderr}\n{r.Stdout}\n--- server log ---\n{server.Log}");
        var o = JsonNode.Parse(r.Stdout)!;
        Assert.Equal("2.79", o["nova_version"]!.GetValue<string>());
        Assert.Contains("m1.small", o["flavors"]!.AsArray().Select(f => f!.GetValue<string>()));
        Assert.Equal(["nova"], o["zones"]!.AsArray().Select(f => f!.GetValue<string>()));
        Assert.True(o["generated_private"]!.GetValue<bool>());
        Assert.True(o["imported_fingerprint_matches"]!.GetValue<bool>());
        Assert.Equal(["py-generated", "py-imported"], o["keypairs"]!.AsArray().Select(f => f!.GetValue<string>()));
        Assert.Empty(o["keypairs_after"]!.AsArray());
        Assert.Equal(["public"], o["external"]!.AsArray().Select(f => f!.GetValue<string>()));
        Assert.Contains("172.24.0.0/16", o["subnets"]!.AsArray().Select(f => f!.GetValue<string>()));
        Assert.Equal(5, o["images"]!.AsArray().Count);
        Assert.Equal("CREATE_COMPLETE", o["stack_status"]!.GetValue<string>());
        var stackName = o["stack_name"]!.GetValue<string>();
        Assert.Equal([$"{stackName}-node-0", $"{stackName}-node-1"], o["workers"]!.AsArray().Select(f => f!.GetValue<string>()));
    }
}
