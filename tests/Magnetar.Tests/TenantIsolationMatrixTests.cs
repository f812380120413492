using System.Net.Http.Headers;
using System.Text;
using Magnetar.Identity;
using Microsoft.Extensions.DependencyInjection;

namespace Magnetar.Tests;

/// <summary>
/// Every Magnum route × every kind of caller, as one table: the project's member and reader, the cloud admin, a member
/// of another project, no token, an expired token. The resources belong to the demo project. Other projects' objects
/// are 404 (never 403: a 403 would confirm they exist); admin-only routes (quotas, services) are 403 for everyone else
/// whatever they name. Callers who may not change something change nothing: the
/// object is read back after their attempt. Codes follow Magnum's default policy (reader = Keystone's reader role).
/// </summary>
public sealed class TenantIsolationMatrixTests(SqliteHostFixture fixture) : IClassFixture<SqliteHostFixture>
{
    private static readonly string[] Roles = ["none", "expired", "other", "reader", "demo", "admin"];

    /// <summary>The demo project's objects one row of the table acts on.</summary>
    private sealed record World(string Template, string SpareTemplate, string NewerTemplate, string Cluster, string NodeGroup);

    private sealed record Row(string Method, string Path, string? Body, int None, int Expired, int Other, int Reader, int Member, int Admin, bool Mutates = false)
    {
        public int Expected(string role) => role switch
        {
            "none" => None, "expired" => Expired, "other" => Other, "reader" => Reader, "demo" => Member, _ => Admin,
        };
    }

    private static IEnumerable<Row> Table() =>
    [
        // cluster templates
        new("GET", "/v1/clustertemplates", null, 401, 401, 200, 200, 200, 200),
        new("GET", "/v1/clustertemplates/detail", null, 401, 401, 200, 200, 200, 200),
        new("GET", "/v1/clustertemplates/{t}", null, 401, 401, 404, 200, 200, 200),
        new("POST", "/v1/clustertemplates", """{"name": "{new}", "coe": "kubernetes", "image_id": "fedora-coreos-40", "external_network_id": "public"}""", 401, 401, 201, 403, 201, 201, true),
        new("PATCH", "/v1/clustertemplates/{spare}", """[{"op": "replace", "path": "/dns_nameserver", "value": "9.9.9.9"}]""", 401, 401, 404, 403, 200, 200, true),
        new("DELETE", "/v1/clustertemplates/{spare}", null, 401, 401, 404, 403, 204, 204, true),
        // clusters
        new("GET", "/v1/clusters", null, 401, 401, 200, 200, 200, 200),
        new("GET", "/v1/clusters/detail", null, 401, 401, 200, 200, 200, 200),
        new("GET", "/v1/clusters/{c}", null, 401, 401, 404, 200, 200, 200),
        // another project cannot see the demo project's private template: Magnum's ClusterTemplateNotFound (404)
        new("POST", "/v1/clusters", """{"name": "{new}", "cluster_template_id": "{t}", "node_count": 1}""", 401, 401, 404, 403, 202, 202, true),
        new("PATCH", "/v1/clusters/{c}", """[{"op": "replace", "path": "/node_count", "value": 2}]""", 401, 401, 404, 403, 202, 202, true),
        new("POST", "/v1/clusters/{c}/actions/resize", """{"node_count": 2}""", 401, 401, 404, 403, 202, 202, true),
        new("POST", "/v1/clusters/{c}/actions/upgrade", """{"cluster_template": "{newer}"}""", 401, 401, 404, 403, 202, 202, true),
        new("DELETE", "/v1/clusters/{c}", null, 401, 401, 404, 403, 204, 204, true),
        // nodegroups
        new("GET", "/v1/clusters/{c}/nodegroups", null, 401, 401, 404, 200, 200, 200),
        new("GET", "/v1/clusters/{c}/nodegroups/{ng}", null, 401, 401, 404, 200, 200, 200),
        new("POST", "/v1/clusters/{c}/nodegroups", """{"name": "{new}", "node_count": 1}""", 401, 401, 404, 403, 202, 202, true),
        new("PATCH", "/v1/clusters/{c}/nodegroups/{ng}", """[{"op": "replace", "path": "/max_node_count", "value": 5}]""", 401, 401, 404, 403, 202, 202, true),
        new("DELETE", "/v1/clusters/{c}/nodegroups/{ng}", null, 401, 401, 404, 403, 204, 204, true),
        // certificates
        new("GET", "/v1/certificates/{c}", null, 401, 401, 404, 200, 200, 200),
        new("POST", "/v1/certificates", """{"cluster_uuid": "{c}", "csr": "{csr}"}""", 401, 401, 400, 403, 201, 201),
        new("PATCH", "/v1/certificates/{c}", null, 401, 401, 404, 403, 202, 202, true),
        // quotas (admin's business; a project may read its own)
        new("GET", "/v1/quotas", null, 401, 401, 403, 403, 403, 200),
        new("GET", "/v1/quotas/{demo}/Cluster", null, 401, 401, 403, 200, 200, 200),
        new("POST", "/v1/quotas", """{"project_id": "{fresh}", "resource": "Cluster", "hard_limit": 10}""", 401, 401, 403, 403, 403, 201, true),
        new("PATCH", "/v1/quotas/{demo}/Cluster", """{"project_id": "{demo}", "resource": "Cluster", "hard_limit": 999}""", 401, 401, 403, 403, 403, 202, true),
        new("DELETE", "/v1/quotas/{demo}/Cluster", null, 401, 401, 403, 403, 403, 204, true),
        // service-wide
        new("GET", "/v1/stats", null, 401, 401, 200, 200, 200, 200),
        new("GET", "/v1/mservices", null, 401, 401, 403, 403, 403, 200),
    ];

