using Microsoft.AspNetCore.TestHost;
using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Magnetar.Cloud.OpenStack;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace Magnetar.Tests;

/// <summary>
/// The OpenStack HTTP plumbing against a scripted in-memory cloud (no network): authentication and renewal, catalog
/// lookup, microversion headers, error bodies of each service mapped to typed exceptions, linked pagination, and the
/// resilience pipeline's retry rules (idempotent calls retried, POST never).
/// </summary>
public sealed class OpenStackClientTests
{
    private const string Base = "http://127.0.0.1:1";

    /// <summary>A cloud that answers from a script: Keystone tokens are built in; everything else is routed to <see cref="Routes"/>.</summary>
    private sealed class ScriptedCloud : HttpMessageHandler
    {
        public readonly ConcurrentQueue<HttpRequestMessage> Requests = new();
        public readonly ConcurrentDictionary<HttpRequestMessage, string?> Bodies = new();
        public Func<HttpRequestMessage, HttpResponseMessage?> Routes = _ => null;
        /// <summary>Awaited before a request is answered (holds answers back without blocking a thread).</summary>
        public Func<HttpRequestMessage, Task> Hold = _ => Task.CompletedTask;
        public int TokensIssued;

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
        {
            Requests.Enqueue(request);
            Bodies[request] = request.Content is null ? null : await request.Content.ReadAsStringAsync(ct);
            await Hold(request);
            if (request.Method == HttpMethod.Post && request.RequestUri!.AbsolutePath == "/identity/v3/auth/tokens")
            {
                var n = Interlocked.Increment(ref TokensIssued);
                var response = Json(HttpStatusCode.Created, new JsonObject
                {
                    ["token"] = new JsonObject
                    {
                        ["expires_at"] = DateTimeOffset.UtcNow.AddHours(1).ToString("O"),
                        ["user"] = new JsonObject { ["id"] = "u1" },
                        ["project"] = new JsonObject { ["id"] = "p1" },
                        ["catalog"] = new JsonArray(
                            Service("compute", $"{Base}/compute/v2.1"),
                            Service("network", $"{Base}/network"),
                            Service("load-balancer", $"{Base}/lb"),
                            Service("image", $"{Base}/image")),
                    },
                });
                response.Headers.Add("X-Subject-Token", $"token-{n}");
                return response;
            }
            return Routes(request) ?? Json(HttpStatusCode.NotFound, new JsonObject { ["itemNotFound"] = new JsonObject { ["message"] = "no route", ["code"] = 404 } });
        }

        private static JsonObject Service(string type, string url) => new()
        {
            ["type"] = type,
            ["endpoints"] = new JsonArray(
                new JsonObject { ["interface"] = "public", ["region_id"] = "RegionOne", ["url"] = url },
                new JsonObject { ["interface"] = "internal", ["region_id"] = "RegionOne", ["url"] = url + "-internal" }),
        };
    }

    private static HttpResponseMessage Json(HttpStatusCode status, JsonNode body)
        => new(status) { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };

    private static HttpResponseMessage Text(HttpStatusCode status, string body) => new(status) { Content = new StringContent(body) };

