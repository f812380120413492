using System.Net;
using System.Text;
using Magnetar.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Magnetar.Tests;

/// <summary>
/// Generated hostile requests against every route: malformed and mistyped JSON, huge strings, deep nesting, unicode,
/// path traversal, bogus patches, microversions and tokens. No request may produce a 5xx, and rejected requests must
/// not change what the API owns in the database (checked around every write). 10 000 requests by default;
/// MAGNETAR_FUZZ_REQUESTS=N runs more.
/// </summary>
public sealed class HostileInputTests(SqliteHostFixture fixture) : IClassFixture<SqliteHostFixture>
{
    private static readonly string[] Routes =
    [
        "/v1/clustertemplates", "/v1/clustertemplates/{t}", "/v1/clustertemplates/detail", "/v1/clusters", "/v1/clusters/{c}",
        "/v1/clusters/detail", "/v1/clusters/{c}/actions/resize", "/v1/clusters/{c}/actions/upgrade", "/v1/clusters/{c}/nodegroups",
        "/v1/clusters/{c}/nodegroups/default-worker", "/v1/certificates", "/v1/certificates/{c}", "/v1/quotas", "/v1/quotas/{p}/Cluster",
        "/v1/stats", "/v1/mservices", "/v1", "/", "/identity/v3/auth/tokens",
    ];

    private static readonly string[] Idents = ["..%2F..%2Fetc%2Fpasswd", "a%09b", "ünï%E2%9C%93", new string('x', 3000), "' OR 1=1 --", "00000000-0000-0000-0000-000000000000", "{c}", "{t}"];

    private static readonly string[] Bodies =
    [
        "", "null", "[]", "{}", "\"str\"", "42", "{", "{\"a\":", "[{\"op\":\"replace\"}]",
        "{\"name\": null, \"coe\": 1, \"image_id\": [], \"node_count\": \"NaN\", \"labels\": \"{'a': \"}",
        "{\"cluster_template_id\": {\"$ne\": 1}, \"node_count\": 1e308, \"master_count\": -0}",
        "[{\"op\": \"replace\", \"path\": \"/labels\", \"value\": \"{'a': {'b': 1}}\"}]",
        "[{\"op\": \"add\", \"path\": \"/labels/x/y/z\", \"value\": 1}]",
        "[{\"op\": \"remove\", \"path\": \"/../../uuid\"}]",
        "[{\"op\": \"replace\", \"path\": \"/node_count\", \"value\": 99999999999}]",
        "{\"node_count\": 2147483648, \"nodes_to_remove\": [1, null, {}]}",
        "{\"csr\": \"-----BEGIN CERTIFICATE REQUEST-----\\nZm9v\\n-----END CERTIFICATE REQUEST-----\", \"cluster_uuid\": \"{c}\"}",
        "{\"project_id\": \"\", \"hard_limit\": -5, \"resource\": \"Everything\"}",
        "{\"cluster_template\": \"{t}\", \"max_batch_size\": 0, \"nodegroup\": \"\"}",
        "{\"auth\": {\"identity\": {\"methods\": [\"password\"], \"password\": {\"user\": {\"name\": 1}}}}}",
        "{\"auth\": {\"identity\": {\"methods\": [\"password\"]}, \"auth\": 2}}",
        "{\"coe\": \"kubernetes\", \"coe\": \"kubernetes\", \"image_id\": \"fedora-coreos-40\"}",
        "{\"auth\": {\"identity\": {\"methods\": [\"token\"], \"token\": {\"id\": [\"x\"]}}, \"scope\": \"system\"}}",
    ];

    private static readonly string[] Methods = ["GET", "POST", "PATCH", "DELETE", "PUT", "HEAD"];
    private static readonly string?[] Versions = ["container-infra latest", "container-infra 1.1", "container-infra 1.99", "container-infra -1.-1", "garbage", null];

