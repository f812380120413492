using System.Net;
using System.Text.Json.Nodes;

namespace Magnetar.Tests;

/// <summary>
/// <c>magnetar register</c> (issue #16) against the all-in-one's real Keystone. In a region of the test's own, a
/// container-infra service with endpoints elsewhere plays an existing Magnum: register refuses it, changes nothing,
/// then with <c>--replace</c> points the endpoints at Magnetar and makes the service user; a second run (admin
/// credentials from an openrc's OS_* variables) changes nothing. Everything the test made is removed afterwards.
/// </summary>
[Trait("Category", "Integration")]
public sealed class RegisterCommandTests
{
    [OpenStackFact]
    public async Task Register_refuses_magnum_replaces_it_when_asked_and_is_idempotent()
    {
        var env = OpenStackEnv.Load();
        var run = Guid.NewGuid().ToString("N")[..8];
        var region = $"RegionRegister{run}";
        var (serviceName, user) = ($"magnetar-{run}", $"magnetar-{run}");
        var token = await KeystoneEnv.TokenAsync(env, env["ADMIN_USER"], env["ADMIN_PASSWORD"], env["ADMIN_PROJECT"]);
        // A new connection per request: the all-in-one's Keystone (uwsgi's HTTP router, keep-alive with auto-chunking)
        // sends a chunk terminator after a 204, which breaks the next response on a reused connection.
        using var keystone = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.Zero }) { BaseAddress = new Uri(env["KEYSTONE_URL"].TrimEnd('/') + "/") };
        keystone.DefaultRequestHeaders.Add("X-Auth-Token", token);
        async Task<JsonNode> Call(HttpMethod method, string path, JsonObject? body, HttpStatusCode expect)
        {
            for (var attempt = 1; ; attempt++)
            {
                using var request = new HttpRequestMessage(method, path);
                if (body is not null) request.Content = new StringContent(body.ToJsonString(), System.Text.Encoding.UTF8, "application/json");
                HttpResponseMessage response;
                // uwsgi resets a connection now and then: what does not create is sent again
                try { response = await keystone.SendAsync(request); }
                catch (HttpRequestException) when (method != HttpMethod.Post && attempt < 3) { await Task.Delay(200); continue; }
                using (response)
                {
                    var text = await response.Content.ReadAsStringAsync();
                    Assert.True(response.StatusCode == expect, $"{method} {path}: {(int)response.StatusCode} {text}");
                    return text == "" ? new JsonObject() : JsonNode.Parse(text)!;
                }
            }
        }
        async Task<List<(string Id, string Interface, string Url)>> Endpoints(string service)
            => (await Call(HttpMethod.Get, $"endpoints?service_id={service}&region_id={region}", null, HttpStatusCode.OK))["endpoints"]!.AsArray()
                .Select(e => (e!["id"]!.GetValue<string>(), e["interface"]!.GetValue<string>(), e["url"]!.GetValue<string>())).OrderBy(e => e.Item2).ToList();

        // "Magnum" in the test's region: its own container-infra service and three endpoints.
        await Call(HttpMethod.Post, "regions", new JsonObject { ["region"] = new JsonObject { ["id"] = region } }, HttpStatusCode.Created);
        var magnum = (await Call(HttpMethod.Post, "services", new JsonObject
        {
            ["service"] = new JsonObject { ["type"] = "container-infra", ["name"] = $"magnum-{run}", ["enabled"] = true },
        }, HttpStatusCode.Created))["service"]!["id"]!.GetValue<string>();
        try
        {
            foreach (var iface in new[] { "public", "internal", "admin" })
                await Call(HttpMethod.Post, "endpoints", new JsonObject
                {
                    ["endpoint"] = new JsonObject { ["service_id"] = magnum, ["interface"] = iface, ["url"] = "http://10.0.0.9:9511/v1", ["region_id"] = region },
                }, HttpStatusCode.Created);
            var before = await Endpoints(magnum);

            string[] args = ["register", "--region", region, "--public-url", "https://magnetar.example.org:9511/v1", "--internal-url", "http://10.0.0.5:9511/v1",
                "--service-name", serviceName, "--service-user", user, "--service-password", "s3cret-" + run];
            string[] admin = ["--auth-url", env["KEYSTONE_URL"], "--username", env["ADMIN_USER"], "--password", env["ADMIN_PASSWORD"], "--project", env["ADMIN_PROJECT"]];
            var (code, text) = Magnetar([.. args, .. admin]);
            Assert.Equal(1, code);
            Assert.True(text.Contains($"already has a container-infra service in region {region} that is not this Magnetar: 'magnum-{run}' public http://10.0.0.9:9511/v1"), text);
            Assert.Contains("--replace", text);
            Assert.Equal(before, await Endpoints(magnum));
            Assert.Empty((await Call(HttpMethod.Get, $"users?name={user}", null, HttpStatusCode.OK))["users"]!.AsArray());

            (code, text) = Magnetar([.. args, .. admin, "--replace"]);
            Assert.True(code == 0, text);
            var after = await Endpoints(magnum);
            Assert.Equal(before.Select(e => e.Id), after.Select(e => e.Id)); // the same endpoints, pointed at Magnetar
            Assert.Equal([("admin", "http://10.0.0.5:9511/v1"), ("internal", "http://10.0.0.5:9511/v1"), ("public", "https://magnetar.example.org:9511/v1")],
                after.Select(e => (e.Interface, e.Url)));
            Assert.Equal(serviceName, (await Call(HttpMethod.Get, $"services/{magnum}", null, HttpStatusCode.OK))["service"]!["name"]!.GetValue<string>());
            // The service user logs in to the service project; its token's catalog lists Magnetar in the region.
            using var http = new HttpClient();
            var login = await http.PostAsync(env["KEYSTONE_URL"] + "/auth/tokens", new StringContent(new JsonObject
            {
                ["auth"] = new JsonObject
                {
                    ["identity"] = new JsonObject
                    {
                        ["methods"] = new JsonArray("password"),
                        ["password"] = new JsonObject { ["user"] = new JsonObject { ["name"] = user, ["domain"] = new JsonObject { ["id"] = "default" }, ["password"] = "s3cret-" + run } },
                    },
                    ["scope"] = new JsonObject { ["project"] = new JsonObject { ["name"] = "service", ["domain"] = new JsonObject { ["id"] = "default" } } },
                },
            }.ToJsonString(), System.Text.Encoding.UTF8, "application/json"));
            var body = JsonNode.Parse(await login.Content.ReadAsStringAsync())!;
            Assert.True(login.StatusCode == HttpStatusCode.Created, body.ToJsonString());
            Assert.Contains("admin", body["token"]!["roles"]!.AsArray().Select(r => r!["name"]!.GetValue<string>()));
            var entry = body["token"]!["catalog"]!.AsArray().Single(s => s!["type"]!.GetValue<string>() == "container-infra" && s["endpoints"]!.AsArray().Any(e => e!["region_id"]!.GetValue<string>() == region));
            Assert.Equal("https://magnetar.example.org:9511/v1", entry!["endpoints"]!.AsArray().Single(e => e!["region_id"]!.GetValue<string>() == region && e["interface"]!.GetValue<string>() == "public")!["url"]!.GetValue<string>());

            // Again, the admin from an openrc's variables: nothing to change.
            var openrc = new Dictionary<string, string>
            {
                ["OS_AUTH_URL"] = env["KEYSTONE_URL"], ["OS_USERNAME"] = env["ADMIN_USER"], ["OS_PASSWORD"] = env["ADMIN_PASSWORD"],
                ["OS_PROJECT_NAME"] = env["ADMIN_PROJECT"], ["OS_USER_DOMAIN_NAME"] = "Default", ["OS_PROJECT_DOMAIN_NAME"] = "Default",
            };
            (code, text) = Magnetar(args, openrc);
            Assert.True(code == 0, text);
            Assert.Contains("nothing changed", text);
            Assert.DoesNotContain("changed:", text);
            Assert.Equal(after, await Endpoints(magnum));
            Assert.Single((await Call(HttpMethod.Get, $"users?name={user}", null, HttpStatusCode.OK))["users"]!.AsArray());
        }
        finally
        {
            // Everything the test made goes, even after a failure above (whose message a cleanup error must not hide).
            try
            {
                foreach (var e in await Endpoints(magnum)) await Call(HttpMethod.Delete, $"endpoints/{e.Id}", null, HttpStatusCode.NoContent);
                await Call(HttpMethod.Delete, $"services/{magnum}", null, HttpStatusCode.NoContent);
                await Call(HttpMethod.Delete, $"regions/{region}", null, HttpStatusCode.NoContent);
                foreach (var u in (await Call(HttpMethod.Get, $"users?name={user}", null, HttpStatusCode.OK))["users"]!.AsArray())
                    await Call(HttpMethod.Delete, $"users/{u!["id"]}", null, HttpStatusCode.NoContent);
            }
            catch (Exception e) { Console.WriteLine($"RegisterCommandTests cleanup: {e.Message}"); }
        }
    }

    [Fact]
    public void Missing_options_are_named()
    {
        var (code, text) = Magnetar(["register", "--public-url", "not a url"], new Dictionary<string, string> { ["OS_AUTH_URL"] = "", ["OS_USERNAME"] = "" });
        Assert.Equal(1, code);
        Assert.Contains("missing --auth-url, --username, --password, --project", text);
    }

    private static (int Code, string Text) Magnetar(string[] args, Dictionary<string, string>? env = null)
    {
        // Only what the test gives: no OS_* variables of the machine running the tests.
        var vars = new Dictionary<string, string>(env ?? []);
        foreach (var k in new[] { "OS_AUTH_URL", "OS_USERNAME", "OS_PASSWORD", "OS_PROJECT_NAME", "OS_REGION_NAME" }) vars.TryAdd(k, "");
        return BootstrapArtifactTests.Run("dotnet", [Path.Combine(AppContext.BaseDirectory, "magnetar.dll"), .. args], vars);
    }
}
