using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;

namespace Magnetar.Tests;

/// <summary>
/// Calls to the Magnum API of a server a test started as its own process (an authenticated client from
/// <see cref="MagnetarProcess.ClientAsync"/>), and the waits the process-level tests share.
/// </summary>
internal sealed class MagnumSession(Func<HttpClient> http, Func<string> diagnostics)
{
    /// <summary>Sends a request and checks its status; the answer's JSON (an empty object when it has none).</summary>
    public async Task<JsonNode> Api(HttpMethod method, string path, JsonObject? body, HttpStatusCode expect)
    {
        using var req = new HttpRequestMessage(method, path);
        if (body is not null) req.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
        using var resp = await http().SendAsync(req);
        var text = await resp.Content.ReadAsStringAsync();
        Assert.True(resp.StatusCode == expect, $"{method} {path}: {(int)resp.StatusCode} {text}");
        return string.IsNullOrEmpty(text) ? new JsonObject() : JsonNode.Parse(text)!;
    }

    public Task<JsonNode> Cluster(string cluster) => Api(HttpMethod.Get, $"/v1/clusters/{cluster}", null, HttpStatusCode.OK);

    /// <summary>Polls the cluster until <paramref name="done"/> holds (a server restarting meanwhile is waited for); fails with what it last saw.</summary>
    public async Task<JsonNode> WaitFor(string cluster, Func<JsonNode, bool> done, int seconds = 60)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        JsonNode? c = null;
        do
        {
            try
            {
                c = await Cluster(cluster);
                if (done(c)) return c;
            }
            catch (HttpRequestException) { } // the server is being restarted
            await Task.Delay(200);
        } while (DateTime.UtcNow < deadline);
        throw new Xunit.Sdk.XunitException($"cluster {cluster} did not get there: {c?.ToJsonString()}\n{diagnostics()}");
    }
}

/// <summary>Reads (and, to break things on purpose, writes) the SQLite database of a server a test started.</summary>
internal sealed class ServerDatabase(Func<string> dataDir)
{
    public SqliteConnection Open(bool write = false)
    {
        var db = new SqliteConnection($"Data Source={dataDir()}/magnetar.db;Mode={(write ? "ReadWrite" : "ReadOnly")};Default Timeout=30");
        db.Open();
        return db;
    }

    public long Count(string sql)
    {
        using var db = Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        return (long)cmd.ExecuteScalar()!;
    }

    /// <summary>Runs a statement that must change something.</summary>
    public void Exec(string sql)
    {
        using var db = Open(write: true);
        using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        Assert.True(cmd.ExecuteNonQuery() > 0, sql);
    }

    /// <summary>The simulated cloud's servers of a cluster with the user-data each was created with.</summary>
    public List<(string Name, string UserData, bool Deleting)> Servers(string cluster)
    {
        using var db = Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "SELECT Name, UserData, DeleteRequestedAt IS NOT NULL FROM simulated_resources WHERE ClusterUuid = $c AND Kind = 'server' AND UserData IS NOT NULL ORDER BY Name";
        cmd.Parameters.AddWithValue("$c", cluster);
        var list = new List<(string, string, bool)>();
        using var r = cmd.ExecuteReader();
        while (r.Read()) list.Add((r.GetString(0), r.GetString(1), r.GetBoolean(2)));
        return list;
    }

    /// <summary>The cluster's events (reason, message) in order.</summary>
    public List<(string Reason, string Message)> Events(string cluster)
    {
        using var db = Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "SELECT Reason, Message FROM cluster_events WHERE ClusterUuid = $c ORDER BY Id";
        cmd.Parameters.AddWithValue("$c", cluster);
        var list = new List<(string, string)>();
        using var r = cmd.ExecuteReader();
        while (r.Read()) list.Add((r.GetString(0), r.GetString(1)));
        return list;
    }
}
