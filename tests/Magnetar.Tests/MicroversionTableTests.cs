using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Magnetar.Api;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Magnetar.Tests;

/// <summary>
/// Route by route, the microversions in which Magnetar serves each /v1 call, against the ones Magnum 15 really
/// serves it in: its controllers' <c>@base.Controller.api_version</c> decorators, not its API-version history
/// (which documents stats at 1.4, CA rotation at 1.5 and quotas at 1.6 while Magnum answers them at 1.1, and
/// clients such as gophercloud depend on that). The table below is checked three ways: every /v1 endpoint Magnetar
/// maps is in it (and nothing else), it agrees with Magnum's source where the magnum-api package put it, and each
/// route is called at the default version, just below its minimum, at its minimum and at <c>latest</c>.
/// </summary>
public sealed partial class MicroversionTableTests(SqliteHostFixture fixture) : IClassFixture<SqliteHostFixture>
{
    private TestHost Host => fixture.Host;

    /// <summary>One Magnum call: Magnetar's route, Magnum's controller file and method, and the microversion Magnum serves it from.</summary>
    public sealed record Row(string Verb, string Route, string MagnumFile, string MagnumMethod, string Since);

    public static readonly Row[] Table =
    [
        new("GET", "/v1", "__init__.py", "get", "1.1"),
        new("GET", "/v1/clustertemplates", "cluster_template.py", "get_all", "1.1"),
        new("GET", "/v1/clustertemplates/detail", "cluster_template.py", "detail", "1.1"),
        new("GET", "/v1/clustertemplates/{ident}", "cluster_template.py", "get_one", "1.1"),
        new("POST", "/v1/clustertemplates", "cluster_template.py", "post", "1.1"),
        new("PATCH", "/v1/clustertemplates/{ident}", "cluster_template.py", "patch", "1.1"),
        new("DELETE", "/v1/clustertemplates/{ident}", "cluster_template.py", "delete", "1.1"),
        new("GET", "/v1/clusters", "cluster.py", "get_all", "1.1"),
        new("GET", "/v1/clusters/detail", "cluster.py", "detail", "1.1"),
        new("GET", "/v1/clusters/{ident}", "cluster.py", "get_one", "1.1"),
        new("POST", "/v1/clusters", "cluster.py", "post", "1.1"),
        new("PATCH", "/v1/clusters/{ident}", "cluster.py", "patch", "1.1"),
        new("DELETE", "/v1/clusters/{ident}", "cluster.py", "delete", "1.1"),
        new("POST", "/v1/clusters/{ident}/actions/resize", "cluster_actions.py", "resize", "1.7"),
        new("POST", "/v1/clusters/{ident}/actions/upgrade", "cluster_actions.py", "upgrade", "1.7"),
        new("GET", "/v1/clusters/{cluster}/nodegroups", "nodegroup.py", "get_all", "1.9"),
        new("GET", "/v1/clusters/{cluster}/nodegroups/{ident}", "nodegroup.py", "get_one", "1.9"),
        new("POST", "/v1/clusters/{cluster}/nodegroups", "nodegroup.py", "post", "1.9"),
        new("PATCH", "/v1/clusters/{cluster}/nodegroups/{ident}", "nodegroup.py", "patch", "1.9"),
        new("DELETE", "/v1/clusters/{cluster}/nodegroups/{ident}", "nodegroup.py", "delete", "1.9"),
        new("GET", "/v1/certificates/{cluster}", "certificate.py", "get_one", "1.1"),
        new("POST", "/v1/certificates", "certificate.py", "post", "1.1"),
        new("PATCH", "/v1/certificates/{cluster}", "certificate.py", "patch", "1.1"),
        new("GET", "/v1/quotas", "quota.py", "get_all", "1.1"),
        // Not a Magnum route (Magnum would read "detail" as a project id): the quota list again, for clients that ask.
        new("GET", "/v1/quotas/detail", "quota.py", "get_all", "1.1"),
        new("GET", "/v1/quotas/{projectId}/{resource}", "quota.py", "get_one", "1.1"),
        new("POST", "/v1/quotas", "quota.py", "post", "1.1"),
        new("PATCH", "/v1/quotas/{projectId}/{resource}", "quota.py", "patch", "1.1"),
        new("DELETE", "/v1/quotas/{projectId}/{resource}", "quota.py", "delete", "1.1"),
        new("GET", "/v1/stats", "stats.py", "get_all", "1.1"),
        new("GET", "/v1/mservices", "magnum_services.py", "get_all", "1.1"),
    ];

