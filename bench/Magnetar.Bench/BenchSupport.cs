using System.Globalization;
using System.Runtime.InteropServices;
using System.Diagnostics;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Magnetar.Domain;
using Magnetar.Persistence;
using Microsoft.EntityFrameworkCore;

/// <summary>What every benchmark mode needs: a free loopback port, a process's RSS, percentiles, JSON bodies, psql, seeding.</summary>
static class BenchSupport
{
    public static int FreePort()
    {
        var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        var port = ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    /// <summary>Resident set size from /proc (0 when the process is gone).</summary>
    public static long Rss(Process p)
    {
        try { return long.Parse(File.ReadAllLines($"/proc/{p.Id}/status").First(l => l.StartsWith("VmRSS:")).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024; }
        catch { return 0; }
    }

    /// <summary>What the resident set is made of (/proc status: anonymous memory — the heaps — and mapped files — the
    /// runtime's and the assemblies' code), e.g. "anon 120.3 MiB, files 60.1 MiB"; empty when the process is gone.</summary>
    public static string RssParts(Process p)
    {
        try
        {
            var lines = File.ReadAllLines($"/proc/{p.Id}/status");
            double MiB(string key) => long.Parse(lines.First(l => l.StartsWith(key + ":")).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0;
            return FormattableString.Invariant($"anonymous {MiB("RssAnon"):F1} MiB, mapped files {MiB("RssFile"):F1} MiB");
        }
        catch { return ""; }
    }

    /// <summary>
    /// The database a bench's server runs on: a new PostgreSQL database named <paramref name="prefix"/>_… (on the server
    /// of --pg or MAGNETAR_TEST_POSTGRES; <c>AdminCs</c> drops it afterwards), or a SQLite file in
    /// <paramref name="dataDir"/>; and the server arguments that name it.
    /// </summary>
    public static async Task<(DatabaseOptions Options, string[] ServerArgs, string? PgDatabase, string? AdminCs)> BenchDatabaseAsync(
        Dictionary<string, string> opts, string dbKind, string dataDir, string prefix)
    {
        if (dbKind != "postgres")
            return (new DatabaseOptions { Provider = "sqlite", ConnectionString = $"Data Source={Path.Combine(dataDir, "magnetar.db")};Default Timeout=30" }, [], null, null);
        var adminCs = opts.GetValueOrDefault("pg") ?? Environment.GetEnvironmentVariable("MAGNETAR_TEST_POSTGRES") ?? throw new ArgumentException("--pg or MAGNETAR_TEST_POSTGRES required");
        var database = prefix + "_" + Guid.NewGuid().ToString("N")[..8];
        await Psql(adminCs, $"CREATE DATABASE \"{database}\"");
        var cs = new Npgsql.NpgsqlConnectionStringBuilder(adminCs) { Database = database }.ConnectionString;
        return (new DatabaseOptions { Provider = "postgres", ConnectionString = cs },
            ["--Magnetar:Database:Provider=postgres", "--Magnetar:Database:ConnectionString=" + cs], database, adminCs);
    }

    /// <summary>The q-quantile of sorted values (nearest rank).</summary>
    public static double P(List<double> sorted, double q) => sorted[Math.Min(sorted.Count - 1, Math.Max(0, (int)Math.Ceiling(q * sorted.Count) - 1))];

    public static StringContent Json(string s) => new(s, Encoding.UTF8, "application/json");

    public static async Task Psql(string cs, string sql)
    {
        await using var conn = new Npgsql.NpgsqlConnection(cs);
        await conn.OpenAsync();
        await using var cmd = new Npgsql.NpgsqlCommand(sql, conn);
        await cmd.ExecuteNonQueryAsync();
    }

    /// <summary>Clock ticks per second of /proc/&lt;pid&gt;/stat's utime and stime (getconf CLK_TCK).</summary>
    public static double ClockTicks()
    {
        try
        {
            var p = Process.Start(new ProcessStartInfo("getconf", ["CLK_TCK"]) { RedirectStandardOutput = true })!;
            var text = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit();
            return double.Parse(text, CultureInfo.InvariantCulture);
        }
        catch { return 100; }
    }

    public static string CpuModel()
    {
        try { return File.ReadLines("/proc/cpuinfo").First(l => l.StartsWith("model name")).Split(':', 2)[1].Trim(); }
        catch { return RuntimeInformation.ProcessArchitecture.ToString(); }
    }

    public static string OsName()
    {
        try
        {
            var pretty = File.ReadLines("/etc/os-release").First(l => l.StartsWith("PRETTY_NAME=")).Split('=', 2)[1].Trim('"');
            return $"{pretty}, Linux {File.ReadAllText("/proc/sys/kernel/osrelease").Trim()}";
        }
        catch { return RuntimeInformation.OSDescription; }
    }

    /// <summary>N clusters (2 nodegroups each) of one template, written directly in the database.</summary>
    public static async Task Seed(DatabaseOptions options, int count, string projectId, string userId)
    {
        MagnetarDbContext Create()
        {
            if (options.IsPostgres)
            {
                var b = new DbContextOptionsBuilder<PostgresMagnetarDbContext>().UseNpgsql(options.ConnectionString);
                return new PostgresMagnetarDbContext(b.Options);
            }
            var s = new DbContextOptionsBuilder<SqliteMagnetarDbContext>().UseSqlite(options.ConnectionString);
            return new SqliteMagnetarDbContext(s.Options);
        }
        var template = new ClusterTemplate { Uuid = Guid.NewGuid().ToString(), Name = "bench-template", ProjectId = projectId, UserId = userId, ImageId = "fedora-coreos-40", CreatedAt = DateTimeOffset.UtcNow, Labels = new() { ["kube_tag"] = "v1.31.1" } };
        await using (var db = Create()) { db.ClusterTemplates.Add(template); await db.SaveChangesAsync(); }
        for (int batch = 0; batch < count; batch += 1000)
        {
            await using var db = Create();
            db.ChangeTracker.AutoDetectChangesEnabled = false;
            for (int i = batch; i < Math.Min(count, batch + 1000); i++)
            {
                var now = DateTimeOffset.UtcNow;
                var c = new Cluster
                {
                    Uuid = Guid.NewGuid().ToString(), Name = $"bench-{i:D5}", ProjectId = projectId, UserId = userId, ClusterTemplateId = template.Uuid,
                    Status = ClusterStatus.CreateComplete, StatusReason = "CREATE completed successfully", HealthStatus = "HEALTHY",
                    ApiAddress = "https://172.24.4.10:6443", CoeVersion = "v1.31.1", CreatedAt = now, Labels = new() { ["kube_tag"] = "v1.31.1" },
                    FlavorId = "m1.small", MasterFlavorId = "m1.medium",
                };
                foreach (var (name, role, addr) in new[] { ("default-master", "master", "10.0.0.10"), ("default-worker", "worker", "10.0.0.11") })
                    c.NodeGroups.Add(new NodeGroup { Uuid = Guid.NewGuid().ToString(), Name = name, Role = role, ClusterId = c.Uuid, ProjectId = projectId, NodeCount = 1, IsDefault = true, Status = ClusterStatus.CreateComplete, NodeAddresses = [addr], CreatedAt = now });
                db.Clusters.Add(c);
            }
            await db.SaveChangesAsync();
        }
    }

    /// <summary>A built-in identity token: (token, project id, user id).</summary>
    public static async Task<(string, string, string)> Token(HttpClient http, string user, string password, string project)
    {
        var body = Magnetar.Identity.KeystoneRequests.PasswordAuth(user, password, project);
        var resp = await http.PostAsJsonAsync("/identity/v3/auth/tokens?nocatalog", body);
        resp.EnsureSuccessStatusCode();
        var json = (await resp.Content.ReadFromJsonAsync<JsonObject>())!;
        return (resp.Headers.GetValues("X-Subject-Token").First(), json["token"]!["project"]!["id"]!.GetValue<string>(), json["token"]!["user"]!["id"]!.GetValue<string>());
    }
}