    [Fact]
    public async Task Generated_hostile_requests_never_get_a_5xx_and_change_nothing_when_rejected()
    {
        var host = fixture.Host;
        var demo = await host.ClientAsync("demo");
        var t = await Clusters.CreateTemplateAsync(demo);
        var tid = t["uuid"]!.GetValue<string>();
        var cid = await Clusters.CreateClusterAsync(demo, tid);
        await Clusters.WaitForStatusAsync(demo, cid, "CREATE_COMPLETE");
        var tokens = new[] { (await host.ClientAsync("demo")).DefaultRequestHeaders.GetValues("X-Auth-Token").First(), (await host.ClientAsync("reader")).DefaultRequestHeaders.GetValues("X-Auth-Token").First(), "mgtAAAA", "", new string('A', 5000) };

        var random = new Random(20261124);
        var failures = new List<string>();
        var count = int.TryParse(Environment.GetEnvironmentVariable("MAGNETAR_FUZZ_REQUESTS"), out var n) ? n : 10_000;
        var statuses = new Dictionary<int, int>();
        for (int i = 0; i < count; i++)
        {
            var route = Routes[random.Next(Routes.Length)].Replace("{c}", random.Next(4) == 0 ? Idents[random.Next(Idents.Length)] : cid)
                .Replace("{t}", random.Next(4) == 0 ? Idents[random.Next(Idents.Length)] : tid).Replace("{p}", Idents[random.Next(Idents.Length)]);
            var method = Methods[random.Next(Methods.Length)];
            var body = random.Next(10) == 0 ? Huge(random) : Bodies[random.Next(Bodies.Length)].Replace("{c}", cid).Replace("{t}", tid);
            using var request = new HttpRequestMessage(new HttpMethod(method), route + (random.Next(5) == 0 ? "?limit=-1&sort_key=%27&marker=%00" : ""));
            if (method is not ("GET" or "HEAD" or "DELETE")) request.Content = new StringContent(body, Encoding.UTF8, "application/json");
            var token = tokens[random.Next(tokens.Length)];
            if (token.Length > 0) request.Headers.TryAddWithoutValidation("X-Auth-Token", token);
            if (Versions[random.Next(Versions.Length)] is { } v) request.Headers.TryAddWithoutValidation("OpenStack-API-Version", v);
            var writes = method is "POST" or "PATCH" or "DELETE" or "PUT";
            var before = writes ? await SnapshotAsync(host) : null;
            using var resp = await host.Anonymous().SendAsync(request);
            var text = await resp.Content.ReadAsStringAsync();
            var code = (int)resp.StatusCode;
            statuses[code] = statuses.GetValueOrDefault(code) + 1;
            if (code >= 500) failures.Add($"{method} {route} {body[..Math.Min(80, body.Length)]} → {code} {text[..Math.Min(300, text.Length)]}");
            if (writes && code >= 400 && Changed(before!, await SnapshotAsync(host)) is { } change)
                failures.Add($"{method} {route} {body[..Math.Min(80, body.Length)]} → {code} but changed {change}");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(20)));
        // The run reached the API's logic, not only its front door.
        Assert.True(statuses.Keys.Count(k => k < 300) > 0 && statuses.GetValueOrDefault(400) > 0 && statuses.GetValueOrDefault(404) > 0,
            string.Join(", ", statuses.OrderBy(x => x.Key).Select(x => $"{x.Key}: {x.Value}")));
        var cluster = await demo.GetAsync($"/v1/clusters/{cid}");
        Assert.True(cluster.StatusCode is HttpStatusCode.OK or HttpStatusCode.NotFound); // it may have been deleted by a valid DELETE
    }

    /// <summary>
    /// What the API owns, per object: templates as written, clusters' spec generation and whether they are being deleted,
    /// quotas. (The conductor's own progress — statuses, a deleted cluster's row going — is not a change by a request.)
    /// </summary>
    private sealed record Snapshot(Dictionary<string, string> Templates, Dictionary<string, (long Generation, bool Deleting)> Clusters, Dictionary<string, int> Quotas);

    private static string? Changed(Snapshot a, Snapshot b)
    {
        if (!a.Templates.OrderBy(x => x.Key).SequenceEqual(b.Templates.OrderBy(x => x.Key))) return "cluster templates";
        if (!a.Quotas.OrderBy(x => x.Key).SequenceEqual(b.Quotas.OrderBy(x => x.Key))) return "quotas";
        foreach (var (uuid, after) in b.Clusters)
            if (!a.Clusters.TryGetValue(uuid, out var was) || was != after) return $"cluster {uuid}";
        foreach (var (uuid, was) in a.Clusters)
            if (!b.Clusters.ContainsKey(uuid) && !was.Deleting) return $"cluster {uuid} (gone)";
        return null;
    }

    private static string Huge(Random r) => r.Next(3) switch
    {
        0 => "{\"name\": \"" + new string('n', 300_000) + "\", \"coe\": \"kubernetes\", \"image_id\": \"fedora-coreos-40\"}",
        1 => new string('[', 10_000) + new string(']', 10_000),
        _ => "{\"labels\": {" + string.Join(",", Enumerable.Range(0, 5000).Select(i => $"\"k{i}\": \"{new string('v', 10)}\"")) + "}, \"coe\": \"kubernetes\", \"image_id\": \"fedora-coreos-40\"}",
    };

    private static async Task<Snapshot> SnapshotAsync(TestHost host)
    {
        await using var scope = host.App.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<MagnetarDbContext>();
        var templates = await db.ClusterTemplates.AsNoTracking().ToDictionaryAsync(x => x.Uuid, x => x.Name + "|" + x.UpdatedAt + "|" + string.Join(",", x.Labels.Select(l => l.Key + "=" + l.Value)));
        var clusters = await db.Clusters.AsNoTracking().ToDictionaryAsync(x => x.Uuid, x => (x.Generation, x.Operation == "delete"));
        var quotas = await db.Quotas.AsNoTracking().ToDictionaryAsync(x => x.ProjectId + "/" + x.Resource, x => x.HardLimit);
        return new Snapshot(templates, clusters, quotas);
    }
}
