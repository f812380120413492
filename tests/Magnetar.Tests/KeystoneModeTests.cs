using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Magnetar.Identity;
using Microsoft.Extensions.Logging.Abstractions;

namespace Magnetar.Tests;

/// <summary>
/// An env file written by a deploy script (KEY=value lines), named by an environment variable that scripts/test sets
/// after starting the service; a second variable makes its absence a failure instead of a skip.
/// </summary>
public sealed record ServiceEnvFile(string PathVariable, string RequireVariable, string StartedBy)
{
    public string? Path => Environment.GetEnvironmentVariable(PathVariable) is { Length: > 0 } p && File.Exists(p) ? p : null;
    public bool Required => Environment.GetEnvironmentVariable(RequireVariable) == "1";
    public string? SkipReason => Path is null && !Required ? $"{PathVariable} is not set ({StartedBy})" : null;

    public Dictionary<string, string> Load()
    {
        var path = Path ?? throw new InvalidOperationException($"{RequireVariable}=1 but {PathVariable} does not name an existing file");
        return File.ReadAllLines(path).Where(l => l.Contains('=')).Select(l => l.Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
    }
}

/// <summary>Runs only against a real Keystone (deploy/keystone.sh, started by scripts/test); required when MAGNETAR_REQUIRE_KEYSTONE=1.</summary>
public sealed class KeystoneFactAttribute : FactAttribute
{
    public KeystoneFactAttribute() => Skip = KeystoneEnv.File.SkipReason;
}

public static class KeystoneEnv
{
    public static readonly ServiceEnvFile File = new("MAGNETAR_KEYSTONE_ENV", "MAGNETAR_REQUIRE_KEYSTONE", "scripts/test starts Keystone with deploy/keystone.sh and sets it");

    public static Dictionary<string, string> Load() => File.Load();

    public static async Task<string> TokenAsync(Dictionary<string, string> env, string user, string password, string project)
    {
        using var http = new HttpClient();
        var body = KeystoneRequests.PasswordAuth(user, password, project);
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                var resp = await http.PostAsync(env["KEYSTONE_URL"] + "/auth/tokens?nocatalog", Http.Json(body));
                Assert.Equal(HttpStatusCode.Created, resp.StatusCode);
                return resp.Headers.GetValues("X-Subject-Token").Single();
            }
            catch (HttpRequestException) when (attempt < 3) { await Task.Delay(200); } // uwsgi drops idle connections
        }
    }
}

/// <summary>Keystone mode against the real Keystone from Debian's package.</summary>
public sealed class KeystoneModeTests
{
    private sealed class CountingHandler : DelegatingHandler
    {
        public int Calls;
        public CountingHandler() : base(new SocketsHttpHandler { PooledConnectionIdleTimeout = TimeSpan.FromMilliseconds(100) }) { }
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
        {
            Interlocked.Increment(ref Calls);
            return base.SendAsync(request, ct);
        }
    }

    [KeystoneFact]
    public async Task Validator_accepts_keystone_tokens_maps_roles_and_caches()
    {
        var env = KeystoneEnv.Load();
        var handler = new CountingHandler();
        var validator = new KeystoneTokenValidator(new HttpClient(handler),
            new KeystoneOptions { AuthUrl = env["KEYSTONE_URL"], Username = env["SERVICE_USER"], Password = env["SERVICE_PASSWORD"], ProjectName = env["SERVICE_PROJECT"] },
            TimeProvider.System, NullLogger<KeystoneTokenValidator>.Instance);

        var token = await KeystoneEnv.TokenAsync(env, env["DEMO_USER"], env["DEMO_PASSWORD"], env["DEMO_PROJECT"]);
        var result = await validator.ValidateAsync(token, default);
        Assert.True(result.IsValid, result.FailureReason);
        Assert.Equal("demo", result.Context!.ProjectName);
        Assert.Equal("demo", result.Context.UserName);
        Assert.True(result.Context.IsMember);
        Assert.False(result.Context.IsAdmin);
        Assert.True(result.Context.ExpiresAt > DateTimeOffset.UtcNow);

        var calls = handler.Calls;
        var again = await validator.ValidateAsync(token, default);
        Assert.True(again.IsValid);
        Assert.Equal(calls, handler.Calls); // served from the cache

        var readerToken = await KeystoneEnv.TokenAsync(env, env["READER_USER"], env["READER_PASSWORD"], env["DEMO_PROJECT"]);
        var reader = await validator.ValidateAsync(readerToken, default);
        Assert.True(reader.Context!.IsReader);
        Assert.False(reader.Context.IsMember);

        var bogus = await validator.ValidateAsync("gAAAAABnot-a-real-fernet-token", default);
        Assert.False(bogus.IsValid);
    }

