using System.Diagnostics;
using static BenchSupport;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;
using Magnetar.Persistence;
using Microsoft.EntityFrameworkCore;

/// <summary>
/// How long a rolling upgrade takes, and how much of it is Magnetar. The published server (SQLite, simulated cloud with
/// a step of S ms: a server takes two steps to become ACTIVE and one to be deleted; a node serves when its server is
/// ACTIVE) gets, per repetition and per max_batch_size (1, 2), a cluster of 1 master + 3 workers behind a load balancer;
/// the cluster is upgraded v1.31.1 → v1.32.1 (every node replaced by a new server: the control plane first, then the
/// workers max_batch_size at a time) and the wall time from the POST to UPDATE_COMPLETE is split into Magnetar's own CPU
/// time (the server process's CPU delta minus its idle rate × the duration) and the rest: waiting on the cloud's steps
/// and on the conductor's requeue intervals. The ideal cloud-only time, (1 + worker batches) × 3 steps, is the sequence
/// if every replacement were create (2 steps) then delete (1 step) with no gap. The same runs again with a tiny step
/// (10 ms: the cloud answers at once) to show Magnetar's floor, and cluster CREATE is measured as a reference.
/// Simulated: no VM boots, nothing is drained (Magnetar reaches no cluster API on the simulated cloud), nodes count when ACTIVE.
/// </summary>
static class UpgradeBench
{
    private const string From = "v1.31.1", To = "v1.32.1";
    private const int Masters = 1, Workers = 3;
    private static readonly int[] BatchSizes = [1, 2];
    private static string? ServerLog;

    private sealed record Op(double Wall, double Cpu, int Polls, List<(double At, string What)> Timeline);

    private sealed class Phase
    {
        public int StepMs;
        // Server CPU seconds per second: idle with no cluster; with one idle (CREATE_COMPLETE) cluster; the same cluster polled every 100 ms.
        public double IdleRate, ClusterIdleRate, PolledRate;
        public int ProbeGets;
        public double ProbeSeconds;
        /// <summary>What one of the bench's own GETs costs the server (CPU seconds), from the probe.</summary>
        public double PerGet => ProbeGets == 0 ? 0 : Math.Max(0, PolledRate - ClusterIdleRate) * ProbeSeconds / ProbeGets;
        public string IdleNote = "";
        public readonly List<Op> Creates = [];
        public readonly Dictionary<int, List<Op>> Upgrades = BatchSizes.ToDictionary(b => b, _ => new List<Op>());
        public readonly List<double> Deletes = [];
        public long RssEnd;
    }

