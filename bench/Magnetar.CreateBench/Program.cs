using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Magnetar.Cloud.OpenStack;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

// Service overhead of cluster create against a real OpenStack (the all-in-one, deploy/openstack-aio.sh): Magnetar runs
// as its own process in keystone mode with the OpenStack driver and its default conductor settings; N clusters are
// created at once by the demo tenant and polled until CREATE_COMPLETE, then deleted.
//   wall         API accept (202) → CREATE_COMPLETE seen by the poller (every 200 ms)
//   cloud build  the slowest server's Nova build time (created → OS-SRV-USG:launched_at): the time spent waiting on
//                OpenStack for ACTIVE. Nodes "report" instantly: readiness is ACTIVE + address (no bootstrap yet).
//   overhead     wall − cloud build: Magnetar's own work, its polling and requeue delays, and the synchronous OpenStack
//                API calls (network, router, security groups, ...) on the path
//   CPU          user + system CPU seconds of the Magnetar process during the creates, per cluster
//   API time     seconds Magnetar spent inside OpenStack API calls (its /metrics), per cluster: part of the overhead
//   calls        OpenStack API requests Magnetar made (its /metrics, magnetar_openstack_requests_total), per cluster
// The first row is one cluster right after the server started (its first create: code paths run for the first time);
// the rows asked for follow, once the server's RSA key pool is full (it starts filling 10 s after start).
// usage: Magnetar.CreateBench --server <magnetar.dll> --env <all-in-one env file> [--counts 1,20] [--out file.md] [--server-log file]

const string SecondsKey = "(seconds)"; // in Scrape()'s result: total seconds spent in OpenStack calls
var opts = new Dictionary<string, string>();
for (var i = 0; i + 1 < args.Length; i += 2) opts[args[i].TrimStart('-')] = args[i + 1];
var serverDll = opts.GetValueOrDefault("server") ?? throw new ArgumentException("--server <magnetar.dll> is required");
var env = File.ReadAllLines(opts.GetValueOrDefault("env") ?? throw new ArgumentException("--env <all-in-one env file> is required"))
    .Where(l => l.Contains('=')).Select(l => l.Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
var counts = (opts.GetValueOrDefault("counts") ?? "1,20").Split(',').Select(int.Parse).ToList();
var outFile = opts.GetValueOrDefault("out");

var report = new StringBuilder();
void Line(string s) { Console.WriteLine(s); report.AppendLine(s); }

var dataDir = Directory.CreateTempSubdirectory("magnetar-createbench-").FullName;
var url = $"http://127.0.0.1:{FreePort()}";
var psi = new ProcessStartInfo("dotnet", [serverDll, "serve", "--urls", url, "--data-dir", dataDir, "--Logging:LogLevel:Default=Warning",
    "--Magnetar:Identity:Mode=keystone", $"--Magnetar:Identity:Keystone:AuthUrl={env["KEYSTONE_URL"]}",
    $"--Magnetar:Identity:Keystone:Username={env["SERVICE_USER"]}", $"--Magnetar:Identity:Keystone:Password={env["SERVICE_PASSWORD"]}",
    $"--Magnetar:Identity:Keystone:ProjectName={env["SERVICE_PROJECT"]}", "--Magnetar:Cloud:Provider=openstack",
    "--Magnetar:Bootstrap:NodeReadiness=cloud",
    // The poller asks for 20 clusters every 200 ms (100 requests/s from one project): the per-project rate limit would
    // answer 429 and be measured instead.
    "--Magnetar:Api:RateLimitPerSecond=0"])
{ RedirectStandardOutput = true, RedirectStandardError = true };
using var server = Process.Start(psi)!;
// The server's log (warnings and errors: retried cloud errors, say) beside the results, for reading after a run.
var serverLog = new StreamWriter(opts.GetValueOrDefault("server-log") ?? Path.Combine(dataDir, "server.log")) { AutoFlush = true };
server.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (serverLog) serverLog.WriteLine(e.Data); };
server.ErrorDataReceived += (_, e) => { if (e.Data is not null) Console.Error.WriteLine("server: " + e.Data); };
server.BeginOutputReadLine();
server.BeginErrorReadLine();

using var http = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(100) };
for (var i = 0; i < 300; i++)
{
    try { if ((await http.GetAsync("/healthz")).IsSuccessStatusCode) break; } catch (HttpRequestException) { }
    await Task.Delay(100);
}

var services = new ServiceCollection();
services.AddLogging();
services.AddSingleton(TimeProvider.System);
services.AddOpenStackCloud(new OpenStackOptions { AuthUrl = env["KEYSTONE_URL"] });
var osHttp = services.BuildServiceProvider().GetRequiredService<IHttpClientFactory>().CreateClient(OpenStackCloudProvider.HttpClientName);
var session = new KeystoneSession(osHttp, env["KEYSTONE_URL"], new OpenStackCredential.Password(env["DEMO_USER"], env["DEMO_PASSWORD"], env["DEMO_PROJECT"]),
    "RegionOne", "public", TimeProvider.System, NullLogger.Instance);
