using System.Diagnostics;
using static BenchSupport;
using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Magnetar.Domain;
using Magnetar.Persistence;
using Microsoft.EntityFrameworkCore;

// Magnetar API benchmark: starts the published server as a child process (like an operator would), measures
// start-to-serving time and RSS, seeds N clusters directly in its database, then measures latency percentiles and
// throughput of GET /v1/clusters, GET /v1/clusters/detail and POST+DELETE /v1/clustertemplates.
// usage: Magnetar.Bench --server <path/magnetar.dll> [--db sqlite|postgres] [--pg <conn string>] [--clusters 10000]
//                       [--requests 200 | --seconds 5] [--warmup-seconds 2] [--concurrency 4] [--out results.md]
//                       [--only list,limit,detail,show,templates]   (a profile of one of them)
//        Magnetar.Bench --mode load --server <dll> --pg <conn string> [--replicas 2] [--clients 200] [--seconds 60] [--out results.md]
//        Magnetar.Bench --mode pki [--iterations 40] [--out results-pki.md]
//        Magnetar.Bench --mode agents --server <dll> [--clusters 10] [--nodes 10] [--pollers 16] [--seconds 30] [--out results-agents.md]
//        Magnetar.Bench --mode health --server <dll> [--clusters 10000] [--nodes 4] [--interval 10] [--seconds 60] [--warmup 1] [--out bench/results-health.md]
//        Magnetar.Bench --mode autoscaler --server <dll> [--clusters 1000] [--nodes 4] [--interval 10] [--seconds 60] [--out bench/results-autoscaler.md]
//        Magnetar.Bench --mode upgrade --server <dll> [--step-ms 1500] [--tiny-ms 10|off] [--repeat 3] [--warmup 1] [--poll-ms 1000] [--server-log Information] [--out bench/results-upgrade.md]
//        Magnetar.Bench --mode start --server <a.dll>[,<b.dll>...] [--db sqlite|postgres] [--clusters 10000] [--runs 5] [--warmup 1] [--log DIR] [--out results.md]

var opts = ParseArgs(args);
if (opts.GetValueOrDefault("mode") == "pki") return PkiBench.Run(opts);
if (opts.GetValueOrDefault("mode") == "start") return await StartBench.RunAsync(opts);
var serverDll = opts.GetValueOrDefault("server") ?? throw new ArgumentException("--server <path to magnetar.dll> is required");
var dbKind = opts.GetValueOrDefault("db") ?? "sqlite";
var clusters = int.Parse(opts.GetValueOrDefault("clusters") ?? "10000");
var requests = int.Parse(opts.GetValueOrDefault("requests") ?? "200");
var concurrency = int.Parse(opts.GetValueOrDefault("concurrency") ?? "4");
// --seconds: each read measured for that long (else --requests of them); before it, --warmup-seconds of the same calls,
// so that what is measured is the code the JIT settles on (tiered compilation promotes a method after 30 calls and a
// 100 ms back-off: a run of 400 requests at 3 000 req/s lasted 0.13 s, most of it on first-tier code).
var seconds = double.Parse(opts.GetValueOrDefault("seconds") ?? "0", CultureInfo.InvariantCulture);
var warmupSeconds = double.Parse(opts.GetValueOrDefault("warmup-seconds") ?? "2", CultureInfo.InvariantCulture);
var only = opts.GetValueOrDefault("only")?.Split(',').ToHashSet();
var outFile = opts.GetValueOrDefault("out");

if (opts.GetValueOrDefault("mode") == "load") return await LoadBench.RunAsync(opts);
if (opts.GetValueOrDefault("mode") == "agents") return await AgentBench.RunAsync(opts);
if (opts.GetValueOrDefault("mode") == "health") return await HealthBench.RunAsync(opts);
if (opts.GetValueOrDefault("mode") == "upgrade") return await UpgradeBench.RunAsync(opts);
if (opts.GetValueOrDefault("mode") == "autoscaler") return await AutoscalerBench.RunAsync(opts);