    public static async Task<int> RunAsync(Dictionary<string, string> opts)
    {
        var serverDll = opts["server"];
        var stepMs = int.Parse(opts.GetValueOrDefault("step-ms") ?? "1500", CultureInfo.InvariantCulture);
        var tiny = opts.GetValueOrDefault("tiny-ms") ?? "10"; // "off": no tiny-step phase
        var repeat = int.Parse(opts.GetValueOrDefault("repeat") ?? "3", CultureInfo.InvariantCulture);
        var warmup = int.Parse(opts.GetValueOrDefault("warmup") ?? "1", CultureInfo.InvariantCulture);
        var pollMs = int.Parse(opts.GetValueOrDefault("poll-ms") ?? "1000", CultureInfo.InvariantCulture);
        var outFile = opts.GetValueOrDefault("out") ?? "bench/results-upgrade.md";
        ServerLog = opts.GetValueOrDefault("server-log"); // e.g. Information: Magnetar's own log lines, timestamped, on the console (diagnosis)
        var ticks = ClockTicks();
        var load = File.ReadAllText("/proc/loadavg").Trim();
        var started = DateTime.UtcNow;
        Console.WriteLine($"load average at start: {load}");

        var main = await RunPhaseAsync(serverDll, stepMs, pollMs, repeat, warmup, ticks);
        Phase? floor = null;
        if (tiny != "off") floor = await RunPhaseAsync(serverDll, int.Parse(tiny, CultureInfo.InvariantCulture), pollMs, repeat, warmup, ticks);
        var loadEnd = File.ReadAllText("/proc/loadavg").Trim();

        var report = new StringBuilder();
        void Line(string s) { Console.WriteLine(s); report.AppendLine(s); }
        string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
        Line(F($"## upgrade: 1 master + 3 workers, {From} → {To}, step {stepMs} ms — {started:yyyy-MM-dd HH:mm} UTC"));
        Line("");
        Line(F($"- machine: {Environment.ProcessorCount} cores ({CpuModel()}), {OsName()}, {RuntimeInformation.FrameworkDescription}; load average at start {load}, at the end {loadEnd} (other work may share this machine)"));
        Line(F($"- server: the published magnetar.dll as a child process, SQLite, simulated cloud (`Magnetar:Cloud:Simulated:StepDelayMs={stepMs}`{(floor is null ? "" : F($", then {floor.StepMs}"))}), `Magnetar:Conductor:PollIntervalMs={pollMs}`, `Magnetar:Bootstrap:NodeReadiness=cloud`, logging Warning, rate limit off"));
        Line(F($"- per repetition ({repeat}, after {warmup} uncounted warm-up cycle(s) per server process) and per max_batch_size: create a cluster (master_count 1, node_count 3, template with master_lb_enabled, {From}), wait CREATE_COMPLETE, `POST /v1/clusters/{{id}}/actions/upgrade` to the {To} template, poll `GET` every 100 ms until UPDATE_COMPLETE, check coe_version {To}, node_count 3, master_count 1, 3 node_addresses + 1 master_address and 4 servers in the simulated cloud, delete, wait for 404"));
        Line("- wall: from sending the POST to the first GET that shows UPDATE_COMPLETE (so up to +100 ms of polling granularity)");
        Line("- Magnetar CPU: the server process's utime+stime (/proc/<pid>/stat) over the upgrade, minus its idle rate × the wall time (idle: conductor polling an empty queue, heartbeat, health monitor; measured over 10 s with no cluster); this still includes the server's cost of answering the bench's own GETs (every 100 ms), estimated separately (at the end of the runs: 10 s with one idle cluster polled minus 10 s with it unpolled, per GET)");
        Line("- ideal cloud time: (1 + worker batches) × 3 steps — the control-plane node, then each worker batch, as create (2 steps) then delete (1 step) with no gap; 3 workers are 3 batches at max_batch_size 1, 2 at 2; overhead = wall − ideal");
        Line("- Magnetar's own schedule is shorter than that: its first pass already makes the first worker batch's surge servers along with the new control-plane server, and the next batch's servers are created while the previous old ones are deleted; with no gap between passes that is 2 steps (new control plane) + 1 (old one deleted; the first worker surge is ready by then) + 2 per further batch (create, overlapping the 1-step delete) + 1 (the last delete) = (2 × batches + 2) steps");
        Line("- simulated: no VM boots, nothing is drained (on the simulated cloud Magnetar reaches no cluster API: the drain step records NodeNotDrained and moves on), no etcd member leaves (readiness \"cloud\": a node serves when its server is ACTIVE), no kubelet reports a version; the simulated cloud's steps are timers in its database rows");
        Line("");
        foreach (var phase in floor is null ? new[] { main } : [main, floor]) WritePhase(phase, Line, F, repeat);

        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(outFile))!);
        File.AppendAllText(outFile, report + "\n");
        Console.WriteLine($"appended to {outFile}");
        return 0;
    }

    private static void WritePhase(Phase p, Action<string> line, Func<FormattableString, string> f, int repeat)
    {
        var step = p.StepMs / 1000.0;
        line(f($"### step {p.StepMs} ms"));
        line("");
        line(f($"- idle server CPU: {p.IdleRate * 1000:F1} ms/s ({p.IdleNote}); at the end of the runs, 10 s each with one idle cluster: {p.ClusterIdleRate * 1000:F1} ms/s unpolled, {p.PolledRate * 1000:F1} ms/s with the bench's GET every 100 ms ({p.ProbeGets} GETs), i.e. ≈ {p.PerGet * 1000:F2} ms of server CPU per GET; RSS at the end {Rss0(p.RssEnd)}"));
        line("");
        line("| max_batch_size | worker batches | wall p50 (min–max) | server CPU, raw p50 | Magnetar CPU, idle-corrected p50 (min–max) | share of wall | ideal cloud time (1 + batches) × 3 steps | overhead p50 (min–max) | Magnetar's own schedule at zero overhead, (2 × batches + 2) steps | wall − that | the bench's GETs (count × cost per GET) |");
        line("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var (b, ops) in p.Upgrades)
        {
            var batches = (Workers + b - 1) / b;
            var ideal = (1 + batches) * 3 * step;
            var schedule = (2 * batches + 2) * step;
            var wall = ops.Select(o => o.Wall).Order().ToList();
            var raw = ops.Select(o => o.Cpu).Order().ToList();
            var cpu = ops.Select(o => Corrected(o, p.IdleRate)).Order().ToList();
            var over = wall.Select(w => w - ideal).ToList();
            var polls = ops.Select(o => (double)o.Polls).Order().ToList();
            line(f($"| {b} | {batches} | {P(wall, 0.5):F2} s ({wall[0]:F2}–{wall[^1]:F2}) | {P(raw, 0.5) * 1000:F0} ms | {P(cpu, 0.5) * 1000:F0} ms ({cpu[0] * 1000:F0}–{cpu[^1] * 1000:F0}) | {P(cpu, 0.5) / P(wall, 0.5) * 100:F1} % | {ideal:F2} s | {P(over, 0.5):F2} s ({over[0]:F2}–{over[^1]:F2}) | {schedule:F2} s | {P(wall, 0.5) - schedule:F2} s | {P(polls, 0.5):F0} × {p.PerGet * 1000:F2} ≈ {P(polls, 0.5) * p.PerGet * 1000:F0} ms |"));
        }
        var cw = p.Creates.Select(o => o.Wall).Order().ToList();
        var cc = p.Creates.Select(o => Corrected(o, p.IdleRate)).Order().ToList();
        line("");
        line(f($"- reference, cluster CREATE (1 + 3, {cw.Count} samples): wall p50 {P(cw, 0.5):F2} s ({cw[0]:F2}–{cw[^1]:F2}), Magnetar CPU idle-corrected p50 {P(cc, 0.5) * 1000:F0} ms; the cloud's critical path is network (1 step) → load balancer (2) → its floating IP (1) = {4 * step:F2} s, servers need network + security groups (1) + 2 steps"));
        var dw = p.Deletes.Order().ToList();
        line(f($"- cluster DELETE to 404 ({dw.Count} samples): p50 {P(dw, 0.5):F2} s ({dw[0]:F2}–{dw[^1]:F2})"));
        foreach (var (b, ops) in p.Upgrades)
        {
            line(f($"- per repetition, max_batch_size {b}: wall {string.Join(", ", ops.Select(o => o.Wall.ToString("F2", CultureInfo.InvariantCulture)))} s; Magnetar CPU (idle-corrected) {string.Join(", ", ops.Select(o => (Corrected(o, p.IdleRate) * 1000).ToString("F0", CultureInfo.InvariantCulture)))} ms"));
            var first = ops[0];
            line(f($"- timeline of the first one (s after the POST; the conductor's events, then UPDATE_COMPLETE as the bench saw it): {string.Join("; ", first.Timeline.Select(t => $"{t.At:F1} {t.What}"))}"));
        }
        line("");
    }

    private static double Corrected(Op o, double rate) => o.Cpu - rate * o.Wall;

    private static string Rss0(long bytes) => (bytes / 1024.0 / 1024).ToString("F0", CultureInfo.InvariantCulture) + " MiB";

    private static async Task<Phase> RunPhaseAsync(string serverDll, int stepMs, int pollMs, int repeat, int warmup, double ticks)
    {
        var phase = new Phase { StepMs = stepMs };
        var dataDir = Directory.CreateTempSubdirectory("magnetar-upgrade-").FullName;
        var url = $"http://127.0.0.1:{FreePort()}";
        Console.WriteLine($"== step {stepMs} ms: server at {url}, data dir {dataDir}");
        var psi = new ProcessStartInfo("dotnet", [serverDll, "serve", "--urls", url, "--data-dir", dataDir, "--Logging:LogLevel:Default=Warning",
            "--Magnetar:Api:RateLimitPerSecond=0", $"--Magnetar:Cloud:Simulated:StepDelayMs={stepMs}", $"--Magnetar:Conductor:PollIntervalMs={pollMs}",
            "--Magnetar:Bootstrap:NodeReadiness=cloud"]) { RedirectStandardOutput = true, RedirectStandardError = true };
        if (ServerLog is not null)
            foreach (var a in new[] { $"--Logging:LogLevel:Magnetar={ServerLog}", "--Logging:Console:FormatterName=simple", "--Logging:Console:FormatterOptions:SingleLine=true",
                         "--Logging:Console:FormatterOptions:TimestampFormat=HH:mm:ss.fff " }) psi.ArgumentList.Add(a);
        using var server = Process.Start(psi)!;
        server.OutputDataReceived += (_, e) => { if (e.Data is not null && (ServerLog is not null || e.Data.Contains("fail") || e.Data.Contains("warn"))) Console.Error.WriteLine("server: " + e.Data); };
        server.ErrorDataReceived += (_, e) => { if (e.Data is not null) Console.Error.WriteLine("server: " + e.Data); };
        server.BeginOutputReadLine();
        server.BeginErrorReadLine();
        double Cpu()
        {
            var stat = File.ReadAllText($"/proc/{server.Id}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / ticks;
        }
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(60) };
            var deadline = DateTime.UtcNow.AddSeconds(120);
            while (!File.Exists(Path.Combine(dataDir, "openrc-demo")) || !await TryOk(http, "/healthz"))
            {
                if (server.HasExited) throw new InvalidOperationException($"the server exited with {server.ExitCode}");
                if (DateTime.UtcNow > deadline) throw new InvalidOperationException("the server did not start");
                await Task.Delay(100);
            }
            var openrc = File.ReadAllLines(Path.Combine(dataDir, "openrc-demo")).Where(l => l.StartsWith("export ")).Select(l => l[7..].Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
            var auth = await http.PostAsJsonAsync("/identity/v3/auth/tokens?nocatalog", Magnetar.Identity.KeystoneRequests.PasswordAuth(openrc["OS_USERNAME"], openrc["OS_PASSWORD"], openrc["OS_PROJECT_NAME"]));
            auth.EnsureSuccessStatusCode();
            http.DefaultRequestHeaders.Add("X-Auth-Token", auth.Headers.GetValues("X-Subject-Token").First());
            http.DefaultRequestHeaders.Add("OpenStack-API-Version", "container-infra latest");

            string Template(string name, string version) => $$"""
                {"name": "{{name}}", "coe": "kubernetes", "image_id": "fedora-coreos-40", "external_network_id": "public", "flavor_id": "m1.small",
                 "master_flavor_id": "m1.medium", "master_lb_enabled": true, "labels": {"kube_tag": "{{version}}"} }
                """;
            var oldTemplate = (await Expect(http.PostAsync("/v1/clustertemplates", Json(Template("upgrade-from", From))), 201))["uuid"]!.GetValue<string>();
            var newTemplate = (await Expect(http.PostAsync("/v1/clustertemplates", Json(Template("upgrade-to", To))), 201))["uuid"]!.GetValue<string>();
            var dbFile = Path.Combine(dataDir, "magnetar.db");
            var n = 0;

            async Task Cycle(int batch, bool record)
            {
                var name = $"up{++n}-b{batch}";
                // create
                var cpu0 = Cpu();
                var sw = Stopwatch.StartNew();
                var uuid = (await Expect(http.PostAsync("/v1/clusters", Json($$"""{"name": "{{name}}", "cluster_template_id": "{{oldTemplate}}", "master_count": {{Masters}}, "node_count": {{Workers}}}""")), 202))["uuid"]!.GetValue<string>();
                var (created, createPolls) = await WaitAsync(http, uuid, "CREATE_COMPLETE", TimeSpan.FromMinutes(10));
                var createWall = sw.Elapsed.TotalSeconds;
                var createCpu = Cpu() - cpu0;
                if (created["coe_version"]?.GetValue<string>() != From) throw new InvalidOperationException($"{name}: coe_version {created["coe_version"]} after create, expected {From}");
                Console.WriteLine(FormattableString.Invariant($"  {name}: CREATE_COMPLETE in {createWall:F2} s, CPU {createCpu * 1000:F0} ms"));
                if (record) phase.Creates.Add(new Op(createWall, createCpu, createPolls, []));

                // upgrade
                var postedAt = DateTimeOffset.UtcNow;
                cpu0 = Cpu();
                sw.Restart();
                using (var req = new HttpRequestMessage(HttpMethod.Post, $"/v1/clusters/{uuid}/actions/upgrade")
                       { Content = Json($$"""{"cluster_template": "{{newTemplate}}", "max_batch_size": {{batch}}}""") })
                    await Expect(http.SendAsync(req), 202);
                var (upgraded, polls) = await WaitAsync(http, uuid, "UPDATE_COMPLETE", TimeSpan.FromMinutes(15));
                var wall = sw.Elapsed.TotalSeconds;
                var cpu = Cpu() - cpu0;
                Verify(name, upgraded);
                var (servers, live) = await ServersAsync(dbFile, uuid);
                if (servers != Masters + Workers || live != Masters + Workers)
                    throw new InvalidOperationException($"{name}: {servers} servers in the simulated cloud ({live} not being deleted) after the upgrade, expected {Masters + Workers}");
                var timeline = (await EventsAsync(dbFile, uuid, postedAt, name)).Append((At: wall, What: "UPDATE_COMPLETE seen")).ToList();
                Console.WriteLine(FormattableString.Invariant($"  {name}: UPDATE_COMPLETE in {wall:F2} s, CPU {cpu * 1000:F0} ms"));
                Console.WriteLine("    " + string.Join("; ", timeline.Select(t => FormattableString.Invariant($"{t.At:F1} {t.What}"))));
                if (record) phase.Upgrades[batch].Add(new Op(wall, cpu, polls, timeline));

                // delete
                sw.Restart();
                using (var del = await http.DeleteAsync($"/v1/clusters/{uuid}"))
                    if (del.StatusCode != HttpStatusCode.NoContent) throw new InvalidOperationException($"{name}: DELETE {(int)del.StatusCode} {await del.Content.ReadAsStringAsync()}");
                var gone = DateTime.UtcNow.AddMinutes(10);
                while (true)
                {
                    using var r = await http.GetAsync($"/v1/clusters/{uuid}");
                    if (r.StatusCode == HttpStatusCode.NotFound) break;
                    var o = JsonNode.Parse(await r.Content.ReadAsStringAsync())!.AsObject();
                    if (o["status"]?.GetValue<string>() is { } s && s.EndsWith("_FAILED", StringComparison.Ordinal))
                        throw new InvalidOperationException($"{name}: {s}: {o["status_reason"]}");
                    if (DateTime.UtcNow > gone) throw new TimeoutException($"{name}: not deleted within 10 minutes");
                    await Task.Delay(100);
                }
                if (record) phase.Deletes.Add(sw.Elapsed.TotalSeconds);
            }

            for (var i = 0; i < warmup; i++)
            {
                Console.WriteLine($" warm-up {i + 1}");
                await Cycle(1, record: false);
            }
            // The idle rate: nothing to do but the conductor's polls, the heartbeat and the health monitor.
            // (after 10 s of settling: the warm-up's tail — the runtime's background tier-1 JIT, the deleted cluster's last pass — is not idle)
            {
                await Task.Delay(TimeSpan.FromSeconds(10));
                var c0 = Cpu();
                var w = Stopwatch.StartNew();
                await Task.Delay(TimeSpan.FromSeconds(10));
                phase.IdleRate = (Cpu() - c0) / w.Elapsed.TotalSeconds;
                phase.IdleNote = "10 s with no cluster" + (warmup > 0 ? ", 10 s after the warm-up" : "");
                Console.WriteLine(FormattableString.Invariant($"  idle: {phase.IdleRate * 1000:F1} ms CPU/s"));
            }
            for (var rep = 0; rep < repeat; rep++)
                foreach (var b in BatchSizes)
                {
                    Console.WriteLine($" repetition {rep + 1}, max_batch_size {b}");
                    await Cycle(b, record: true);
                }
            // The bench's own polling costs the server something: measured on an idle cluster, warm, at the end.
            {
                var uuid = (await Expect(http.PostAsync("/v1/clusters", Json($$"""{"name": "probe", "cluster_template_id": "{{oldTemplate}}", "master_count": {{Masters}}, "node_count": {{Workers}}}""")), 202))["uuid"]!.GetValue<string>();
                await WaitAsync(http, uuid, "CREATE_COMPLETE", TimeSpan.FromMinutes(10));
                await Task.Delay(3000);
                var c0 = Cpu();
                var w = Stopwatch.StartNew();
                await Task.Delay(TimeSpan.FromSeconds(10));
                phase.ClusterIdleRate = (Cpu() - c0) / w.Elapsed.TotalSeconds;
                c0 = Cpu();
                w.Restart();
                while (w.Elapsed < TimeSpan.FromSeconds(10)) { await Expect(http.GetAsync($"/v1/clusters/{uuid}"), 200); phase.ProbeGets++; await Task.Delay(100); }
                phase.ProbeSeconds = w.Elapsed.TotalSeconds;
                phase.PolledRate = (Cpu() - c0) / phase.ProbeSeconds;
                Console.WriteLine(FormattableString.Invariant($"  one idle cluster: {phase.ClusterIdleRate * 1000:F1} ms CPU/s; polled every 100 ms: {phase.PolledRate * 1000:F1} ms CPU/s"));
            }
            phase.RssEnd = Rss(server);
            return phase;
        }
        finally
        {
            if (!server.HasExited)
            {
                Process.Start("kill", ["-TERM", server.Id.ToString(CultureInfo.InvariantCulture)])!.WaitForExit();
                if (!server.WaitForExit(20000)) server.Kill(true);
            }
            try { Directory.Delete(dataDir, true); } catch { }
        }
    }

    private static void Verify(string name, JsonObject c)
    {
        int Count(string key) => c[key] is JsonArray a ? a.Count : -1;
        var problems = new List<string>();
        if (c["coe_version"]?.GetValue<string>() != To) problems.Add($"coe_version {c["coe_version"]}");
        if (c["node_count"]?.GetValue<int>() != Workers) problems.Add($"node_count {c["node_count"]}");
        if (c["master_count"]?.GetValue<int>() != Masters) problems.Add($"master_count {c["master_count"]}");
        if (Count("node_addresses") != Workers) problems.Add($"node_addresses {c["node_addresses"]?.ToJsonString()}");
        if (Count("master_addresses") != Masters) problems.Add($"master_addresses {c["master_addresses"]?.ToJsonString()}");
        if (problems.Count > 0) throw new InvalidOperationException($"{name} after the upgrade: {string.Join(", ", problems)}");
    }

    /// <summary>Polls the cluster every 100 ms until it shows <paramref name="status"/>; fails loudly on *_FAILED.</summary>
    private static async Task<(JsonObject Cluster, int Polls)> WaitAsync(HttpClient http, string uuid, string status, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        string? last = null;
        var polls = 0;
        while (true)
        {
            var c = await Expect(http.GetAsync($"/v1/clusters/{uuid}"), 200);
            polls++;
            var s = c["status"]?.GetValue<string>() ?? "";
            var reason = c["status_reason"]?.ToString();
            if (ServerLog is not null && reason != last) Console.WriteLine($"  {DateTime.UtcNow:HH:mm:ss.fff} {s}: {reason}");
            last = reason;
            if (s == status) return (c, polls);
            if (s.EndsWith("_FAILED", StringComparison.Ordinal))
                throw new InvalidOperationException($"cluster {uuid} went to {s} while waiting for {status}: {c["status_reason"]}");
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"cluster {uuid} not {status} within {timeout.TotalMinutes:F0} minutes: {s}: {c["status_reason"]}");
            await Task.Delay(100);
        }
    }

    private static SqliteMagnetarDbContext Db(string dbFile)
        => new(new DbContextOptionsBuilder<SqliteMagnetarDbContext>().UseSqlite($"Data Source={dbFile};Mode=ReadOnly;Default Timeout=30").Options);

    /// <summary>The cluster's servers in the simulated cloud: all of them, and those not being deleted.</summary>
    private static async Task<(int All, int Live)> ServersAsync(string dbFile, string uuid)
    {
        await using var db = Db(dbFile);
        var rows = await db.SimulatedResources.AsNoTracking().Where(r => r.ClusterUuid == uuid && r.Kind == "server").Select(r => r.DeleteRequestedAt).ToListAsync();
        return (rows.Count, rows.Count(d => d is null));
    }

    /// <summary>The conductor's events since the POST, as (seconds after it, "Reason node").</summary>
    private static async Task<List<(double At, string What)>> EventsAsync(string dbFile, string uuid, DateTimeOffset since, string clusterName)
    {
        await using var db = Db(dbFile);
        var events = (await db.ClusterEvents.AsNoTracking().Where(e => e.ClusterUuid == uuid).ToListAsync())
            .Where(e => e.At >= since).OrderBy(e => e.At).ThenBy(e => e.Id).ToList();
        return events.Select(e =>
        {
            var what = e.Reason;
            if (e.Message.StartsWith("node ", StringComparison.Ordinal)) what += " " + e.Message.Split(' ')[1].Replace(clusterName + "-", "");
            return ((e.At - since).TotalSeconds, what);
        }).ToList();
    }

    private static async Task<bool> TryOk(HttpClient http, string path)
    {
        try { using var r = await http.GetAsync(path); return r.IsSuccessStatusCode; } catch (HttpRequestException) { return false; }
    }

    private static async Task<JsonObject> Expect(Task<HttpResponseMessage> call, int status)
    {
        using var r = await call;
        var text = await r.Content.ReadAsStringAsync();
        if ((int)r.StatusCode != status) throw new InvalidOperationException($"{r.RequestMessage?.Method} {r.RequestMessage?.RequestUri?.PathAndQuery}: {(int)r.StatusCode} {text}");
        return JsonNode.Parse(text)!.AsObject();
    }
}