    public static TheoryData<string, string> Routes()
    {
        var data = new TheoryData<string, string>();
        foreach (var r in Table) data.Add(r.Verb, r.Route);
        return data;
    }

    private static ApiVersion Parse(string v)
    {
        var p = v.Split('.');
        return new ApiVersion(int.Parse(p[0]), int.Parse(p[1]));
    }

    [Fact]
    public void Every_v1_endpoint_is_in_the_table_with_magnums_method_and_minimum()
    {
        var mapped = Host.App.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Where(e => ("/" + e.RoutePattern.RawText!.TrimStart('/')).StartsWith("/v1", StringComparison.Ordinal))
            .Where(e => e.Metadata.GetMetadata<HttpMethodMetadata>() is not null) // the Magnum-format 404 fallback has none
            .SelectMany(e => e.Metadata.GetMetadata<HttpMethodMetadata>()!.HttpMethods.Select(m => (Verb: m, Route: "/" + e.RoutePattern.RawText!.TrimStart('/').TrimEnd('/'), Call: e.Metadata.GetMetadata<MagnumCall>())))
            .ToList();
        var problems = new List<string>();
        foreach (var m in mapped)
        {
            var row = Table.FirstOrDefault(r => r.Verb == m.Verb && r.Route == m.Route);
            if (row is null) problems.Add($"{m.Verb} {m.Route} is mapped but not in the table");
            else if (m.Call is null) problems.Add($"{m.Verb} {m.Route} carries no MagnumCall metadata");
            else if (m.Call.Method != row.MagnumMethod || m.Call.Since != Parse(row.Since))
                problems.Add($"{m.Verb} {m.Route}: mapped as {m.Call.Method} since {m.Call.Since}, the table says {row.MagnumMethod} since {row.Since}");
        }
        foreach (var r in Table.Where(r => !mapped.Any(m => m.Verb == r.Verb && m.Route == r.Route)))
            problems.Add($"{r.Verb} {r.Route} is in the table but not mapped");
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [GeneratedRegex("""^\s*@base\.Controller\.api_version\("(?<min>\d+\.\d+)"(?:,\s*"(?<max>\d+\.\d+)")?\)""")]
    private static partial Regex VersionDecorator();

    [GeneratedRegex(@"^\s{4}def (?<name>\w+)\(")]
    private static partial Regex MethodDef();

    /// <summary>Each controller method's versions in Magnum's source: the start of every variant (none = served from 1.1).</summary>
    private static Dictionary<string, List<ApiVersion>> MagnumMethods(string file)
    {
        var methods = new Dictionary<string, List<ApiVersion>>();
        var pending = new List<ApiVersion>();
        foreach (var line in File.ReadLines(file))
        {
            var d = VersionDecorator().Match(line);
            if (d.Success) { pending.Add(Parse(d.Groups["min"].Value)); continue; }
            var def = MethodDef().Match(line);
            if (!def.Success) continue;
            if (!methods.TryGetValue(def.Groups["name"].Value, out var list)) methods[def.Groups["name"].Value] = list = [];
            list.AddRange(pending);
            pending.Clear();
        }
        return methods;
    }

    [Fact]
    public void The_table_is_what_magnum_15s_controllers_say()
    {
        const string dir = "/usr/lib/python3/dist-packages/magnum/api/controllers/v1";
        if (!Directory.Exists(dir))
        {
            // scripts/test installs magnum-api; only a hand-run on a machine without it gets here.
            Assert.True(Environment.GetEnvironmentVariable("MAGNETAR_REQUIRE_INTEGRATION") != "1", $"{dir} is missing: scripts/test installs the magnum-api package");
            return;
        }
        var problems = new List<string>();
        foreach (var row in Table)
        {
            var methods = MagnumMethods(Path.Combine(dir, row.MagnumFile));
            if (!methods.TryGetValue(row.MagnumMethod, out var starts)) { problems.Add($"{row.MagnumFile} has no method {row.MagnumMethod}"); continue; }
            var since = starts.Count == 0 ? ApiVersion.Min : starts.Min();
            if (since != Parse(row.Since)) problems.Add($"{row.Verb} {row.Route}: Magnum's {row.MagnumFile} {row.MagnumMethod} is served from {since}, the table says {row.Since}");
        }
        // The parser itself: Magnum's versioned methods are found (a parser that finds none would pass every 1.1 row).
        Assert.Equal(new ApiVersion(1, 9), MagnumMethods(Path.Combine(dir, "nodegroup.py"))["post"].Min());
        Assert.Equal([new ApiVersion(1, 10), new ApiVersion(1, 3), new ApiVersion(1, 1)], MagnumMethods(Path.Combine(dir, "cluster.py"))["patch"].OrderDescending());
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Theory]
    [MemberData(nameof(Routes))]
    public async Task Each_route_at_the_default_version_below_its_minimum_at_it_and_at_latest(string verb, string route)
    {
        var row = Table.Single(r => r.Verb == verb && r.Route == route);
        var since = Parse(row.Since);
        var admin = await Host.ClientAsync("admin");
        var (template, cluster, project) = await fixture.SharedAsync("microversion-table", async () =>
        {
            var t = (await Clusters.CreateTemplateAsync(admin))["uuid"]!.GetValue<string>();
            var c = await Clusters.CreateClusterAsync(admin, t);
            return (t, c, (await admin.GetAsync($"/v1/clusters/{c}").ExpectAsync(200))["project_id"]!.GetValue<string>());
        });
        // Deletes name things that do not exist: the route is served (404), nothing the other calls use goes away.
        var deleting = verb == "DELETE";
        var path = route
            .Replace("/clustertemplates/{ident}", $"/clustertemplates/{(deleting ? "no-such-template" : template)}")
            .Replace("{cluster}", cluster)
            .Replace("/clusters/{ident}", $"/clusters/{(deleting ? "no-such-cluster" : cluster)}")
            .Replace("/nodegroups/{ident}", $"/nodegroups/{(deleting ? "no-such-nodegroup" : "default-worker")}")
            .Replace("{projectId}", project).Replace("{resource}", deleting ? "NoSuchResource" : "Cluster");
        if (verb == "GET" && route == "/v1/quotas/{projectId}/{resource}")
            await admin.PostJson("/v1/quotas", $$"""{"project_id": "{{project}}", "resource": "Cluster", "hard_limit": 50}""");

        var versions = new List<string?> { null, row.Since, "latest" };
        if (since > ApiVersion.Min) versions.Add(new ApiVersion(since.Major, since.Minor - 1).ToString());
        foreach (var version in versions)
        {
            var c = Host.Anonymous();
            c.DefaultRequestHeaders.Add("X-Auth-Token", await Host.IssueTokenAsync("t-admin", "admin"));
            if (version is not null) c.DefaultRequestHeaders.TryAddWithoutValidation("OpenStack-API-Version", $"container-infra {version}");
            using var request = new HttpRequestMessage(new HttpMethod(verb), path);
            if (verb is "POST") request.Content = Http.Json("{}");
            if (verb is "PATCH") request.Content = Http.Json("[]");
            var resp = await c.SendAsync(request);
            var effective = version is null ? ApiVersion.Min : version == "latest" ? ApiVersion.Max : Parse(version);
            var status = (int)resp.StatusCode;
            if (effective < since)
            {
                Assert.True(status == 406, $"{verb} {path} at {version ?? "no header"}: {status}, expected 406");
                Assert.Equal($"Version {effective} was requested but the requested API {row.MagnumMethod} is not supported for this version.", (await resp.ReadJsonAsync()).ErrorDetail());
            }
            else
            {
                Assert.True(status is not 406 and < 500, $"{verb} {path} at {version ?? "no header"}: {status} {await resp.Content.ReadAsStringAsync()}");
                if (verb == "GET") Assert.True(resp.StatusCode == HttpStatusCode.OK, $"{verb} {path} at {version ?? "no header"}: {status} {await resp.Content.ReadAsStringAsync()}");
            }
            Assert.Equal($"container-infra {effective}", resp.Headers.GetValues("OpenStack-API-Version").Single());
        }
    }

    [Fact]
    public async Task Quotas_stats_and_ca_rotation_work_with_no_microversion_header_as_in_magnum()
    {
        // No OpenStack-API-Version header at all: what gophercloud sends for these calls.
        var admin = Host.Anonymous();
        admin.DefaultRequestHeaders.Add("X-Auth-Token", await Host.IssueTokenAsync("t-admin", "admin"));

        var quota = await admin.PostJson("/v1/quotas", """{"project_id": "p-mv-1", "resource": "Cluster", "hard_limit": 7}""").ExpectAsync(201);
        Assert.Equal(7, quota["hard_limit"]!.GetValue<int>());
        // Magnum's quota PATCH takes a Quota object, not a JSON patch.
        var patched = await admin.PatchJson("/v1/quotas/p-mv-1/Cluster", """{"project_id": "p-mv-1", "resource": "Cluster", "hard_limit": 9}""").ExpectAsync(202);
        Assert.Equal(9, patched["hard_limit"]!.GetValue<int>());
        Assert.Equal(9, (await admin.GetAsync("/v1/quotas/p-mv-1/Cluster").ExpectAsync(200))["hard_limit"]!.GetValue<int>());
        Assert.Contains((await admin.GetAsync("/v1/quotas?all_tenants=true").ExpectAsync(200))["quotas"]!.AsArray(), q => q!["project_id"]!.GetValue<string>() == "p-mv-1");
        await admin.DeleteAsync("/v1/quotas/p-mv-1/Cluster").ExpectAsync(204);

        var template = (await Clusters.CreateTemplateAsync(admin))["uuid"]!.GetValue<string>();
        var cluster = await Clusters.CreateClusterAsync(admin, template);
        await Clusters.WaitForStatusAsync(admin, cluster, "CREATE_COMPLETE");
        Assert.True((await admin.GetAsync("/v1/stats").ExpectAsync(200))["clusters"]!.GetValue<int>() >= 1);
        var before = (await admin.GetAsync($"/v1/certificates/{cluster}").ExpectAsync(200))["pem"]!.GetValue<string>();
        await admin.PatchAsync($"/v1/certificates/{cluster}", null).ExpectAsync(202);
        await Clusters.WaitForStatusAsync(admin, cluster, "UPDATE_COMPLETE");
        Assert.NotEqual(before, (await admin.GetAsync($"/v1/certificates/{cluster}").ExpectAsync(200))["pem"]!.GetValue<string>());
    }

    [Fact]
    public async Task Defaults_are_filled_in_at_create_so_the_api_shows_what_the_cluster_gets()
    {
        var admin = await Host.ClientAsync("admin");
        // Magnum fills network_driver from the COE's default when the template does not say (Magnetar's is Calico).
        var bare = await admin.PostJson("/v1/clustertemplates", $$"""{"name": "{{Clusters.UniqueName("bare")}}", "coe": "kubernetes", "image_id": "fedora-coreos-40", "external_network_id": "public"}""").ExpectAsync(201);
        Assert.Equal("calico", bare["network_driver"]!.GetValue<string>());
        Assert.Equal("calico", (await admin.GetAsync($"/v1/clustertemplates/{bare["uuid"]}").ExpectAsync(200))["network_driver"]!.GetValue<string>());
        var cilium = await admin.PostJson("/v1/clustertemplates", $$"""{"name": "{{Clusters.UniqueName("cil")}}", "coe": "kubernetes", "image_id": "fedora-coreos-40", "network_driver": "cilium"}""").ExpectAsync(201);
        Assert.Equal("cilium", cilium["network_driver"]!.GetValue<string>());
        var refused = await admin.PostJson("/v1/clustertemplates", $$"""{"name": "{{Clusters.UniqueName("x")}}", "coe": "kubernetes", "image_id": "fedora-coreos-40", "network_driver": "weave"}""").ExpectAsync(400);
        Assert.Contains("weave", refused.ErrorDetail());
        // As in Magnum (ClusterTemplatePatchType's mandatory attributes), the driver cannot be removed by a patch.
        await admin.PatchJson($"/v1/clustertemplates/{cilium["uuid"]}", """[{"op": "remove", "path": "/network_driver"}]""").ExpectAsync(400);

        // A template without flavors: the cluster and its nodegroups show the flavor their servers get.
        var cluster = await Clusters.CreateClusterAsync(admin, bare["uuid"]!.GetValue<string>());
        var shown = await admin.GetAsync($"/v1/clusters/{cluster}").ExpectAsync(200);
        Assert.Equal("m1.small", shown["flavor_id"]!.GetValue<string>());
        Assert.Equal("m1.small", shown["master_flavor_id"]!.GetValue<string>());
        var groups = (await admin.GetAsync($"/v1/clusters/{cluster}/nodegroups").ExpectAsync(200))["nodegroups"]!.AsArray();
        Assert.All(groups, g => Assert.Equal("m1.small", g!["flavor_id"]!.GetValue<string>()));
        // What the request or the template names wins.
        var named = await Clusters.CreateClusterAsync(admin, bare["uuid"]!.GetValue<string>(), extra: """, "flavor_id": "m1.large" """);
        Assert.Equal("m1.large", (await admin.GetAsync($"/v1/clusters/{named}").ExpectAsync(200))["flavor_id"]!.GetValue<string>());
    }
}
