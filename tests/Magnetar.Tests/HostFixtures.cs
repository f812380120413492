using System.Text.Json.Nodes;

namespace Magnetar.Tests;

public abstract class HostFixture(Db db) : IAsyncLifetime
{
    public TestHost Host { get; private set; } = null!;
    public Db Db { get; } = db;

    public async Task InitializeAsync()
    {
        if (Db == Db.Postgres && TestHost.PostgresConnectionString is null)
            throw new InvalidOperationException("The PostgreSQL tests need MAGNETAR_TEST_POSTGRES: run them through scripts/test, which starts PostgreSQL.");
        Host = await TestHost.StartAsync(Db);
    }

    public async Task DisposeAsync()
    {
        if (Host is not null) await Host.DisposeAsync();
    }

    private readonly Dictionary<string, object> _shared = new();
    private readonly SemaphoreSlim _sharedLock = new(1, 1);

    /// <summary>Something the tests of one class make once and share (a template and a cluster for many theory rows).</summary>
    public async Task<T> SharedAsync<T>(string key, Func<Task<T>> make) where T : notnull
    {
        await _sharedLock.WaitAsync();
        try
        {
            if (!_shared.TryGetValue(key, out var value)) _shared[key] = value = await make();
            return (T)value;
        }
        finally { _sharedLock.Release(); }
    }
}

public sealed class SqliteHostFixture() : HostFixture(Db.Sqlite);
public sealed class PostgresHostFixture() : HostFixture(Db.Postgres);

public static class Clusters
{
    private static int _counter;
    public static string UniqueName(string prefix) => $"{prefix}-{Interlocked.Increment(ref _counter)}-{Guid.NewGuid().ToString("N")[..6]}";

    public static async Task<JsonNode> CreateTemplateAsync(HttpClient c, string? name = null, string extra = "")
    {
        name ??= UniqueName("tpl");
        var body = $$"""{"name": "{{name}}", "coe": "kubernetes", "image_id": "fedora-coreos-40", "external_network_id": "public", "flavor_id": "m1.small", "master_flavor_id": "m1.medium", "network_driver": "calico", "labels": {"kube_tag": "v1.31.1"}{{extra}}}""";
        return await c.PostJson("/v1/clustertemplates", body).ExpectAsync(201);
    }

    public static async Task<string> CreateClusterAsync(HttpClient c, string template, string? name = null, string extra = "")
    {
        name ??= UniqueName("c");
        var nodeCount = extra.Contains("\"node_count\"") ? "" : ", \"node_count\": 1";
        var created = await c.PostJson("/v1/clusters", $$"""{"name": "{{name}}", "cluster_template_id": "{{template}}"{{nodeCount}}{{extra}}}""").ExpectAsync(202);
        return created["uuid"]!.GetValue<string>();
    }

    public static async Task<JsonNode> WaitForStatusAsync(HttpClient c, string uuid, string status, int seconds = 90)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        JsonNode? last = null;
        while (DateTime.UtcNow < deadline)
        {
            var resp = await c.GetAsync($"/v1/clusters/{uuid}");
            last = await resp.ReadJsonAsync();
            if (last["status"]?.GetValue<string>() == status) return last;
            if (status != "CREATE_FAILED" && last["status"]?.GetValue<string>() is { } s && s.EndsWith("_FAILED"))
                throw new Xunit.Sdk.XunitException($"cluster {uuid} failed: {last.ToJsonString()}");
            await Task.Delay(50);
        }
        throw new Xunit.Sdk.XunitException($"cluster {uuid} did not reach {status}: {last?.ToJsonString()}");
    }

    public static async Task WaitForGoneAsync(HttpClient c, string uuid, int seconds = 90)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (DateTime.UtcNow < deadline)
        {
            var resp = await c.GetAsync($"/v1/clusters/{uuid}");
            if ((int)resp.StatusCode == 404) return;
            await Task.Delay(50);
        }
        throw new Xunit.Sdk.XunitException($"cluster {uuid} was not deleted");
    }
}
