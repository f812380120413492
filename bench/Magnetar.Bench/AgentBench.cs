using System.Diagnostics;
using static BenchSupport;
using System.Formats.Tar;
using System.IO.Compression;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

/// <summary>
/// What the nodes cost Magnetar once they are up. The published server (SQLite, simulated cloud, bootstrap endpoint on
/// plain HTTP on loopback — TLS is the same per request either way with keep-alive) gets C clusters of N nodes through
/// the API; every node's bundle is fetched with the single-use credential of its user-data, as a booted node does
/// (measuring the bundle's cost: certificates, kubeadm configuration, tar.gz); then K pollers play the nodes' agents,
/// asking <c>POST /bootstrap/v1/task</c> with each node's report credential as fast as they can for S seconds — nothing is
/// due, so every answer must be 204. The server's CPU time over the run gives the cost of one poll, and so of a fleet
/// polling every 30 s.
/// </summary>
static partial class AgentBench
{
    public static async Task<int> RunAsync(Dictionary<string, string> opts)
    {
        var serverDll = opts["server"];
        var clusters = int.Parse(opts.GetValueOrDefault("clusters") ?? "10");
        var nodesPer = int.Parse(opts.GetValueOrDefault("nodes") ?? "10");
        var pollers = int.Parse(opts.GetValueOrDefault("pollers") ?? "16");
        var seconds = int.Parse(opts.GetValueOrDefault("seconds") ?? "30");
        var outFile = opts.GetValueOrDefault("out");
        var dataDir = Directory.CreateTempSubdirectory("magnetar-agents-").FullName;
        var url = $"http://127.0.0.1:{FreePort()}";
        var report = new StringBuilder();
        void Line(string s) { Console.WriteLine(s); report.AppendLine(s); }
        Line($"## agents: {clusters} clusters × {nodesPer} nodes, {pollers} pollers, {seconds} s — {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, SQLite");

        var psi = new ProcessStartInfo("dotnet", [serverDll, "serve", "--urls", url, "--data-dir", dataDir, "--Logging:LogLevel:Default=Warning",
            "--Magnetar:Api:RateLimitPerSecond=0", "--Magnetar:Cloud:Simulated:StepDelayMs=50", $"--Magnetar:Bootstrap:Url={url}",
            "--Magnetar:Bootstrap:AllowInsecureHttp=true", "--Magnetar:Bootstrap:NodeReadiness=cloud"]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var server = Process.Start(psi)!;
        server.OutputDataReceived += (_, _) => { };
        server.ErrorDataReceived += (_, e) => { if (e.Data is not null && e.Data.Contains("fail")) Console.Error.WriteLine("server: " + e.Data); };
        server.BeginOutputReadLine();
        server.BeginErrorReadLine();
        try
        {
            using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = pollers }) { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(60) };
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (!File.Exists(Path.Combine(dataDir, "openrc-demo")) || !(await TryOk(http, "/healthz")))
            {
                if (DateTime.UtcNow > deadline) throw new InvalidOperationException("server did not start");
                await Task.Delay(100);
            }
            var openrc = File.ReadAllLines(Path.Combine(dataDir, "openrc-demo")).Where(l => l.StartsWith("export ")).Select(l => l[7..].Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
            var auth = await http.PostAsJsonAsync("/identity/v3/auth/tokens?nocatalog", Magnetar.Identity.KeystoneRequests.PasswordAuth(openrc["OS_USERNAME"], openrc["OS_PASSWORD"], openrc["OS_PROJECT_NAME"]));
            auth.EnsureSuccessStatusCode();
            http.DefaultRequestHeaders.Add("X-Auth-Token", auth.Headers.GetValues("X-Subject-Token").First());
            http.DefaultRequestHeaders.Add("OpenStack-API-Version", "container-infra latest");

            var template = await Expect(http.PostAsync("/v1/clustertemplates", Json("""{"name": "agents", "coe": "kubernetes", "image_id": "fedora-coreos-40", "external_network_id": "public", "flavor_id": "m1.small", "master_flavor_id": "m1.medium"}""")), 201);
            var uuids = new List<string>();
            for (var i = 0; i < clusters; i++)
                uuids.Add((await Expect(http.PostAsync("/v1/clusters", Json($$"""{"name": "a{{i}}", "cluster_template_id": "{{template["uuid"]}}", "master_count": 1, "node_count": {{nodesPer - 1}}}""")), 202))["uuid"]!.GetValue<string>());
            foreach (var uuid in uuids)
                while ((await Expect(http.GetAsync($"/v1/clusters/{uuid}"), 200))["status"]!.GetValue<string>() != "CREATE_COMPLETE") await Task.Delay(200);

            // Every node fetches its bundle with the credential of its user-data, as a booted node does.
            var userData = ReadUserData(Path.Combine(dataDir, "magnetar.db"));
            if (userData.Count != clusters * nodesPer) throw new InvalidOperationException($"{userData.Count} servers with user-data, expected {clusters * nodesPer}");
            var reportTokens = new List<string>();
            var fetchMs = new List<double>();
            foreach (var ud in userData)
            {
                var token = FetchToken().Match(ud).Value;
                using var req = new HttpRequestMessage(HttpMethod.Post, "/bootstrap/v1/bundle");
                req.Headers.Add("Authorization", "Bearer " + token);
                var sw = Stopwatch.StartNew();
                using var resp = await http.SendAsync(req);
                var bytes = await resp.Content.ReadAsByteArrayAsync();
                fetchMs.Add(sw.Elapsed.TotalMilliseconds);
                if (!resp.IsSuccessStatusCode) throw new InvalidOperationException($"bundle: {(int)resp.StatusCode} {Encoding.UTF8.GetString(bytes)}");
                reportTokens.Add(ReportToken(bytes));
            }
            fetchMs.Sort();
            Line($"- bundle fetch (node certificates, kubeadm configuration, tar.gz; {fetchMs.Count} nodes, one at a time): p50 {P(fetchMs, 0.5):F1} ms, p99 {P(fetchMs, 0.99):F1} ms");

            // The agents: every poller asks for the next node's work, as fast as it can.
            var latencies = new List<double>[pollers];
            var errors = 0;
            var cpuBefore = CpuSeconds(server);
            var wall = Stopwatch.StartNew();
            var stop = DateTime.UtcNow.AddSeconds(seconds);
            var next = -1;
            await Task.WhenAll(Enumerable.Range(0, pollers).Select(async p =>
            {
                latencies[p] = [];
                while (DateTime.UtcNow < stop)
                {
                    var token = reportTokens[(int)((uint)Interlocked.Increment(ref next) % (uint)reportTokens.Count)];
                    using var req = new HttpRequestMessage(HttpMethod.Post, "/bootstrap/v1/task");
                    req.Headers.Add("Authorization", "Bearer " + token);
                    var sw = Stopwatch.StartNew();
                    using var resp = await http.SendAsync(req);
                    latencies[p].Add(sw.Elapsed.TotalMilliseconds);
                    if ((int)resp.StatusCode != 204) Interlocked.Increment(ref errors);
                }
            }));
            var elapsed = wall.Elapsed.TotalSeconds;
            var cpu = CpuSeconds(server) - cpuBefore;
            var all = latencies.SelectMany(l => l).Order().ToList();
            var perPoll = cpu / all.Count * 1000;
            Line($"- polls: {all.Count} in {elapsed:F1} s = {all.Count / elapsed:F0}/s, {errors} not 204; latency p50 {P(all, 0.5):F2} ms, p99 {P(all, 0.99):F2} ms");
            Line($"- server CPU: {cpu:F1} s = {perPoll:F2} ms per poll → 1 000 nodes polling every 30 s ≈ {perPoll * 1000 / 30 / 10:F1} % of one core; RSS {Rss(server) / 1024.0 / 1024:F0} MiB");
            if (outFile is not null) File.AppendAllText(outFile, report + "\n");
            return errors == 0 ? 0 : 1;
        }
        finally
        {
            try { server.Kill(true); server.WaitForExit(); } catch { }
            try { Directory.Delete(dataDir, true); } catch { }
        }
    }

