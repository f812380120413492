using System.Net;

namespace Magnetar.Tests;

/// <summary>The per-project rate limit of the Magnum API: a token bucket per project, 429 in Magnum's format with Retry-After.</summary>
public sealed class RateLimitTests
{
    [Fact]
    public async Task A_project_over_its_rate_gets_429_with_retry_after_and_other_projects_do_not()
    {
        await using var host = await TestHost.StartAsync(Db.Sqlite, settings: new()
        {
            ["Magnetar:Api:RateLimitPerSecond"] = "1",
            ["Magnetar:Api:RateLimitBurst"] = "5",
        });
        var demo = await host.ClientAsync("demo");
        var reader = await host.ClientAsync("reader"); // same project: same bucket
        var other = await host.ClientAsync("other");
        var codes = new List<HttpStatusCode>();
        for (var i = 0; i < 8; i++) codes.Add((await demo.GetAsync("/v1/clusters")).StatusCode);
        Assert.True(codes.Count(c => c == HttpStatusCode.OK) is >= 5 and <= 6, string.Join(",", codes));
        Assert.Equal(HttpStatusCode.TooManyRequests, codes[^1]);

        var limited = await reader.GetAsync("/v1/clustertemplates");
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        Assert.True(int.Parse(limited.Headers.RetryAfter!.ToString()) >= 1);
        var error = await limited.ReadJsonAsync();
        Assert.Equal(429, error["errors"]![0]!["status"]!.GetValue<int>());
        Assert.Contains("Too many requests from this project", error["errors"]![0]!["detail"]!.GetValue<string>());

        Assert.Equal(HttpStatusCode.OK, (await other.GetAsync("/v1/clusters")).StatusCode); // another project's bucket
        Assert.Equal(HttpStatusCode.OK, (await host.Anonymous().GetAsync("/healthz")).StatusCode);
        await Task.Delay(2100); // the bucket refills
        Assert.Equal(HttpStatusCode.OK, (await demo.GetAsync("/v1/clusters")).StatusCode);
    }
}
