using System.Text.Json.Nodes;
using Magnetar.Identity;

namespace Magnetar.Tests;

public sealed class BuiltInIdentityTests
{
    private sealed class ManualTime(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now = now;
        public override DateTimeOffset GetUtcNow() => Now;
    }

    [Fact]
    public void Tokens_validate_expire_resist_tampering_survive_restart_and_revoke()
    {
        var dir = Directory.CreateTempSubdirectory("identity-").FullName;
        var time = new ManualTime(DateTimeOffset.UtcNow);
        var store = new BuiltInIdentityStore(dir);
        store.EnsureUser("alice", "pw", "proj", "member");
        var user = store.FindUser(null, "alice")!;
        var project = store.FindProject(null, "proj")!;
        var tokens = new BuiltInTokenService(dir, time, TimeSpan.FromHours(1));
        var validator = new BuiltInTokenValidator(tokens, store);
        var (token, payload) = tokens.Issue(user.Id, project.Id, ["password"]);

        var ok = validator.Validate(token);
        Assert.True(ok.IsValid);
        Assert.Equal("alice", ok.Context!.UserName);
        Assert.Equal(["member"], ok.Context.Roles);

        // another process with the same data directory accepts it (the key is on disk)
        var restarted = new BuiltInTokenValidator(new BuiltInTokenService(dir, time, TimeSpan.FromHours(1)), new BuiltInIdentityStore(dir));
        Assert.True(restarted.Validate(token).IsValid);

        var chars = token.ToCharArray();
        chars[20] = chars[20] == 'A' ? 'B' : 'A';
        Assert.False(validator.Validate(new string(chars)).IsValid);
        Assert.False(validator.Validate("mgtnonsense").IsValid);

        time.Now += TimeSpan.FromHours(2);
        Assert.False(validator.Validate(token).IsValid);
        time.Now -= TimeSpan.FromHours(2);

        tokens.Revoke(payload);
        Assert.False(validator.Validate(token).IsValid);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void Passwords_are_hashed_and_openrc_files_work()
    {
        var dir = Directory.CreateTempSubdirectory("identity-").FullName;
        var store = new BuiltInIdentityStore(dir);
        var files = store.SeedStandalone(dir, "http://127.0.0.1:9511");
        Assert.Equal(2, files.Count);
        var rc = File.ReadAllLines(Path.Combine(dir, "openrc-demo")).Where(l => l.StartsWith("export ")).Select(l => l[7..].Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
        Assert.Equal("http://127.0.0.1:9511/identity/v3", rc["OS_AUTH_URL"]);
        Assert.Equal("demo", rc["OS_USERNAME"]);
        var json = File.ReadAllText(Path.Combine(dir, "identity.json"));
        Assert.DoesNotContain(rc["OS_PASSWORD"], json);
        Assert.Contains("pbkdf2-sha256$", json);
        Assert.True(store.VerifyPassword(store.FindUser(null, "demo")!, rc["OS_PASSWORD"]));
        Assert.False(store.VerifyPassword(store.FindUser(null, "demo")!, "wrong"));
        // a second start keeps the same passwords
        new BuiltInIdentityStore(dir).SeedStandalone(dir, "http://127.0.0.1:9511");
        Assert.Contains($"OS_PASSWORD={rc["OS_PASSWORD"]}", File.ReadAllText(Path.Combine(dir, "openrc-demo")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(dir, "openrc")));
        Directory.Delete(dir, true);
    }
}

/// <summary>The built-in Keystone subset over HTTP, and the real OpenStack client against it.</summary>
public sealed class BuiltInKeystoneApiTests(CliIdentityFixture server) : IClassFixture<CliIdentityFixture>
{
    [Fact]
    public async Task Discovery_and_token_flows_match_keystone()
    {
        var host = server.Host;
        var root = await host.Anonymous().GetAsync("/identity").ExpectAsync(300);
        Assert.Equal("v3.14", root["versions"]!["values"]![0]!["id"]!.GetValue<string>());
        var v3 = await host.Anonymous().GetAsync("/identity/v3").ExpectAsync(200);
        Assert.Equal("stable", v3["version"]!["status"]!.GetValue<string>());

        var body = JsonNode.Parse("""{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "t-demo", "domain": {"id": "default"}, "password": "test-password-1"}}}, "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}}}}""")!;
        var resp = await host.Anonymous().PostAsync("/identity/v3/auth/tokens", Http.Json(body));
        Assert.Equal(System.Net.HttpStatusCode.Created, resp.StatusCode);
        var token = resp.Headers.GetValues("X-Subject-Token").Single();
        var t = (await resp.ReadJsonAsync())["token"]!;
        Assert.Equal("demo", t["project"]!["name"]!.GetValue<string>());
        Assert.Contains(t["roles"]!.AsArray(), r => r!["name"]!.GetValue<string>() == "member");
        var magnum = t["catalog"]!.AsArray().Single(s => s!["type"]!.GetValue<string>() == "container-infra")!;
        Assert.Equal("http://magnetar.test/v1", magnum["endpoints"]![0]!["url"]!.GetValue<string>());

        // token method, validation, revocation
        var rescope = JsonNode.Parse("""{"auth": {"identity": {"methods": ["token"], "token": {"id": "TOKEN"}}, "scope": {"project": {"name": "demo", "domain": {"id": "default"}}}}}""".Replace("TOKEN", token))!;
        var r2 = await host.Anonymous().PostAsync("/identity/v3/auth/tokens?nocatalog", Http.Json(rescope));
        Assert.Equal(System.Net.HttpStatusCode.Created, r2.StatusCode);
        Assert.Null((await r2.ReadJsonAsync())["token"]!["catalog"]);
        var check = host.Anonymous();
        check.DefaultRequestHeaders.Add("X-Auth-Token", token);
        check.DefaultRequestHeaders.Add("X-Subject-Token", token);
        await check.GetAsync("/identity/v3/auth/tokens").ExpectAsync(200);
        await check.DeleteAsync("/identity/v3/auth/tokens").ExpectAsync(204);
        await check.GetAsync("/v1/clusters").ExpectAsync(401);

        var wrong = JsonNode.Parse("""{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "t-demo", "domain": {"id": "default"}, "password": "nope"}}}}}""")!;
        var denied = await host.Anonymous().PostAsync("/identity/v3/auth/tokens", Http.Json(wrong)).ExpectAsync(401);
        Assert.Equal(401, denied["error"]!["code"]!.GetValue<int>());
        var otherProject = JsonNode.Parse("""{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "t-demo", "domain": {"id": "default"}, "password": "test-password-1"}}}, "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}""")!;
        await host.Anonymous().PostAsync("/identity/v3/auth/tokens", Http.Json(otherProject)).ExpectAsync(401);
        await host.Anonymous().PostAsync("/identity/v3/auth/tokens", Http.Json("{]")).ExpectAsync(400);
    }
}

public sealed class CliIdentityFixture : IAsyncLifetime
{
    public TestHost Host { get; private set; } = null!;
    public async Task InitializeAsync() => Host = await TestHost.StartAsync(Db.Sqlite);
    public async Task DisposeAsync() => await Host.DisposeAsync();
}