var dataDir = Directory.CreateTempSubdirectory("magnetar-bench-").FullName;
var port = FreePort();
var url = $"http://127.0.0.1:{port}";
// Throughput is the measurement: the per-project rate limit would be measured instead.
var serverArgs = new List<string> { serverDll, "serve", "--urls", url, "--data-dir", dataDir, "--Logging:LogLevel:Default=Warning", "--Magnetar:Api:RateLimitPerSecond=0" };
var (dbOptions, dbArgs, pgDb, pgAdmin) = await BenchDatabaseAsync(opts, dbKind, dataDir, "magnetar_bench");
serverArgs.AddRange(dbArgs);

var report = new StringBuilder();
void Line(string s) { Console.WriteLine(s); report.AppendLine(s); }
Line($"## {dbKind}, {clusters} clusters — {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, {Environment.OSVersion}");

// 1. start-to-serving (first start includes migrations; the second start is a restart on an existing database)
var (proc, startMs) = await StartServer(serverArgs, url);
Line($"- start to serving (fresh database, migrations applied): {startMs:F0} ms");
await StopServer(proc);
(proc, startMs) = await StartServer(serverArgs, url);
Line($"- start to serving (existing database): {startMs:F0} ms");
Line($"- RSS after start: {Rss(proc) / 1024.0 / 1024:F1} MiB ({RssParts(proc)})");

try
{
    for (var wait = 0; wait < 300 && !File.Exists(Path.Combine(dataDir, "openrc-demo")); wait++) await Task.Delay(100); // written just after start
    var openrc = File.ReadAllLines(Path.Combine(dataDir, "openrc-demo")).Where(l => l.StartsWith("export ")).Select(l => l[7..].Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
    using var http = new HttpClient { BaseAddress = new Uri(url) };
    var (token, projectId, userId) = await Token(http, openrc["OS_USERNAME"], openrc["OS_PASSWORD"], openrc["OS_PROJECT_NAME"]);
    http.DefaultRequestHeaders.Add("X-Auth-Token", token);
    http.DefaultRequestHeaders.Add("OpenStack-API-Version", "container-infra latest");

    // 2. seed
    var seedWatch = Stopwatch.StartNew();
    await Seed(dbOptions, clusters, projectId, userId);
    Line($"- seeded {clusters} clusters (2 nodegroups each) directly in the database in {seedWatch.Elapsed.TotalSeconds:F1} s");
    // A restart with them stored: what an operator's restart or upgrade costs.
    await StopServer(proc);
    (proc, startMs) = await StartServer(serverArgs, url);
    Line($"- start to serving (existing database, {clusters} clusters stored): {startMs:F0} ms; RSS {Rss(proc) / 1024.0 / 1024:F1} MiB");

    // Its key generation would otherwise land in whichever read is measured then.
    var poolWait = await KeyPool.WaitFullAsync(http, TimeSpan.FromMinutes(2));
    Line($"- waited {poolWait.TotalSeconds:F0} s for the server's RSA key pool to fill before measuring");

    // 3. measure
    await Measure("list", "GET /v1/clusters (default page: 1000 of them)", () => http.GetAsync("/v1/clusters"));
    await Measure("limit", "GET /v1/clusters?limit=50", () => http.GetAsync("/v1/clusters?limit=50"));
    await Measure("detail", "GET /v1/clusters/detail (1000 of them)", () => http.GetAsync("/v1/clusters/detail"));
    var firstUuid = (await http.GetFromJsonAsync<JsonObject>("/v1/clusters?limit=1"))!["clusters"]![0]!["uuid"]!.GetValue<string>();
    await Measure("show", "GET /v1/clusters/{uuid}", () => http.GetAsync($"/v1/clusters/{firstUuid}"));
    var n = 0;
    await Measure("templates", "POST + DELETE /v1/clustertemplates (pair)", async () =>
    {
        var name = $"bench-{Interlocked.Increment(ref n)}";
        var created = await http.PostAsync("/v1/clustertemplates", new StringContent($$"""{"name": "{{name}}", "coe": "kubernetes", "image_id": "fedora-coreos-40"}""", Encoding.UTF8, "application/json"));
        if ((int)created.StatusCode != 201) return created;
        var uuid = (await created.Content.ReadFromJsonAsync<JsonObject>())!["uuid"]!.GetValue<string>();
        return await http.DeleteAsync($"/v1/clustertemplates/{uuid}");
    });
    Line($"- RSS after the load: {Rss(proc) / 1024.0 / 1024:F1} MiB ({RssParts(proc)})");
    // --hold-seconds: the server left running that long after the load (pid printed), to look inside it.
    if (double.TryParse(opts.GetValueOrDefault("hold-seconds"), CultureInfo.InvariantCulture, out var hold))
    {
        Console.WriteLine($"holding server pid {proc.Id} for {hold} s");
        await Task.Delay(TimeSpan.FromSeconds(hold));
    }
}
finally
{
    await StopServer(proc);
    if (pgDb is not null) await Psql(pgAdmin!, $"DROP DATABASE IF EXISTS \"{pgDb}\" WITH (FORCE)");
    Directory.Delete(dataDir, true);
}
if (outFile is not null) File.AppendAllText(outFile, report + "\n");
return 0;

async Task Measure(string key, string name, Func<Task<HttpResponseMessage>> call)
{
    if (only is not null && !only.Contains(key)) return;
    var warm = Stopwatch.StartNew();
    await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
    {
        do (await call()).Dispose(); while (warm.Elapsed.TotalSeconds < warmupSeconds);
    }));
    var latencies = new List<double>();
    var errors = 0;
    var total = Stopwatch.StartNew();
    var next = 0;
    await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
    {
        while (seconds > 0 ? total.Elapsed.TotalSeconds < seconds : Interlocked.Increment(ref next) <= requests)
        {
            var sw = Stopwatch.StartNew();
            using var resp = await call();
            await resp.Content.ReadAsByteArrayAsync();
            sw.Stop();
            lock (latencies) latencies.Add(sw.Elapsed.TotalMilliseconds);
            if ((int)resp.StatusCode >= 300) Interlocked.Increment(ref errors);
        }
    }));
    total.Stop();
    latencies.Sort();
    double P(double q) => BenchSupport.P(latencies, q);
    Line(string.Create(CultureInfo.InvariantCulture,
        $"- {name}: {latencies.Count} requests in {total.Elapsed.TotalSeconds:F1} s after {warmupSeconds:F0} s of warm-up, {concurrency} concurrent — p50 {P(0.50):F1} ms, p99 {P(0.99):F1} ms, {latencies.Count / total.Elapsed.TotalSeconds:F0} req/s, errors {errors}"));
}

