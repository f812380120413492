using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Magnetar.Identity;
using Magnetar.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Magnetar.Tests;

public enum Db { Sqlite, Postgres }

/// <summary>
/// The whole Magnetar application (API, built-in identity, conductor, simulated cloud) in process on ASP.NET Core's
/// TestServer, on SQLite in a temp directory or on a fresh PostgreSQL database. Users: admin (admin on project admin),
/// demo (member on demo), reader (reader on demo), other (member on project other).
/// </summary>
public sealed class TestHost : IAsyncDisposable
{
    public WebApplication App { get; }
    public string DataDir { get; }
    public Db Database { get; }
    private readonly string? _pgDatabase;
    private readonly Dictionary<string, string> _tokens = new();
    public const string Password = "test-password-1";

    /// <summary>Test users by alias: (user name, project, role).</summary>
    public static readonly Dictionary<string, (string User, string Project, string Role)> Users = new()
    {
        ["admin"] = ("t-admin", "admin", "admin"),
        ["demo"] = ("t-demo", "demo", "member"),
        ["reader"] = ("t-reader", "demo", "reader"),
        ["other"] = ("t-other", "other", "member"),
    };

    private TestHost(WebApplication app, string dataDir, Db db, string? pgDatabase)
    {
        App = app;
        DataDir = dataDir;
        Database = db;
        _pgDatabase = pgDatabase;
    }

    public static string? PostgresConnectionString => Environment.GetEnvironmentVariable("MAGNETAR_TEST_POSTGRES");

    public static async Task<TestHost> StartAsync(Db db, string? dataDir = null, string? pgDatabase = null, Dictionary<string, string?>? settings = null,
        Action<IServiceCollection>? services = null)
    {
        dataDir ??= Directory.CreateTempSubdirectory("magnetar-test-").FullName;
        var args = new List<string>
        {
            "--Magnetar:DataDir=" + dataDir,
            "--Magnetar:Cloud:Simulated:StepDelayMs=20",
            "--Magnetar:Conductor:PollIntervalMs=50",
            "--Magnetar:Conductor:LeaseSeconds=5",
            "--Magnetar:PublicUrl=http://magnetar.test",
            "--Logging:LogLevel:Default=Warning",
            // Tests fire requests far faster than a tenant: the per-project limit is tested on its own (RateLimitTests).
            "--Magnetar:Api:RateLimitPerSecond=0",
        };
        if (db == Db.Postgres)
        {
            var baseCs = PostgresConnectionString ?? throw new InvalidOperationException("MAGNETAR_TEST_POSTGRES is not set");
            pgDatabase ??= "magnetar_test_" + Guid.NewGuid().ToString("N")[..12];
            var csb = new NpgsqlConnectionStringBuilder(baseCs) { Database = pgDatabase };
            args.Add("--Magnetar:Database:Provider=postgres");
            args.Add("--Magnetar:Database:ConnectionString=" + csb.ConnectionString);
            await using var conn = new NpgsqlConnection(baseCs);
            await conn.OpenAsync();
            await using var exists = new NpgsqlCommand($"SELECT 1 FROM pg_database WHERE datname = '{pgDatabase}'", conn);
            if (await exists.ExecuteScalarAsync() is null)
            {
                await using var create = new NpgsqlCommand($"CREATE DATABASE \"{pgDatabase}\"", conn);
                await create.ExecuteNonQueryAsync();
            }
        }
        foreach (var (k, v) in settings ?? new()) args.Add($"--{k}={v}");

        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args.ToArray(), EnvironmentName = "Testing" });
        builder.WebHost.UseTestServer();
        MagnetarHost.Configure(builder);
        services?.Invoke(builder.Services);
        var app = builder.Build();
        MagnetarHost.Configure(app);
        await app.StartAsync();

        var store = app.Services.GetService<BuiltInIdentityStore>();
        if (store is null) return new TestHost(app, dataDir, db, pgDatabase); // keystone mode: users live in Keystone
        // The server seeds its own admin/demo users with random passwords (openrc); tests use their own users.
        foreach (var (alias, (user, project, role)) in Users) store.EnsureUser(user, Password, project, role);
        return new TestHost(app, dataDir, db, pgDatabase);
    }

    /// <summary>Stops this instance and starts a new one on the same data directory and database (a restart).</summary>
    public async Task<TestHost> RestartAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
        return await StartAsync(Database, DataDir, _pgDatabase);
    }

    public HttpClient Anonymous() => App.GetTestClient();

    /// <summary>A client for a test user alias (admin, demo, reader, other), authenticated through the built-in Keystone API, speaking the given microversion.</summary>
    public async Task<HttpClient> ClientAsync(string user, string version = "latest")
    {
        if (!_tokens.TryGetValue(user, out var token))
        {
            var (name, project, _) = Users[user];
            token = await IssueTokenAsync(name, project);
            _tokens[user] = token;
        }
        var c = App.GetTestClient();
        c.DefaultRequestHeaders.Add("X-Auth-Token", token);
        c.DefaultRequestHeaders.Add("OpenStack-API-Version", "container-infra " + version);
        return c;
    }

    public async Task<string> IssueTokenAsync(string user, string project)
    {
        var body = KeystoneRequests.PasswordAuth(user, Password, project);
        var resp = await Anonymous().PostAsJsonAsync("/identity/v3/auth/tokens", body);
        Assert.Equal(System.Net.HttpStatusCode.Created, resp.StatusCode);
        return resp.Headers.GetValues("X-Subject-Token").Single();
    }

    public async ValueTask DisposeAsync()
    {
        try { await App.StopAsync(); } catch { /* already stopped */ }
        await App.DisposeAsync();
        if (Database == Db.Postgres && _pgDatabase is not null && PostgresConnectionString is { } cs)
        {
            NpgsqlConnection.ClearAllPools();
            await PgDatabases.DropAsync(cs, _pgDatabase);
        }
        try { Directory.Delete(DataDir, recursive: true); } catch { /* best effort */ }
    }
}