var compute = new ComputeClient(osHttp, session, NullLogger.Instance);

try
{
    http.DefaultRequestHeaders.Add("X-Auth-Token", await session.TokenAsync(default));
    http.DefaultRequestHeaders.Add("OpenStack-API-Version", "container-infra latest");
    var template = await Post("/v1/clustertemplates", new JsonObject
    {
        ["name"] = "bench-" + Guid.NewGuid().ToString("N")[..6], ["coe"] = "kubernetes", ["image_id"] = "fedora-coreos-40",
        ["external_network_id"] = "public", ["flavor_id"] = "m1.tiny", ["master_flavor_id"] = "m1.tiny", ["network_driver"] = "calico",
        ["master_lb_enabled"] = false, ["floating_ip_enabled"] = false,
    });
    Line($"## Cluster create against the OpenStack all-in-one — {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, {Environment.OSVersion}");
    Line("");
    Line("1 master + 1 worker (m1.tiny), no API load balancer, no floating IPs; Magnetar's default conductor (poll 1 s, 8 clusters in parallel; servers being built are looked at again after a third of their age, 1–3 s).");
    Line("");
    Line("| clusters at once | POST p50 (s) | wall p50 / max (s) | cloud build p50 (s) | overhead p50 / max (s) | time in OpenStack API calls per cluster (s) | Magnetar CPU per cluster (s) | all-in-one CPU per cluster (s) | OpenStack calls per cluster (create) | per cluster (delete) | delete wall max (s) |");
    Line("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    var notes = new List<string>();
    var runs = counts.Select(n => (n, Label: n.ToString(CultureInfo.InvariantCulture))).Prepend((n: 1, Label: "1, first after start")).ToList();
    foreach (var (n, label) in runs)
    {
        if (label != runs[0].Label) await KeyPool.WaitFullAsync(http, TimeSpan.FromMinutes(3));
        var before = await Scrape();
        var cpuBefore = CpuSeconds(server);
        var machineBefore = MachineBusySeconds() - Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;
        var sw = Stopwatch.StartNew();
        var created = await Task.WhenAll(Enumerable.Range(0, n).Select(async i =>
        {
            var accepted = sw.Elapsed;
            var c = await Post("/v1/clusters", new JsonObject
            {
                ["name"] = $"b{n}-{i}-{Guid.NewGuid().ToString("N")[..4]}", ["cluster_template_id"] = template["uuid"]!.GetValue<string>(),
                ["master_count"] = 1, ["node_count"] = 1,
            });
            var uuid = c["uuid"]!.GetValue<string>();
            var post = (sw.Elapsed - accepted).TotalSeconds;
            while (true)
            {
                var show = await http.GetFromJsonAsync<JsonObject>($"/v1/clusters/{uuid}");
                var status = show!["status"]!.GetValue<string>();
                if (status == "CREATE_COMPLETE") return (Uuid: uuid, Wall: (sw.Elapsed - accepted).TotalSeconds, Post: post);
                if (status.EndsWith("_FAILED")) throw new InvalidOperationException($"cluster {uuid} {status}: {show["status_reason"]}");
                await Task.Delay(200);
            }
        }));
        var afterCreate = await Scrape();
        var cpuCreate = (CpuSeconds(server) - cpuBefore) / n;
        // Everything else the machine ran meanwhile (the all-in-one's ≈ 76 processes; not this benchmark, not Magnetar).
        var cloudCpu = (MachineBusySeconds() - Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds - machineBefore) / n - cpuCreate;
        var build = new List<double>();
        foreach (var c in created)
        {
            var servers = await compute.ListServersByTagAsync(OpenStackCloudProvider.Tag(c.Uuid), default);
            build.Add(servers.Max(s => (new DateTimeOffset(DateTime.SpecifyKind(s.LaunchedAt!.Value, DateTimeKind.Utc)) - s.Created!.Value).TotalSeconds));
        }
        var overhead = created.Zip(build, (c, b) => c.Wall - b).ToList();

        var del = Stopwatch.StartNew();
        await Task.WhenAll(created.Select(async c =>
        {
            (await http.DeleteAsync($"/v1/clusters/{c.Uuid}")).EnsureSuccessStatusCode();
            while ((await http.GetAsync($"/v1/clusters/{c.Uuid}")).StatusCode != System.Net.HttpStatusCode.NotFound) await Task.Delay(200);
        }));
        var deleteWall = del.Elapsed.TotalSeconds;
        var afterDelete = await Scrape();
        Line($"| {label} | {P50(created.Select(c => c.Post)):F2} | {P50(created.Select(c => c.Wall)):F1} / {created.Max(c => c.Wall):F1} | {P50(build):F1} " +
             $"| {P50(overhead):F1} / {overhead.Max():F1} | {(afterCreate.GetValueOrDefault(SecondsKey) - before.GetValueOrDefault(SecondsKey)) / n:F1} | {cpuCreate:F2} | {cloudCpu:F2} " +
             $"| {Calls(before, afterCreate, n)} | {Calls(afterCreate, afterDelete, n)} | {deleteWall:F1} |");
        notes.Add($"- {label} at once: one OpenStack call took on average {MeanCallTimes(before, afterCreate)} during the creates");
    }
    Line("");
    foreach (var note in notes) Line(note);
    Line($"- Magnetar RSS at the end: {Rss(server) / 1024.0 / 1024:F0} MiB");
    (await http.DeleteAsync($"/v1/clustertemplates/{template["uuid"]}")).EnsureSuccessStatusCode();
}
finally
{
    server.Kill(entireProcessTree: true);
    await server.WaitForExitAsync();
    try { Directory.Delete(dataDir, true); } catch { }
}
if (outFile is not null) File.AppendAllText(outFile, report + "\n");
return 0;

async Task<JsonObject> Post(string path, JsonObject body)
{
    var resp = await http.PostAsync(path, new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
    var text = await resp.Content.ReadAsStringAsync();
    if (!resp.IsSuccessStatusCode) throw new InvalidOperationException($"POST {path}: {(int)resp.StatusCode} {text}");
    return JsonNode.Parse(text)!.AsObject();
}

// magnetar_openstack_requests_total{...service="nova"...} 12 → totals per service.
async Task<Dictionary<string, double>> Scrape()
{
    var text = await http.GetStringAsync("/metrics");
    var totals = new Dictionary<string, double>();
    foreach (Match m in Regex.Matches(text, @"^magnetar_openstack_requests_total\{([^}]*)\} ([0-9.e+]+)", RegexOptions.Multiline))
    {
        var service = Regex.Match(m.Groups[1].Value, "service=\"([^\"]+)\"").Groups[1].Value;
        totals[service] = totals.GetValueOrDefault(service) + double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture);
    }
    foreach (Match m in Regex.Matches(text, @"^magnetar_openstack_request_duration_seconds_(sum|count)\{([^}]*)\} ([0-9.e+]+)", RegexOptions.Multiline))
    {
        var value = double.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture);
        var service = Regex.Match(m.Groups[2].Value, "service=\"([^\"]+)\"").Groups[1].Value;
        var key = $"({m.Groups[1].Value}) {service}";
        totals[key] = totals.GetValueOrDefault(key) + value;
        if (m.Groups[1].Value == "sum") totals[SecondsKey] = totals.GetValueOrDefault(SecondsKey) + value;
    }
    return totals;
}