    [GeneratedRegex(@"mgb1\.[0-9a-f]{16}\.[A-Za-z0-9_-]+")]
    private static partial Regex FetchToken();

    private static List<string> ReadUserData(string dbFile)
    {
        using var db = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={dbFile};Mode=ReadOnly");
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "SELECT UserData FROM simulated_resources WHERE Kind = 'server' AND UserData IS NOT NULL";
        var list = new List<string>();
        using var r = cmd.ExecuteReader();
        while (r.Read()) list.Add(r.GetString(0));
        return list;
    }

    private static string ReportToken(byte[] bundle)
    {
        using var tar = new TarReader(new GZipStream(new MemoryStream(bundle), CompressionMode.Decompress));
        while (tar.GetNextEntry() is { } entry)
            if (entry.Name == "etc/magnetar/report-token") return new StreamReader(entry.DataStream!).ReadToEnd().Trim();
        throw new InvalidOperationException("the bundle has no report credential");
    }

    private static async Task<bool> TryOk(HttpClient http, string path)
    {
        try { return (await http.GetAsync(path)).IsSuccessStatusCode; } catch (HttpRequestException) { return false; }
    }

    private static async Task<JsonObject> Expect(Task<HttpResponseMessage> call, int status)
    {
        using var r = await call;
        var text = await r.Content.ReadAsStringAsync();
        if ((int)r.StatusCode != status) throw new InvalidOperationException($"{(int)r.StatusCode} {text}");
        return JsonNode.Parse(text)!.AsObject();
    }

    /// <summary>User plus system CPU time of a process, from /proc (clock ticks of 1/100 s).</summary>
    private static double CpuSeconds(Process p)
    {
        var fields = File.ReadAllText($"/proc/{p.Id}/stat").Split(')')[1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return (long.Parse(fields[11]) + long.Parse(fields[12])) / 100.0;
    }

}