    [KeystoneFact]
    public async Task Unreachable_keystone_is_reported_as_unavailable_not_as_a_bad_token()
    {
        var validator = new KeystoneTokenValidator(new HttpClient(),
            new KeystoneOptions { AuthUrl = "http://127.0.0.1:9/v3", Username = "x", Password = "y", TimeoutSeconds = 2 },
            TimeProvider.System, NullLogger<KeystoneTokenValidator>.Instance);
        await Assert.ThrowsAsync<IdentityUnavailableException>(() => validator.ValidateAsync("anything", default));
    }

    [KeystoneFact]
    public async Task Magnum_api_in_keystone_mode_uses_keystone_projects_and_roles()
    {
        var env = KeystoneEnv.Load();
        await using var host = await TestHost.StartAsync(Db.Sqlite, settings: new()
        {
            ["Magnetar:Identity:Mode"] = "keystone",
            ["Magnetar:Identity:Keystone:AuthUrl"] = env["KEYSTONE_URL"],
            ["Magnetar:Identity:Keystone:Username"] = env["SERVICE_USER"],
            ["Magnetar:Identity:Keystone:Password"] = env["SERVICE_PASSWORD"],
            ["Magnetar:Identity:Keystone:ProjectName"] = env["SERVICE_PROJECT"],
        });
        var demo = host.Anonymous();
        demo.DefaultRequestHeaders.Add("X-Auth-Token", await KeystoneEnv.TokenAsync(env, env["DEMO_USER"], env["DEMO_PASSWORD"], env["DEMO_PROJECT"]));
        demo.DefaultRequestHeaders.Add("OpenStack-API-Version", "container-infra latest");
        var t = await Clusters.CreateTemplateAsync(demo);
        var uuid = await Clusters.CreateClusterAsync(demo, t["uuid"]!.GetValue<string>());
        var cluster = await Clusters.WaitForStatusAsync(demo, uuid, "CREATE_COMPLETE");
        Assert.Equal(32, cluster["project_id"]!.GetValue<string>().Length); // Keystone's project id

        var reader = host.Anonymous();
        reader.DefaultRequestHeaders.Add("X-Auth-Token", await KeystoneEnv.TokenAsync(env, env["READER_USER"], env["READER_PASSWORD"], env["DEMO_PROJECT"]));
        await reader.GetAsync($"/v1/clusters/{uuid}").ExpectAsync(200);
        await reader.DeleteAsync($"/v1/clusters/{uuid}").ExpectAsync(403);

        var admin = host.Anonymous();
        admin.DefaultRequestHeaders.Add("X-Auth-Token", await KeystoneEnv.TokenAsync(env, "admin", env["ADMIN_PASSWORD"], "admin"));
        await admin.GetAsync($"/v1/clusters/{uuid}").ExpectAsync(200); // admin sees every project

        var bad = host.Anonymous();
        bad.DefaultRequestHeaders.Add("X-Auth-Token", "gAAAAABbogus");
        await bad.GetAsync("/v1/clusters").ExpectAsync(401);
        await host.Anonymous().GetAsync("/identity/v3").ExpectAsync(404); // no built-in identity in keystone mode
    }
}