    /// <summary>Clients built the way the server builds them (DI, resilience pipeline), with the scripted cloud underneath.</summary>
    private static (ComputeClient Compute, NetworkClient Network, LoadBalancerClient Lb, KeystoneSession Session) Clients(ScriptedCloud cloud)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton(TimeProvider.System);
        services.AddOpenStackCloud(new OpenStackOptions { AuthUrl = $"{Base}/identity/v3", MaxRetries = 2, AttemptTimeoutSeconds = 5 },
            http => http.ConfigurePrimaryHttpMessageHandler(() => cloud));
        var sp = services.BuildServiceProvider();
        var http = sp.GetRequiredService<IHttpClientFactory>().CreateClient(OpenStackCloudProvider.HttpClientName);
        var session = new KeystoneSession(http, $"{Base}/identity/v3", new OpenStackCredential.ApplicationCredential("ac1", "s3cret"),
            "RegionOne", "public", TimeProvider.System, NullLogger.Instance);
        return (new ComputeClient(http, session, NullLogger.Instance), new NetworkClient(http, session, NullLogger.Instance),
            new LoadBalancerClient(http, session, NullLogger.Instance), session);
    }

    [Fact]
    public async Task Authenticates_with_the_application_credential_and_uses_the_public_endpoint_and_microversion()
    {
        var cloud = new ScriptedCloud
        {
            Routes = r => r.RequestUri!.AbsolutePath == "/compute/v2.1/os-server-groups"
                ? Json(HttpStatusCode.OK, new JsonObject { ["server_groups"] = new JsonArray(new JsonObject { ["id"] = "g1", ["name"] = "n", ["policy"] = "anti-affinity" }) })
                : null,
        };
        var (compute, _, _, session) = Clients(cloud);
        var groups = await compute.ListServerGroupsAsync(default);

        Assert.Equal("g1", Assert.Single(groups).Id);
        var auth = cloud.Requests.First();
        var authBody = JsonNode.Parse(cloud.Bodies[auth]!)!;
        Assert.Equal("application_credential", (string?)authBody["auth"]!["identity"]!["methods"]![0]);
        Assert.Equal("ac1", (string?)authBody["auth"]!["identity"]!["application_credential"]!["id"]);
        Assert.NotNull(auth.Content!.Headers.ContentLength); // not chunked: uwsgi-hosted services refuse chunked bodies
        var call = cloud.Requests.Last();
        Assert.Equal("token-1", call.Headers.GetValues("X-Auth-Token").Single());
        Assert.Equal("compute 2.67", call.Headers.GetValues("OpenStack-API-Version").Single());
        Assert.Equal("u1", session.UserId);
    }

    [Fact]
    public async Task A_callers_token_costs_no_keystone_call_and_creates_that_arrive_together_check_their_references_once()
    {
        var gate = new TaskCompletionSource();
        gate.SetResult();
        var cloud = new ScriptedCloud
        {
            Routes = r => r.RequestUri!.AbsolutePath switch
            {
                "/image/v2/images" => Json(HttpStatusCode.OK, JsonNode.Parse("""{"images": [{"id": "i1", "name": "fcos", "status": "active", "os_distro": "fedora-coreos"}]}""")!),
                "/compute/v2.1/flavors/m1.small" => Json(HttpStatusCode.OK, JsonNode.Parse("""{"flavor": {"id": "m1.small", "name": "m1.small", "vcpus": 1, "ram": 2048, "disk": 20}}""")!),
                "/compute/v2.1/flavors/detail" => Json(HttpStatusCode.OK, JsonNode.Parse("""{"flavors": [{"id": "m1.small", "name": "m1.small", "vcpus": 1, "ram": 2048, "disk": 20}]}""")!),
                _ => null,
            },
        };
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton(TimeProvider.System);
        services.AddOpenStackCloud(new OpenStackOptions { AuthUrl = $"{Base}/identity/v3", Username = "magnetar", Password = "pw", ProjectName = "service", MaxRetries = 0 },
            http => http.ConfigurePrimaryHttpMessageHandler(() => cloud));
        var provider = services.BuildServiceProvider().GetRequiredService<Magnetar.Cloud.ICloudProvider>();
        var refs = new Magnetar.Cloud.CloudReferences("fcos", ["m1.small"], null, null) { CallerToken = "caller-token" };
        int Lookups() => cloud.Requests.Count(r => r.RequestUri!.AbsolutePath is "/image/v2/images" or "/compute/v2.1/flavors/detail" or "/compute/v2.1/flavors/m1.small");

        Assert.Null(await provider.ValidateReferencesAsync(refs, "p1", default));
        Assert.Equal(2, Lookups());
        Assert.All(cloud.Requests.Where(r => r.RequestUri!.AbsolutePath.StartsWith("/image") || r.RequestUri.AbsolutePath.StartsWith("/compute")),
            r => Assert.Equal("caller-token", r.Headers.GetValues("X-Auth-Token").Single()));
        // The endpoints came from the service user's catalog (one token for it); the caller's token was not validated again.
        Assert.Equal(1, cloud.TokensIssued);
        Assert.DoesNotContain(cloud.Requests, r => r.Method == HttpMethod.Get && r.RequestUri!.AbsolutePath.EndsWith("/auth/tokens"));

        // Nothing is remembered once a check is done: the next create asks again (an image deleted meanwhile is found
        // missing, as Magnum finds it).
        Assert.Null(await provider.ValidateReferencesAsync(refs, "p1", default));
        Assert.Equal(4, Lookups());
        // Ten creates at once (the image lookup held until all of them are in): one check between them.
        var burst = refs with { CallerToken = "burst-token" };
        gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        cloud.Hold = _ => gate.Task;
        var together = Enumerable.Range(0, 10).Select(_ => provider.ValidateReferencesAsync(burst, "p3", default)).ToList();
        await Task.Delay(200);
        gate.SetResult();
        Assert.All(await Task.WhenAll(together), Assert.Null);
        Assert.Equal(6, Lookups());
        // A reference that is not found is never remembered.
        var missing = refs with { FlavorIds = ["m9.huge"] };
        Assert.Equal(400, (await provider.ValidateReferencesAsync(missing, "p1", default))!.StatusCode);
        var before = cloud.Requests.Count;
        Assert.Equal(400, (await provider.ValidateReferencesAsync(missing, "p1", default))!.StatusCode);
        Assert.True(cloud.Requests.Count > before);
    }

    [Fact]
    public async Task A_401_renews_the_token_once_and_repeats_the_call()
    {
        var calls = 0;
        var cloud = new ScriptedCloud
        {
            Routes = r => r.RequestUri!.AbsolutePath.EndsWith("/os-server-groups")
                ? Interlocked.Increment(ref calls) == 1
                    ? Json(HttpStatusCode.Unauthorized, new JsonObject { ["error"] = new JsonObject { ["message"] = "expired" } })
                    : Json(HttpStatusCode.OK, new JsonObject { ["server_groups"] = new JsonArray() })
                : null,
        };
        var (compute, _, _, _) = Clients(cloud);
        Assert.Empty(await compute.ListServerGroupsAsync(default));
        Assert.Equal(2, cloud.TokensIssued);
        Assert.Equal("token-2", cloud.Requests.Last().Headers.GetValues("X-Auth-Token").Single());
    }

    public static TheoryData<HttpStatusCode, string, Type, string> ErrorBodies => new()
    {
        { HttpStatusCode.NotFound, """{"itemNotFound": {"message": "Flavor m9 could not be found.", "code": 404}}""", typeof(OpenStackNotFoundException), "Flavor m9 could not be found." },
        { HttpStatusCode.Conflict, """{"NeutronError": {"type": "OverQuota", "message": "Quota exceeded for resources: ['router'].", "detail": ""}}""", typeof(OpenStackQuotaException), "Quota exceeded for resources: ['router']." },
        { HttpStatusCode.Conflict, """{"NeutronError": {"type": "InUse", "message": "Security Group 1 in use.", "detail": ""}}""", typeof(OpenStackConflictException), "Security Group 1 in use." },
        { HttpStatusCode.Forbidden, """{"forbidden": {"message": "Quota exceeded for instances: Requested 3, but already used 9 of 10 instances", "code": 403}}""", typeof(OpenStackQuotaException), "Quota exceeded for instances" },
        { HttpStatusCode.RequestEntityTooLarge, """{"overLimit": {"message": "Maximum number of ports exceeded", "code": 413}}""", typeof(OpenStackQuotaException), "Maximum number of ports exceeded" },
        { HttpStatusCode.BadRequest, """{"faultcode": "Client", "faultstring": "Invalid input for field/attribute vip_subnet_id.", "debuginfo": null}""", typeof(OpenStackApiException), "Invalid input for field/attribute vip_subnet_id." },
        { HttpStatusCode.InternalServerError, "<html><body><h1>500 Internal Server Error</h1>oops</body></html>", typeof(OpenStackServerException), "500 Internal Server Error oops" },
    };

    [Theory]
    [MemberData(nameof(ErrorBodies))]
    public async Task Error_bodies_of_every_service_become_typed_exceptions_naming_service_call_and_message(HttpStatusCode status, string body, Type expected, string message)
    {
        var cloud = new ScriptedCloud
        {
            Routes = r => r.Method == HttpMethod.Post ? Text(status, body).With(m => m.Headers.Add("x-openstack-request-id", "req-42")) : null,
        };
        var (_, network, _, _) = Clients(cloud);
        var e = await Assert.ThrowsAnyAsync<OpenStackApiException>(() => network.CreateNetworkAsync("n1", "d", default));
        Assert.IsType(expected, e);
        Assert.Equal(status, e.StatusCode);
        Assert.Contains(message, e.ServiceMessage);
        Assert.StartsWith("neutron: create network n1 failed with", e.Message);
        Assert.Contains("req-42", e.Message);
    }

    [Fact]
    public async Task Lists_follow_next_links_across_pages()
    {
        var cloud = new ScriptedCloud
        {
            Routes = r =>
            {
                var path = r.RequestUri!.PathAndQuery;
                if (!path.StartsWith("/compute/v2.1/servers/detail")) return null;
                var page = path.Contains("marker=s2") ? 2 : 1;
                var servers = page == 1
                    ? new JsonArray(new JsonObject { ["id"] = "s1", ["name"] = "a", ["status"] = "ACTIVE" }, new JsonObject { ["id"] = "s2", ["name"] = "b", ["status"] = "BUILD" })
                    : new JsonArray(new JsonObject { ["id"] = "s3", ["name"] = "c", ["status"] = "ERROR", ["fault"] = new JsonObject { ["message"] = "No valid host" } });
                var body = new JsonObject { ["servers"] = servers };
                // Nova's links are absolute, carry its /v2.1 prefix and may name another host than the catalog.
                if (page == 1) body["servers_links"] = new JsonArray(new JsonObject { ["rel"] = "next", ["href"] = "http://nova.internal:8774/v2.1/servers/detail?tags=t&marker=s2" });
                return Json(HttpStatusCode.OK, body);
            },
        };
        var (compute, _, _, _) = Clients(cloud);
        var all = await compute.ListServersByTagAsync("t", default);
        Assert.Equal(["s1", "s2", "s3"], all.Select(s => s.Id));
        Assert.Equal("No valid host", all[2].Fault?.Message);
        Assert.All(cloud.Requests.Skip(1), r => Assert.Equal("127.0.0.1", r.RequestUri!.Host));
    }

    [Fact]
    public async Task Idempotent_calls_are_retried_on_5xx_but_creations_are_not()
    {
        var gets = 0;
        var posts = 0;
        var cloud = new ScriptedCloud
        {
            Routes = r =>
            {
                if (r.RequestUri!.AbsolutePath != "/network/v2.0/networks") return null;
                if (r.Method == HttpMethod.Get)
                    return Interlocked.Increment(ref gets) < 3
                        ? Text(HttpStatusCode.ServiceUnavailable, "busy")
                        : Json(HttpStatusCode.OK, new JsonObject { ["networks"] = new JsonArray() });
                Interlocked.Increment(ref posts);
                return Text(HttpStatusCode.ServiceUnavailable, "busy");
            },
        };
        var (_, network, _, _) = Clients(cloud);
        Assert.Empty(await network.ListNetworksAsync("name=x", default));
        Assert.Equal(3, gets);

        await Assert.ThrowsAsync<OpenStackServerException>(() => network.CreateNetworkAsync("n", "d", default));
        Assert.Equal(1, posts); // a POST that may have gone through is never repeated blindly
    }

    [Fact]
    public async Task Delete_counts_404_as_done()
    {
        var cloud = new ScriptedCloud(); // every route answers 404
        var (_, _, lb, _) = Clients(cloud);
        Assert.False(await lb.DeleteLoadBalancerAsync("gone", default));
        Assert.EndsWith("/lb/v2/lbaas/loadbalancers/gone?cascade=true", cloud.Requests.Last().RequestUri!.PathAndQuery);
    }

    [Fact]
    public void Cluster_names_become_host_name_safe_resource_names()
    {
        Assert.Equal("my-cluster", OpenStackCloudProvider.ResourceName("My_Cluster"));
        Assert.Equal("cluster", OpenStackCloudProvider.ResourceName("../../"));
        Assert.True(OpenStackCloudProvider.ResourceName(new string('x', 300)).Length <= 40);
    }

    [Fact]
    public async Task Every_call_is_counted_by_service_method_and_status_in_the_drivers_meter()
    {
        var seen = new List<(string Instrument, Dictionary<string, string?> Tags)>();
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (i, l) => { if (i.Meter.Name == OpenStackMetrics.MeterName) l.EnableMeasurementEvents(i); };
        void Record<T>(System.Diagnostics.Metrics.Instrument i, T _, ReadOnlySpan<KeyValuePair<string, object?>> tags, object? __)
        {
            var d = new Dictionary<string, string?>();
            foreach (var t in tags) d[t.Key] = t.Value?.ToString();
            lock (seen) seen.Add((i.Name, d));
        }
        listener.SetMeasurementEventCallback<long>(Record);
        listener.SetMeasurementEventCallback<double>(Record);
        listener.Start();

        var cloud = new ScriptedCloud { Routes = _ => null }; // every call answers 404
        var (compute, _, _, _) = Clients(cloud);
        Assert.False(await compute.DeleteServerGroupAsync("gone", default)); // 404 counts as deleted, and is counted

        lock (seen)
        {
            Assert.Contains(seen, m => m.Instrument == "magnetar.openstack.requests" && m.Tags["service"] == "keystone" && m.Tags["method"] == "POST" && m.Tags["status"] == "201");
            Assert.Contains(seen, m => m.Instrument == "magnetar.openstack.requests" && m.Tags["service"] == "nova" && m.Tags["method"] == "DELETE" && m.Tags["status"] == "404");
            Assert.Contains(seen, m => m.Instrument == "magnetar.openstack.request.duration" && m.Tags["service"] == "nova");
        }
    }

    [Fact]
    public async Task The_server_exports_its_metrics_in_prometheus_format()
    {
        await using var host = await TestHost.StartAsync(Db.Sqlite);
        var c = host.App.GetTestClient();
        Assert.Equal(HttpStatusCode.OK, (await c.GetAsync("/healthz")).StatusCode);
        var text = "";
        for (var i = 0; i < 20 && !text.Contains("http_server_request_duration_seconds"); i++)
        {
            await Task.Delay(100);
            text = await c.GetStringAsync("/metrics"); // the exporter caches a scrape briefly
        }
        Assert.Contains("http_server_request_duration_seconds", text);
        Assert.Contains("# TYPE ", text);
    }
}

internal static class HttpResponseExtensions
{
    public static HttpResponseMessage With(this HttpResponseMessage m, Action<HttpResponseMessage> change) { change(m); return m; }

}