    [Fact]
    public async Task Every_route_answers_every_kind_of_caller_as_the_policy_says_and_refused_callers_change_nothing()
    {
        var host = fixture.Host;
        var admin = await host.ClientAsync("admin");
        var demoProject = host.App.Services.GetRequiredService<BuiltInIdentityStore>().Users().Single(u => u.Name == "t-demo").Roles.Keys.Single();
        var tokens = new Dictionary<string, string?>
        {
            ["none"] = null,
            ["expired"] = ExpiredToken(host),
            ["other"] = Token(await host.ClientAsync("other")),
            ["reader"] = Token(await host.ClientAsync("reader")),
            ["demo"] = Token(await host.ClientAsync("demo")),
            ["admin"] = Token(admin),
        };
        // Every world is a new cluster in the demo project: lift Magnum's default quota of 20. (The quota rows change and
        // delete it, but only after every world exists.)
        var quota = $$"""{"project_id": "{{demoProject}}", "resource": "Cluster", "hard_limit": 1000}""";
        if ((int)(await admin.PostJson("/v1/quotas", quota)).StatusCode != 201)
            await admin.SendAsync(new HttpRequestMessage(HttpMethod.Patch, $"/v1/quotas/{demoProject}/Cluster") { Content = new StringContent(quota, Encoding.UTF8, "application/json") }).ExpectAsync(202);

        // Worlds: one for every read-only row; per mutating row one for the callers it refuses (who must leave it as it
        // was) and one for each caller it allows. Built in parallel: each is a cluster brought to UPDATE_COMPLETE.
        var rows = Table().ToList();
        var needs = new List<(int Row, string Who)> { (-1, "read") };
        for (var i = 0; i < rows.Count; i++)
        {
            if (!rows[i].Mutates) continue;
            needs.Add((i, "refused"));
            needs.AddRange(Roles.Where(r => rows[i].Expected(r) is >= 200 and < 300).Select(r => (i, r)));
        }
        var worlds = new Dictionary<(int, string), World>();
        foreach (var batch in needs.Chunk(8))
        {
            var built = await Task.WhenAll(batch.Select(_ => NewWorldAsync(host, demoProject)));
            for (var k = 0; k < batch.Length; k++) worlds[batch[k]] = built[k];
        }

        var errors = new List<string>();
        for (var i = 0; i < rows.Count; i++)
        {
            var row = rows[i];
            foreach (var role in Roles)
            {
                var expected = row.Expected(role);
                var allowed = expected is >= 200 and < 300;
                var world = !row.Mutates ? worlds[(-1, "read")] : allowed ? worlds[(i, role)] : worlds[(i, "refused")];
                var before = row.Mutates ? await ReadBackAsync(admin, row, world, demoProject) : null;
                var (status, body) = await SendAsync(host, row, world, demoProject, tokens[role]);
                if (status != expected) errors.Add($"{row.Method} {row.Path} as {role}: {status} (expected {expected}) {Trim(body)}");
                if (status >= 500) errors.Add($"{row.Method} {row.Path} as {role}: server error {Trim(body)}");
                if (row.Mutates && !allowed && await ReadBackAsync(admin, row, world, demoProject) != before)
                    errors.Add($"{row.Method} {row.Path} as {role}: refused with {status} but the object changed");
                if (status == 403 && role == "other" && System.Text.RegularExpressions.Regex.IsMatch(row.Path + row.Body, "\\{(t|spare|newer|c|ng)\\}"))
                    errors.Add($"{row.Method} {row.Path} as other: 403 reveals another project's object");
            }
        }
        Assert.True(errors.Count == 0, string.Join("\n", errors));
    }

