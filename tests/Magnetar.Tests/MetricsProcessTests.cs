namespace Magnetar.Tests;

/// <summary>
/// The real binary's /metrics carries the conductor's gauges from its start, before any cluster operation ends or any
/// health sweep runs (they are what an operator's alerts and the benchmarks read: an absent series alerts on nothing).
/// A process of its own: in-process tests share the meter's static instruments, which another test may have made.
/// </summary>
public sealed class MetricsProcessTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("metrics-").FullName;

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync()
    {
        try { Directory.Delete(_dir, true); } catch { }
        return Task.CompletedTask;
    }

    [Fact]
    public async Task An_idle_server_exports_the_conductors_gauges_from_its_start()
    {
        var url = $"http://127.0.0.1:{MagnetarProcess.FreePort()}";
        // No health sweep in this process (as on a replica whose health monitor is off, or waits for another's lease to
        // lapse after a restart), and the key pool not begun within the test.
        await using var server = new MagnetarProcess(url, Path.Combine(_dir, "data"),
            "--Magnetar:Health:Enabled=false", "--Magnetar:Pki:KeyPoolDelaySeconds=60");
        await server.StartAsync();
        using var http = new HttpClient();
        var text = await http.GetStringAsync(url + "/metrics");
        Assert.Matches(@"(?m)^magnetar_pki_key_pool_missing(\{[^}]*\})? 16$", text);
        Assert.Matches(@"(?m)^magnetar_clusters_unhealthy(\{[^}]*\})? 0$", text);
        Assert.Matches(@"(?m)^magnetar_nodes_unhealthy(\{[^}]*\})? 0$", text);
    }
}