static async Task<(Process, double)> StartServer(List<string> args, string url)
{
    var sw = Stopwatch.StartNew();
    var psi = new ProcessStartInfo("dotnet", args) { RedirectStandardOutput = true, RedirectStandardError = true };
    var p = Process.Start(psi)!;
    p.OutputDataReceived += (_, _) => { };
    p.ErrorDataReceived += (_, e) => { if (e.Data is not null) Console.Error.WriteLine("server: " + e.Data); };
    p.BeginOutputReadLine();
    p.BeginErrorReadLine();
    using var http = new HttpClient();
    while (sw.Elapsed < TimeSpan.FromSeconds(60))
    {
        try
        {
            using var r = await http.GetAsync(url + "/healthz");
            if (r.IsSuccessStatusCode)
            {
                // serving includes the openrc being written (standalone seeding happens at start)
                return (p, sw.Elapsed.TotalMilliseconds);
            }
        }
        catch (HttpRequestException) { }
        await Task.Delay(20);
    }
    p.Kill(true);
    throw new InvalidOperationException("server did not start");
}

static async Task StopServer(Process p)
{
    if (p.HasExited) return;
    Process.Start("kill", ["-TERM", p.Id.ToString()])!.WaitForExit();
    if (!p.WaitForExit(15000)) p.Kill(true);
    await Task.CompletedTask;
}

static Dictionary<string, string> ParseArgs(string[] a)
{
    var d = new Dictionary<string, string>();
    for (int i = 0; i + 1 < a.Length; i += 2) d[a[i].TrimStart('-')] = a[i + 1];
    return d;
}