    private static async Task<World> NewWorldAsync(TestHost host, string demoProject)
    {
        var demo = await host.ClientAsync("demo");
        var admin = await host.ClientAsync("admin");
        var t = (string)(await Clusters.CreateTemplateAsync(demo))["uuid"]!;
        var spare = (string)(await Clusters.CreateTemplateAsync(demo))["uuid"]!;
        var newer = (string)(await Clusters.CreateTemplateAsync(demo, extra: ", \"dns_nameserver\": \"8.8.4.4\""))["uuid"]!;
        var c = await Clusters.CreateClusterAsync(demo, t);
        await Clusters.WaitForStatusAsync(demo, c, "CREATE_COMPLETE");
        var ng = Clusters.UniqueName("ng");
        await demo.PostJson($"/v1/clusters/{c}/nodegroups", $$"""{"name": "{{ng}}", "node_count": 1}""").ExpectAsync(202);
        await Clusters.WaitForStatusAsync(demo, c, "UPDATE_COMPLETE");
        return new World(t, spare, newer, c, ng);
    }

    private static string Fill(string text, World w, string demoProject) => text
        .Replace("{t}", w.Template).Replace("{spare}", w.SpareTemplate).Replace("{newer}", w.NewerTemplate).Replace("{c}", w.Cluster)
        .Replace("{ng}", w.NodeGroup).Replace("{demo}", demoProject).Replace("{new}", Clusters.UniqueName("new"))
        .Replace("{fresh}", "p" + Guid.NewGuid().ToString("N")[..12])
        .Replace("{csr}", text.Contains("{csr}") ? Csr.Value : "");

    private static readonly Lazy<string> Csr = new(() => Fixtures.MakeCsr("CN=someone").Replace("\n", "\\n"));

    private static async Task<(int, string)> SendAsync(TestHost host, Row row, World world, string demoProject, string? token)
    {
        using var request = new HttpRequestMessage(new HttpMethod(row.Method), Fill(row.Path, world, demoProject));
        if (row.Body is not null)
            request.Content = new StringContent(Fill(row.Body, world, demoProject), Encoding.UTF8, "application/json");
        else if (row.Method is "PATCH" or "POST")
            request.Content = new StringContent("", Encoding.UTF8, "application/json");
        if (token is not null) request.Headers.TryAddWithoutValidation("X-Auth-Token", token);
        request.Headers.TryAddWithoutValidation("OpenStack-API-Version", "container-infra latest");
        using var resp = await host.Anonymous().SendAsync(request);
        return ((int)resp.StatusCode, await resp.Content.ReadAsStringAsync());
    }

    /// <summary>What a row would change, read by the admin: the object's representation (or its absence).</summary>
    private static async Task<string> ReadBackAsync(HttpClient admin, Row row, World w, string demoProject)
    {
        var path = row.Path switch
        {
            "/v1/clustertemplates" => "/v1/clustertemplates",
            "/v1/clusters" or "/v1/clusters/{c}/actions/resize" or "/v1/clusters/{c}/actions/upgrade" => $"/v1/clusters/{w.Cluster}",
            "/v1/clusters/{c}/nodegroups" => $"/v1/clusters/{w.Cluster}/nodegroups",
            "/v1/quotas" => "/v1/quotas",
            _ => Fill(row.Path, w, demoProject),
        };
        if (path.StartsWith("/v1/certificates/")) path = $"/v1/certificates/{w.Cluster}";
        var resp = await admin.GetAsync(path);
        var text = await resp.Content.ReadAsStringAsync();
        // Timestamps of reads are not changes; everything else is.
        return $"{(int)resp.StatusCode} {System.Text.RegularExpressions.Regex.Replace(text, "\"(updated_at|created_at)\": ?\"[^\"]*\"", "")}";
    }

    private static string? Token(HttpClient c) => c.DefaultRequestHeaders.GetValues("X-Auth-Token").First();

    private static string ExpiredToken(TestHost host)
    {
        var store = host.App.Services.GetRequiredService<BuiltInIdentityStore>();
        var user = store.Users().Single(u => u.Name == "t-demo");
        var tokens = host.App.Services.GetRequiredService<BuiltInTokenService>();
        return tokens.Issue(user.Id, user.Roles.Keys.Single(), ["password"], DateTimeOffset.UtcNow.AddMinutes(-1)).Token;
    }

    private static string Trim(string s) => s.Length > 200 ? s[..200] : s;
}