/// <summary>Test databases on the test PostgreSQL.</summary>
public static class PgDatabases
{
    /// <summary>
    /// DROP DATABASE … WITH (FORCE), tried again for up to 30 s while PostgreSQL 15 refuses it because another role's
    /// process is in the database: an autovacuum worker started on the tables a test just wrote (it runs as no role the
    /// test's role is a member of, so FORCE may not terminate it; CI met this once) — it ends on its own within seconds.
    /// </summary>
    public static async Task DropAsync(string adminConnectionString, string database)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await using var conn = new NpgsqlConnection(adminConnectionString);
                await conn.OpenAsync();
                await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)", conn);
                await drop.ExecuteNonQueryAsync();
                return;
            }
            catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.InsufficientPrivilege or PostgresErrorCodes.ObjectInUse && attempt < 60)
            {
                await Task.Delay(500);
            }
        }
    }
}

public static class Http
{
    public static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");
    public static StringContent Json(JsonNode node) => Json(node.ToJsonString());

    public static async Task<JsonNode> ReadJsonAsync(this HttpResponseMessage resp)
    {
        var text = await resp.Content.ReadAsStringAsync();
        try { return JsonNode.Parse(text)!; }
        catch (Exception e) { throw new Xunit.Sdk.XunitException($"not JSON ({(int)resp.StatusCode}): {text}\n{e.Message}"); }
    }

    public static async Task<JsonNode> ExpectAsync(this Task<HttpResponseMessage> call, int status)
    {
        var resp = await call;
        var text = await resp.Content.ReadAsStringAsync();
        if ((int)resp.StatusCode != status) throw new Xunit.Sdk.XunitException($"expected {status}, got {(int)resp.StatusCode}: {text}");
        return string.IsNullOrEmpty(text) ? new JsonObject() : JsonNode.Parse(text)!;
    }

    public static Task<HttpResponseMessage> PatchJson(this HttpClient c, string url, string json)
        => c.PatchAsync(url, Json(json));
    public static Task<HttpResponseMessage> PostJson(this HttpClient c, string url, string json)
        => c.PostAsync(url, Json(json));

    /// <summary>Magnum's error body: {"errors": [{status, title, detail, code, ...}]}; returns the detail.</summary>
    public static string ErrorDetail(this JsonNode body)
    {
        var e = body["errors"]![0]!;
        Assert.NotNull(e["title"]);
        Assert.NotNull(e["status"]);
        return e["detail"]!.GetValue<string>();
    }
}
