using System.Diagnostics;
using static BenchSupport;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using Magnetar.Domain;
using Magnetar.Persistence;
using Microsoft.EntityFrameworkCore;

/// <summary>
/// What the health monitor costs for a large idle fleet. The published server (SQLite, simulated cloud) gets N idle
/// clusters of M nodes seeded directly in its database — each one HEALTHY with exactly the reason the monitor would
/// write, its nodes' records <c>ready</c>, its servers ACTIVE in the simulated cloud — so that a steady-state sweep reads
/// everything and writes nothing. Run A: the monitor on, every I seconds; run B: the same database with the monitor
/// off; the difference of the server's CPU time over the same window is the monitor's cost. Run C: 1 % of the clusters
/// get a worker's server in ERROR, to show that the write path is bounded by what changed.
/// On the simulated cloud Magnetar reaches no cluster API (no Kubernetes runs), so this measures the database and the
/// cloud-observation path of a sweep, not HTTPS calls to N API servers.
/// </summary>
static partial class HealthBench
{
    private const string ApiNotChecked = "not checked (Magnetar does not reach cluster APIs here)"; // HealthMonitor.ApiNotChecked

    public static async Task<int> RunAsync(Dictionary<string, string> opts)
    {
        var serverDll = opts["server"];
        var clusters = int.Parse(opts.GetValueOrDefault("clusters") ?? "10000");
        var nodes = int.Parse(opts.GetValueOrDefault("nodes") ?? "4");
        var interval = int.Parse(opts.GetValueOrDefault("interval") ?? "10");
        var seconds = int.Parse(opts.GetValueOrDefault("seconds") ?? "60");
        var warmup = int.Parse(opts.GetValueOrDefault("warmup") ?? "1"); // sweeps before run A's window opens
        var outFile = opts.GetValueOrDefault("out") ?? "bench/results-health.md";
        if (nodes < 2) throw new ArgumentException("--nodes must be at least 2 (one master, at least one worker)");
        var ticks = ClockTicks();
        var dataDir = Directory.CreateTempSubdirectory("magnetar-health-").FullName;
        var dbFile = Path.Combine(dataDir, "magnetar.db");
        var url = $"http://127.0.0.1:{FreePort()}";
        List<string> Args(bool monitor) =>
        [
            serverDll, "serve", "--urls", url, "--data-dir", dataDir,
            "--Logging:LogLevel:Default=Warning", "--Logging:LogLevel:Magnetar.Conductor.HealthMonitor=Information",
            $"--Magnetar:Health:IntervalSeconds={interval}", $"--Magnetar:Health:Enabled={(monitor ? "true" : "false")}",
        ];
        var report = new StringBuilder();
        void Line(string s) { Console.WriteLine(s); report.AppendLine(s); }
        string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

        try
        {
            // 1. A first start migrates the database.
            Console.WriteLine($"data dir {dataDir}; migrating");
            await using (var s = await Server.StartAsync(Args(monitor: false), url, ticks)) { }

            // 2. The fleet.
            var seedWatch = Stopwatch.StartNew();
            await SeedAsync(dbFile, clusters, nodes);
            var seedSeconds = seedWatch.Elapsed.TotalSeconds;
            Console.WriteLine(F($"seeded {clusters} clusters × {nodes} nodes in {seedSeconds:F1} s"));

            // 3. Run A: the monitor on. The window opens after --warmup sweeps (default 1: the cold one, with JIT and query compilation).
            Console.WriteLine("run A: health monitor enabled");
            var loadBefore = File.ReadAllText("/proc/loadavg").Trim();
            RunResult a;
            double settle;
            await using (var s = await Server.StartAsync(Args(monitor: true), url, ticks))
            {
                await s.WaitForSweepsAsync(warmup, TimeSpan.FromSeconds(Math.Max(120, interval * (warmup + 2))));
                settle = s.SinceHealthy.TotalSeconds;
                a = await s.MeasureAsync(seconds);
            }
            var rewritten = await ScalarAsync(dbFile, "SELECT COUNT(*) FROM clusters WHERE HealthStatusReason LIKE '{\"api\"%'");
            var eventsAfterA = await ScalarAsync(dbFile, "SELECT COUNT(*) FROM cluster_events");

            // 4. Run B: the same database, the monitor off, the same window (opened as long after start as A's was).
            Console.WriteLine("run B: health monitor disabled");
            RunResult b;
            await using (var s = await Server.StartAsync(Args(monitor: false), url, ticks))
            {
                await Task.Delay(TimeSpan.FromSeconds(Math.Max(3, settle)));
                b = await s.MeasureAsync(seconds);
            }

            // 5. Run C: 1 % of the clusters get their first worker's server in ERROR.
            var broken = await BreakAsync(dbFile, clusters);
            Console.WriteLine($"run C: {broken} clusters with a worker's server in ERROR");
            RunResult c;
            await using (var s = await Server.StartAsync(Args(monitor: true), url, ticks))
            {
                await s.WaitForSweepsAsync(3, TimeSpan.FromSeconds(Math.Max(180, interval * 3 + 120)));
                c = s.Snapshot();
            }
            var unhealthyAfterC = await ScalarAsync(dbFile, "SELECT COUNT(*) FROM clusters WHERE HealthStatus = 'UNHEALTHY'");
            var eventsAfterC = await ScalarAsync(dbFile, "SELECT COUNT(*) FROM cluster_events") - eventsAfterA;
            var markedNodes = await ScalarAsync(dbFile, "SELECT COUNT(*) FROM node_states WHERE UnhealthySince IS NOT NULL");

            // 6. The figures.
            var rateA = a.Cpu / a.Elapsed;
            var rateB = b.Cpu / b.Elapsed;
            var loop = rateA - rateB;
            var warm = a.Sweeps.Skip(1).Select(x => x.Ms).Order().ToList(); // every sweep after the cold first one
            var inWindow = a.SweepsInWindow;
            var perSweep = inWindow > 0 ? loop * a.Elapsed / inWindow : double.NaN; // CPU seconds per sweep
            var at60 = perSweep / (60 + (warm.Count > 0 ? warm.Average() / 1000 : 0)); // the next sweep starts 60 s after one ends
            var cFirst = c.Sweeps.FirstOrDefault();
            var cLater = c.Sweeps.Skip(1).Select(x => x.Ms).ToList(); // in order

            Line($"## health monitor: {clusters} idle clusters × {nodes} nodes, interval {interval} s, window {seconds} s — {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
            Line($"- machine: {Environment.ProcessorCount} cores ({CpuModel()}), {OsName()}, {RuntimeInformation.FrameworkDescription}; SQLite, simulated cloud; load average before run A: {loadBefore}");
            Line(F($"- fleet: {clusters} clusters (CREATE_COMPLETE, idle), {clusters * 2} nodegroups, {clusters * nodes} node records and {clusters * nodes} simulated servers, seeded in {seedSeconds:F1} s; every cluster HEALTHY with the reason the monitor writes, so that a steady-state sweep writes nothing"));
            Line("- scope: Magnetar reaches no cluster API on the simulated cloud (no Kubernetes runs there), so a sweep here is the database and cloud-observation path only — per batch of 500: one query on clusters, one on node_states, one on simulated_resources — not HTTPS calls to the clusters' API servers (on OpenStack each sweep also asks every cluster's /readyz and Nodes, 16 at a time, and lists servers through Nova)");
            Line(F($"- run A (monitor on): first sweep (cold process) {a.Sweeps.FirstOrDefault()?.Ms ?? double.NaN:F0} ms; window opened after {warmup} sweep(s); {inWindow} sweeps in the {a.Elapsed:F1} s window; warm sweep duration p50 {(warm.Count > 0 ? P(warm, 0.5) : double.NaN):F0} ms, max {(warm.Count > 0 ? warm[^1] : double.NaN):F0} ms ({warm.Count} warm sweeps); clusters per sweep {a.Sweeps.LastOrDefault()?.Clusters}; transitions after the first sweep {a.Sweeps.Skip(1).Sum(x => x.Transitions)}"));
            Line($"- steady state writes nothing: clusters whose health reason was rewritten during run A: {rewritten}; events recorded: {eventsAfterA}");
            Line(F($"- server CPU: A {rateA * 100:F2} % of one core, B (monitor off, idle server) {rateB * 100:F2} %, A − B = {loop * 100:F2} % of one core at a {interval} s interval"));
            Line(F($"- cost per sweep: {perSweep * 1000:F0} ms of CPU = {perSweep / clusters * 1e6:F1} µs per cluster ({perSweep / (clusters * nodes) * 1e6:F1} µs per node)"));
            Line(F($"- extrapolated to the default 60 s interval: {at60 * 100:F2} % of one core for {clusters} idle clusters (goal: < 5 %) — {(at60 < 0.05 ? "met" : "NOT met")}"));
            Line(F($"- RSS at the end of the window: {a.Rss / 1048576.0:F0} MiB with the monitor, {b.Rss / 1048576.0:F0} MiB without"));
            Line(F($"- run C ({broken} clusters = {100.0 * broken / clusters:F1} % with a worker's server in ERROR, fresh process): first sweep {cFirst?.Ms ?? double.NaN:F0} ms with {cFirst?.Transitions} transitions logged ({c.TransitionLines} \"health HEALTHY → UNHEALTHY\" lines), {cFirst?.UnhealthyNodes} unhealthy nodes; later sweeps (nothing changed) {(cLater.Count > 0 ? string.Join(", ", cLater.Select(x => x.ToString("F0", CultureInfo.InvariantCulture))) : "none")} ms; afterwards {unhealthyAfterC} clusters UNHEALTHY, {markedNodes} nodes marked unhealthy, {eventsAfterC} events"));
            Line(F($"- for comparison, run A's first sweep (cold process, nothing to write): {a.Sweeps.FirstOrDefault()?.Ms ?? double.NaN:F0} ms"));
            if (at60 >= 0.05)
                Line(F($"- the goal is not met: {perSweep / clusters * 1e6:F1} µs of CPU per idle cluster per sweep × {clusters} clusters / 60 s = {at60 * 100:F2} % of one core"));

            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(outFile))!);
            File.AppendAllText(outFile, report + "\n");
            Console.WriteLine($"appended to {outFile}");
            var ok = rewritten == 0 && eventsAfterA == 0 && cFirst?.Transitions == broken && unhealthyAfterC == broken;
            if (!ok) Console.Error.WriteLine("unexpected: steady state wrote something, or run C's transitions differ from the broken clusters");
            return ok ? 0 : 1;
        }
        finally
        {
            try { Directory.Delete(dataDir, true); } catch { }
        }
    }

    private sealed record Sweep(double At, int Clusters, double Ms, int Unhealthy, int UnhealthyNodes, int Transitions);

    private sealed record RunResult(double Cpu, double Elapsed, long Rss, List<Sweep> Sweeps, int SweepsInWindow, int TransitionLines);

    /// <summary>A server child process: its CPU time and RSS from /proc, its health sweeps from its log.</summary>
    private sealed partial class Server : IAsyncDisposable
    {
        private readonly Process _p;
        private readonly double _ticks;
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private readonly List<Sweep> _sweeps = [];
        private double _healthyAt;
        private int _transitionLines;

        private Server(Process p, double ticks) { _p = p; _ticks = ticks; }

        public TimeSpan SinceHealthy => TimeSpan.FromSeconds(_clock.Elapsed.TotalSeconds - _healthyAt);

        public static async Task<Server> StartAsync(List<string> args, string url, double ticks)
        {
            var psi = new ProcessStartInfo("dotnet", args) { RedirectStandardOutput = true, RedirectStandardError = true };
            var s = new Server(Process.Start(psi)!, ticks);
            s._p.OutputDataReceived += (_, e) => s.OnLine(e.Data);
            s._p.ErrorDataReceived += (_, e) => s.OnLine(e.Data);
            s._p.BeginOutputReadLine();
            s._p.BeginErrorReadLine();
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            while (s._clock.Elapsed < TimeSpan.FromSeconds(120))
            {
                if (s._p.HasExited) throw new InvalidOperationException($"the server exited with {s._p.ExitCode}");
                try
                {
                    using var r = await http.GetAsync(url + "/healthz");
                    if (r.IsSuccessStatusCode) { s._healthyAt = s._clock.Elapsed.TotalSeconds; return s; }
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { }
                await Task.Delay(50);
            }
            await s.DisposeAsync();
            throw new InvalidOperationException("the server did not start");
        }

        private void OnLine(string? line)
        {
            if (line is null) return;
            var m = SweepLine().Match(line);
            if (m.Success)
            {
                int I(int g) => int.Parse(m.Groups[g].Value, CultureInfo.InvariantCulture);
                var sweep = new Sweep(_clock.Elapsed.TotalSeconds, I(1), double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture), I(3), I(5), I(6));
                lock (_sweeps) _sweeps.Add(sweep);
                Console.WriteLine(FormattableString.Invariant($"  sweep: {sweep.Clusters} clusters in {sweep.Ms:F0} ms, {sweep.Unhealthy} unhealthy, {sweep.Transitions} transitions"));
            }
            else if (line.Contains(") health HEALTHY ", StringComparison.Ordinal) && line.Contains(" UNHEALTHY: ", StringComparison.Ordinal)) Interlocked.Increment(ref _transitionLines);
            else if (line.Contains("fail", StringComparison.OrdinalIgnoreCase) || line.Contains("warn", StringComparison.OrdinalIgnoreCase)
                     || line.Contains("Exception", StringComparison.Ordinal)) Console.Error.WriteLine("server: " + line);
        }

        public async Task WaitForSweepsAsync(int count, TimeSpan timeout)
        {
            var deadline = _clock.Elapsed + timeout;
            while (true)
            {
                lock (_sweeps) if (_sweeps.Count >= count) return;
                if (_p.HasExited) throw new InvalidOperationException($"the server exited with {_p.ExitCode}");
                if (_clock.Elapsed > deadline) throw new TimeoutException($"fewer than {count} health sweeps within {timeout.TotalSeconds:F0} s");
                await Task.Delay(50);
            }
        }

        /// <summary>CPU time used over the next <paramref name="seconds"/>, the RSS at the end, the sweeps finished meanwhile.</summary>
        public async Task<RunResult> MeasureAsync(int seconds)
        {
            var cpu0 = Cpu();
            var t0 = _clock.Elapsed.TotalSeconds;
            await Task.Delay(TimeSpan.FromSeconds(seconds));
            var cpu = Cpu() - cpu0;
            var t1 = _clock.Elapsed.TotalSeconds;
            var rss = Rss(_p);
            lock (_sweeps) return new RunResult(cpu, t1 - t0, rss, [.. _sweeps], _sweeps.Count(s => s.At > t0 && s.At <= t1), _transitionLines);
        }

        public RunResult Snapshot()
        {
            lock (_sweeps) return new RunResult(0, 0, Rss(_p), [.. _sweeps], _sweeps.Count, _transitionLines);
        }

        /// <summary>User plus system CPU time (fields 14 and 15 of /proc/&lt;pid&gt;/stat, in clock ticks).</summary>
        private double Cpu()
        {
            var stat = File.ReadAllText($"/proc/{_p.Id}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return (long.Parse(fields[11]) + long.Parse(fields[12])) / _ticks;
        }

        public async ValueTask DisposeAsync()
        {
            if (!_p.HasExited)
            {
                Process.Start("kill", ["-TERM", _p.Id.ToString()])!.WaitForExit();
                if (!_p.WaitForExit(20000)) _p.Kill(true);
            }
            await _p.WaitForExitAsync();
            _p.Dispose();
        }

        [GeneratedRegex(@"Health sweep: (\d+) clusters in (\d+) ms \((\d+) unhealthy, (\d+) unknown, (\d+) unhealthy nodes, (\d+) transitions")]
        private static partial Regex SweepLine();
    }

    /// <summary>
    /// N idle clusters, as the conductor leaves them after a create (its conditions all true): a master and a worker nodegroup, one node record per
    /// node (ready, with its revision) and its server in the simulated cloud (ACTIVE). The health reason has the monitor's
    /// keys and values but its keys in the reverse order (the monitor compares them as a set, and writes "api" first):
    /// a reason the monitor rewrote is then visible afterwards.
    /// </summary>
    internal static async Task SeedAsync(string dbFile, int count, int nodes)
    {
        var cs = $"Data Source={dbFile};Default Timeout=30";
        SqliteMagnetarDbContext Create() => new(new DbContextOptionsBuilder<SqliteMagnetarDbContext>().UseSqlite(cs).Options);
        var now = DateTimeOffset.UtcNow;
        var past = now.AddDays(-1);
        const string project = "bench-project", user = "bench-user", version = "v1.31.1", image = "fedora-coreos-40";
        var template = new ClusterTemplate { Uuid = Guid.NewGuid().ToString(), Name = "health-bench", ProjectId = project, UserId = user, ImageId = image, CreatedAt = past, Labels = new() { ["kube_tag"] = version } };
        await using (var db = Create()) { db.ClusterTemplates.Add(template); await db.SaveChangesAsync(); }
        const int chunk = 500; // clusters per SaveChanges: ~5 500 rows with their nodegroups, node records and servers
        for (var start = 0; start < count; start += chunk)
        {
            await using var db = Create();
            db.ChangeTracker.AutoDetectChangesEnabled = false;
            for (var i = start; i < Math.Min(count, start + chunk); i++)
            {
                var c = new Cluster
                {
                    Uuid = Guid.NewGuid().ToString(), Name = $"health-{i:D5}", ProjectId = project, UserId = user, ClusterTemplateId = template.Uuid,
                    Status = ClusterStatus.CreateComplete, StatusReason = "CREATE completed successfully", ApiAddress = $"https://172.24.{i / 250 % 256}.{i % 250 + 2}:6443",
                    CoeVersion = version, CreatedAt = past, UpdatedAt = past, Labels = new() { ["kube_tag"] = version }, FlavorId = "m1.small", MasterFlavorId = "m1.medium",
                    Generation = 1, ObservedGeneration = 1, HealthStatus = HealthStatus.Healthy,
                    // The conditions a create leaves (read with every cluster the sweep loads).
                    Conditions = [.. new[] { ConditionTypes.CertificatesReady, ConditionTypes.NetworkReady, ConditionTypes.SecurityGroupsReady, ConditionTypes.LoadBalancerReady,
                        ConditionTypes.ControlPlaneReady, ConditionTypes.WorkersReady, ConditionTypes.AddonsReady, ConditionTypes.NodesReady }
                        .Select(t => new ClusterCondition { Type = t, Status = true, Reason = "Ready", LastTransitionAt = past })],
                };
                var names = new List<string>();
                foreach (var (ng, role, n) in new[] { (NodeGroupRoles.DefaultMasterName, NodeGroupRoles.Master, 1), (NodeGroupRoles.DefaultWorkerName, NodeGroupRoles.Worker, nodes - 1) })
                {
                    var addresses = new List<string>();
                    for (var k = 0; k < n; k++)
                    {
                        var name = $"{c.Name}-{ng}-{k}";
                        var address = $"10.0.{names.Count / 250}.{names.Count % 250 + 10}";
                        names.Add(name);
                        addresses.Add(address);
                        db.NodeStates.Add(new NodeBootstrapState
                        {
                            ClusterUuid = c.Uuid, NodeName = name, NodeGroup = ng, Role = role == NodeGroupRoles.Master ? (k == 0 ? NodeRoles.Init : NodeRoles.ControlPlane) : NodeRoles.Worker,
                            Phase = NodePhases.Ready, CreatedAt = past, LastReportAt = now, LastSeenAt = now, Addresses = address,
                            KubernetesVersion = version, KubeletVersion = version, Revision = $"{version}|{image}",
                        });
                        db.SimulatedResources.Add(new SimulatedResource
                        {
                            ClusterUuid = c.Uuid, Kind = "server", Name = name, ResourceId = Guid.NewGuid().ToString(), NodeGroup = ng,
                            Status = "ACTIVE", Address = address, CreatedAt = past, ReadyAt = past,
                        });
                    }
                    c.NodeGroups.Add(new NodeGroup
                    {
                        Uuid = Guid.NewGuid().ToString(), Name = ng, Role = role, ClusterId = c.Uuid, ProjectId = project, NodeCount = n, IsDefault = true,
                        Status = ClusterStatus.CreateComplete, NodeAddresses = addresses, Version = version, ImageId = image, CreatedAt = past,
                    });
                }
                // The monitor's reason ({"api": …, "<node>.Ready": "True", …}), keys in reverse order (see above).
                var reason = new Dictionary<string, string>();
                foreach (var name in names.OrderByDescending(x => x, StringComparer.Ordinal)) reason[$"{name}.Ready"] = "True";
                reason["api"] = ApiNotChecked;
                c.HealthStatusReason = reason;
                db.Clusters.Add(c);
            }
            await db.SaveChangesAsync();
            if ((start / chunk) % 4 == 3) Console.WriteLine($"  seeded {Math.Min(count, start + chunk)} clusters");
        }
    }

    /// <summary>Every hundredth cluster's first worker: its server goes to ERROR in the simulated cloud.</summary>
    private static async Task<int> BreakAsync(string dbFile, int count)
    {
        await using var conn = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={dbFile};Default Timeout=30");
        await conn.OpenAsync();
        await using var tx = conn.BeginTransaction();
        await using var cmd = conn.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "UPDATE simulated_resources SET Status = 'ERROR', Detail = 'health bench: broken on purpose' WHERE Kind = 'server' AND Name = $name";
        var p = cmd.Parameters.Add("$name", Microsoft.Data.Sqlite.SqliteType.Text);
        var broken = 0;
        for (var i = 0; i < count; i += 100)
        {
            p.Value = $"health-{i:D5}-{NodeGroupRoles.DefaultWorkerName}-0";
            broken += await cmd.ExecuteNonQueryAsync();
        }
        await tx.CommitAsync();
        return broken;
    }

    private static async Task<long> ScalarAsync(string dbFile, string sql)
    {
        await using var conn = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={dbFile};Mode=ReadOnly;Default Timeout=30");
        await conn.OpenAsync();
        await using var cmd = conn.CreateCommand();
        cmd.CommandText = sql;
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }
}