// Mean time of one OpenStack call during the run, by service: where the cloud itself is slow.
static string MeanCallTimes(Dictionary<string, double> a, Dictionary<string, double> b)
    => string.Join(", ", b.Keys.Where(k => k.StartsWith("(count) ")).Select(k => k["(count) ".Length..])
        .Select(s => (s, n: b[$"(count) {s}"] - a.GetValueOrDefault($"(count) {s}"), t: b.GetValueOrDefault($"(sum) {s}") - a.GetValueOrDefault($"(sum) {s}")))
        .Where(x => x.n > 0).OrderByDescending(x => x.t / x.n).Select(x => $"{x.s} {x.t / x.n:F2} s"));

static string Calls(Dictionary<string, double> a, Dictionary<string, double> b, int n)
{
    var per = b.Keys.Where(k => k != SecondsKey && !k.StartsWith('(')).Select(k => (k, v: (b[k] - a.GetValueOrDefault(k)) / n)).Where(x => x.v > 0).OrderByDescending(x => x.v).ToList();
    return $"{per.Sum(x => x.v):F0} ({string.Join(", ", per.Select(x => $"{x.k} {x.v:F0}"))})";
}

static double P50(IEnumerable<double> values)
{
    var sorted = values.Order().ToList();
    return sorted[(sorted.Count - 1) / 2];
}

// CPU time all processes of the machine spent, in seconds (/proc/stat: all but idle and iowait, clock ticks of 1/100 s).
static double MachineBusySeconds()
{
    var f = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries)[1..].Select(long.Parse).ToArray();
    return (f.Take(8).Sum() - f[3] - f[4]) / 100.0;
}

// utime + stime of the server process, in seconds (clock ticks of 1/100 s).
static double CpuSeconds(Process p)
{
    var stat = File.ReadAllText($"/proc/{p.Id}/stat");
    var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
    return (long.Parse(fields[11]) + long.Parse(fields[12])) / 100.0;
}

static long Rss(Process p)
{
    foreach (var line in File.ReadLines($"/proc/{p.Id}/status"))
        if (line.StartsWith("VmRSS:")) return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
    return 0;
}

static int FreePort()
{
    var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
    l.Start();
    var p = ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
    l.Stop();
    return p;
}
