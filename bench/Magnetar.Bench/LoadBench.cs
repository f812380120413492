using System.Diagnostics;
using static BenchSupport;
using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;

/// <summary>
/// Load: N replicas of the published server on one PostgreSQL database (sharing one data directory for the built-in
/// identity and the secret key — the benchmark's stand-in for Keystone and a shared key set), C concurrent clients for
/// S seconds, each sending a mix of reads and writes to the replicas in turn: list clusters (page of 50), show a
/// cluster, list templates, create + delete a template, create a cluster (simulated cloud) and delete it. Every answer
/// other than the expected code counts as an error. The per-project rate limit is off: all clients are one project.
/// </summary>
static class LoadBench
{
    public static async Task<int> RunAsync(Dictionary<string, string> opts)
    {
        var serverDll = opts["server"];
        var pg = opts.GetValueOrDefault("pg") ?? Environment.GetEnvironmentVariable("MAGNETAR_TEST_POSTGRES") ?? throw new ArgumentException("--pg or MAGNETAR_TEST_POSTGRES required");
        var replicas = int.Parse(opts.GetValueOrDefault("replicas") ?? "2");
        var clients = int.Parse(opts.GetValueOrDefault("clients") ?? "200");
        var seconds = int.Parse(opts.GetValueOrDefault("seconds") ?? "60");
        var seedClusters = int.Parse(opts.GetValueOrDefault("clusters") ?? "1000");
        var outFile = opts.GetValueOrDefault("out");
        var db = "magnetar_load_" + Guid.NewGuid().ToString("N")[..8];
        await Psql(pg, $"CREATE DATABASE \"{db}\"");
        var cs = new Npgsql.NpgsqlConnectionStringBuilder(pg) { Database = db }.ConnectionString;
        var dataDir = Directory.CreateTempSubdirectory("magnetar-load-").FullName;
        var report = new StringBuilder();
        void Line(string s) { Console.WriteLine(s); report.AppendLine(s); }
        Line($"## load: {replicas} replicas on PostgreSQL, {clients} clients, {seconds} s — {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores");

        var urls = Enumerable.Range(0, replicas).Select(_ => $"http://127.0.0.1:{FreePort()}").ToList();
        var procs = new List<Process>();
        try
        {
            foreach (var url in urls)
            {
                procs.Add(await StartAsync(serverDll, url, dataDir, cs));
                if (procs.Count == 1) await Task.Delay(500); // the first one migrates the database and seeds the identity
            }
            var openrc = File.ReadAllLines(Path.Combine(dataDir, "openrc-demo")).Where(l => l.StartsWith("export ")).Select(l => l[7..].Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
            using var setup = new HttpClient { BaseAddress = new Uri(urls[0]) };
            var body = Magnetar.Identity.KeystoneRequests.PasswordAuth(openrc["OS_USERNAME"], openrc["OS_PASSWORD"], openrc["OS_PROJECT_NAME"]);
            var auth = await setup.PostAsJsonAsync("/identity/v3/auth/tokens?nocatalog", body);
            auth.EnsureSuccessStatusCode();
            var token = auth.Headers.GetValues("X-Subject-Token").First();
            var http = urls.Select(u =>
            {
                var c = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = clients }) { BaseAddress = new Uri(u), Timeout = TimeSpan.FromSeconds(60) };
                c.DefaultRequestHeaders.Add("X-Auth-Token", token);
                c.DefaultRequestHeaders.Add("OpenStack-API-Version", "container-infra latest");
                return c;
            }).ToList();
            async Task<JsonObject> Expect(Task<HttpResponseMessage> call, int status)
            {
                using var r = await call;
                var text = await r.Content.ReadAsStringAsync();
                if ((int)r.StatusCode != status) throw new InvalidOperationException($"setup: {(int)r.StatusCode} {text}");
                return JsonNode.Parse(text)!.AsObject();
            }
            var template = (await Expect(http[0].PostAsync("/v1/clustertemplates", Json("""{"name": "load", "coe": "kubernetes", "image_id": "fedora-coreos-40", "external_network_id": "public", "flavor_id": "m1.small", "master_flavor_id": "m1.medium"}""")), 201))["uuid"]!.GetValue<string>();
            // Quotas are admin business: lift the demo project's cluster quota with the admin's token.
            var adminRc = File.ReadAllLines(Path.Combine(dataDir, "openrc")).Where(l => l.StartsWith("export ")).Select(l => l[7..].Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
            var adminAuth = await setup.PostAsJsonAsync("/identity/v3/auth/tokens", Magnetar.Identity.KeystoneRequests.PasswordAuth(adminRc["OS_USERNAME"], adminRc["OS_PASSWORD"], adminRc["OS_PROJECT_NAME"]));
            adminAuth.EnsureSuccessStatusCode();
            var demoProject = (await auth.Content.ReadFromJsonAsync<JsonObject>())!["token"]!["project"]!["id"]!.GetValue<string>();
            using (var adminReq = new HttpRequestMessage(HttpMethod.Post, "/v1/quotas") { Content = Json($$"""{"project_id": "{{demoProject}}", "resource": "Cluster", "hard_limit": 100000}""") })
            {
                adminReq.Headers.Add("X-Auth-Token", adminAuth.Headers.GetValues("X-Subject-Token").First());
                adminReq.Headers.Add("OpenStack-API-Version", "container-infra latest");
                await Expect(setup.SendAsync(adminReq), 201);
            }
            var known = new List<string>();
            for (var i = 0; i < Math.Min(seedClusters, 200); i++)
                known.Add((await Expect(http[i % replicas].PostAsync("/v1/clusters", Json($$"""{"name": "seed-{{i}}", "cluster_template_id": "{{template}}", "node_count": 1}""")), 202))["uuid"]!.GetValue<string>());
            Line($"- setup: {known.Count} clusters created through the API before the run (they complete on the simulated cloud while the load runs)");

            var ops = new[] { "list clusters", "show cluster", "list templates", "template create+delete", "cluster create", "cluster delete" };
            var latencies = ops.ToDictionary(o => o, _ => new List<double>());
            var errors = ops.ToDictionary(o => o, _ => 0);
            var samples = new List<string>();
            var created = new System.Collections.Concurrent.ConcurrentQueue<(string Uuid, int Replica)>();
            var stop = DateTime.UtcNow.AddSeconds(seconds);
            var total = Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(0, clients).Select(async id =>
            {
                var random = new Random(id);
                var n = 0;
                while (DateTime.UtcNow < stop)
                {
                    var replica = (id + n++) % replicas;
                    var c = http[replica];
                    var roll = random.Next(100);
                    var op = roll < 35 ? ops[0] : roll < 65 ? ops[1] : roll < 80 ? ops[2] : roll < 90 ? ops[3] : roll < 95 ? ops[4] : ops[5];
                    var sw = Stopwatch.StartNew();
                    int code, expected;
                    string? text = null;
                    try
                    {
                        switch (op)
                        {
                            case "list clusters": (code, text) = await Call(c.GetAsync("/v1/clusters?limit=50")); expected = 200; break;
                            case "show cluster": (code, text) = await Call(c.GetAsync($"/v1/clusters/{known[random.Next(known.Count)]}")); expected = 200; break;
                            case "list templates": (code, text) = await Call(c.GetAsync("/v1/clustertemplates")); expected = 200; break;
                            case "template create+delete":
                                (code, text) = await Call(c.PostAsync("/v1/clustertemplates", Json($$"""{"name": "t-{{id}}-{{n}}", "coe": "kubernetes", "image_id": "fedora-coreos-40"}""")));
                                expected = 201;
                                if (code == 201)
                                {
                                    var uuid = JsonNode.Parse(text!)!["uuid"]!.GetValue<string>();
                                    (code, text) = await Call(http[(replica + 1) % replicas].DeleteAsync($"/v1/clustertemplates/{uuid}"));
                                    expected = 204;
                                }
                                break;
                            case "cluster create":
                                (code, text) = await Call(c.PostAsync("/v1/clusters", Json($$"""{"name": "l-{{id}}-{{n}}", "cluster_template_id": "{{template}}", "node_count": 1}""")));
                                expected = 202;
                                if (code == 202) created.Enqueue((JsonNode.Parse(text!)!["uuid"]!.GetValue<string>(), replica));
                                break;
                            default:
                                if (!created.TryDequeue(out var victim)) { (code, text) = await Call(c.GetAsync("/v1/clusters?limit=1")); expected = 200; break; }
                                (code, text) = await Call(http[(victim.Replica + 1) % replicas].DeleteAsync($"/v1/clusters/{victim.Uuid}"));
                                expected = 204;
                                break;
                        }
                    }
                    catch (Exception e) { code = 0; expected = -1; text = e.GetType().Name + ": " + e.Message; }
                    sw.Stop();
                    lock (latencies)
                    {
                        latencies[op].Add(sw.Elapsed.TotalMilliseconds);
                        if (code != expected)
                        {
                            errors[op]++;
                            if (samples.Count < 10) samples.Add($"{op} → {code}: {text?[..Math.Min(200, text.Length)]}");
                        }
                    }
                }
            }));
            total.Stop();
            var all = latencies.SelectMany(l => l.Value).OrderBy(x => x).ToList();
            Line(string.Create(CultureInfo.InvariantCulture, $"- all requests: {all.Count} in {total.Elapsed.TotalSeconds:F0} s ({all.Count / total.Elapsed.TotalSeconds:F0} req/s), p50 {P(all, 0.5):F1} ms, p99 {P(all, 0.99):F1} ms, errors {errors.Values.Sum()}"));
            foreach (var op in ops)
            {
                var l = latencies[op].OrderBy(x => x).ToList();
                if (l.Count > 0) Line(string.Create(CultureInfo.InvariantCulture, $"  - {op}: {l.Count}, p50 {P(l, 0.5):F1} ms, p99 {P(l, 0.99):F1} ms, errors {errors[op]}"));
            }
            foreach (var s in samples) Line($"  - error sample: {s}");
            Line($"- RSS per replica after the run: {string.Join(", ", procs.Select(p => $"{Rss(p) / 1024.0 / 1024:F0} MiB"))}");
            if (outFile is not null) File.AppendAllText(outFile, report + "\n");
            return errors.Values.Sum() == 0 ? 0 : 1;
        }
        finally
        {
            foreach (var p in procs) { try { p.Kill(true); p.WaitForExit(); } catch { } }
            await Psql(pg, $"DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)");
            try { Directory.Delete(dataDir, true); } catch { }
        }
    }

    private static async Task<(int, string)> Call(Task<HttpResponseMessage> call)
    {
        using var r = await call;
        return ((int)r.StatusCode, await r.Content.ReadAsStringAsync());
    }

    private static async Task<Process> StartAsync(string dll, string url, string dataDir, string cs)
    {
        var psi = new ProcessStartInfo("dotnet", [dll, "serve", "--urls", url, "--data-dir", dataDir, "--Logging:LogLevel:Default=Warning",
            "--Magnetar:Database:Provider=postgres", "--Magnetar:Database:ConnectionString=" + cs, "--Magnetar:Api:RateLimitPerSecond=0",
            "--Magnetar:Cloud:Simulated:StepDelayMs=500"]) { RedirectStandardOutput = true, RedirectStandardError = true };
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null && e.Data.Contains("fail")) Console.Error.WriteLine("server: " + e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        using var http = new HttpClient();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            try { if ((await http.GetAsync(url + "/healthz")).IsSuccessStatusCode) return p; } catch (HttpRequestException) { }
            await Task.Delay(50);
        }
        p.Kill(true);
        throw new InvalidOperationException("server did not start");
    }

}
