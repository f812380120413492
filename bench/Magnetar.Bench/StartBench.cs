using System.Diagnostics;
using System.Globalization;
using System.Text;
using Magnetar.Persistence;
using static BenchSupport;

/// <summary>
/// Start to serving on an existing database with N clusters stored, alone and repeated: one database is made and
/// seeded once (as the API bench seeds it), then each server given is started on it, in turn, until <c>/healthz</c>
/// answers (polled every 20 ms, as the API bench does), and stopped with SIGTERM. Several servers (e.g. the build
/// before and after a change) are measured alternately, the order reversed every round, so that a machine loaded by
/// something else weighs on all of them alike. Every server is started <c>--warmup</c> times first, unmeasured (the
/// first start after seeding finds the database out of the page cache). With <c>--log DIR</c> each start's stderr is
/// kept there, with what the server printed in the 3 s after it answered.
/// </summary>
static class StartBench
{
    public static async Task<int> RunAsync(Dictionary<string, string> opts)
    {
        var servers = (opts.GetValueOrDefault("server") ?? throw new ArgumentException("--server a.dll[,b.dll...] is required"))
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var dbKind = opts.GetValueOrDefault("db") ?? "sqlite";
        var clusters = int.Parse(opts.GetValueOrDefault("clusters") ?? "10000");
        var runs = int.Parse(opts.GetValueOrDefault("runs") ?? "5");
        var warmup = int.Parse(opts.GetValueOrDefault("warmup") ?? "1");
        var log = opts.GetValueOrDefault("log");
        var outFile = opts.GetValueOrDefault("out");

        var dataDir = Directory.CreateTempSubdirectory("magnetar-startbench-").FullName;
        var url = $"http://127.0.0.1:{FreePort()}";
        var serverArgs = new List<string> { "serve", "--urls", url, "--data-dir", dataDir, "--Logging:LogLevel:Default=Warning" };
        var (dbOptions, dbArgs, pgDb, baseCs) = await BenchDatabaseAsync(opts, dbKind, dataDir, "magnetar_startbench");
        serverArgs.AddRange(dbArgs);
        var report = new StringBuilder();
        void Line(string s) { Console.WriteLine(s); report.AppendLine(s); }
        try
        {
            // The first server makes the database (migrations) and the demo user; the clusters are then written directly.
            var (first, _) = await StartAsync(servers[0], serverArgs, url, null);
            for (var wait = 0; wait < 300 && !File.Exists(Path.Combine(dataDir, "openrc-demo")); wait++) await Task.Delay(100);
            var openrc = File.ReadAllLines(Path.Combine(dataDir, "openrc-demo")).Where(l => l.StartsWith("export ")).Select(l => l[7..].Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
            using (var http = new HttpClient { BaseAddress = new Uri(url) })
            {
                var (_, projectId, userId) = await Token(http, openrc["OS_USERNAME"], openrc["OS_PASSWORD"], openrc["OS_PROJECT_NAME"]);
                await Seed(dbOptions, clusters, projectId, userId);
            }
            await StopAsync(first);

            var times = servers.Select(_ => new List<double>()).ToArray();
            for (var round = -warmup; round < runs; round++)
            {
                var order = Enumerable.Range(0, servers.Length).ToList();
                if ((round & 1) != 0) order.Reverse();
                foreach (var i in order)
                {
                    var tag = round < 0 ? $"s{i}-warmup{round + warmup}" : $"s{i}-run{round}";
                    var (p, ms) = await StartAsync(servers[i], serverArgs, url, log is null ? null : Path.Combine(log, $"{dbKind}-{tag}.log"));
                    await StopAsync(p);
                    if (round >= 0) times[i].Add(ms);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {tag}: {ms:F0} ms"));
                }
            }
            Line($"## start to serving, {dbKind}, {clusters} clusters stored — {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, " +
                 $"load average {File.ReadAllText("/proc/loadavg").Split(' ')[0]} at the end; {runs} runs each, alternating, after {warmup} warm-up start(s)");
            for (var i = 0; i < servers.Length; i++)
            {
                var sorted = times[i].OrderBy(x => x).ToList();
                Line(string.Create(CultureInfo.InvariantCulture,
                    $"- {servers[i]}: median {P(sorted, 0.5):F0} ms (min {sorted[0]:F0}, max {sorted[^1]:F0}; runs {string.Join(", ", times[i].Select(t => t.ToString("F0", CultureInfo.InvariantCulture)))})"));
            }
        }
        finally
        {
            if (pgDb is not null) await Psql(baseCs!, $"DROP DATABASE IF EXISTS \"{pgDb}\" WITH (FORCE)");
            Directory.Delete(dataDir, true);
        }
        if (outFile is not null) File.AppendAllText(outFile, report + "\n");
        return 0;
    }

    private static async Task<(Process, double)> StartAsync(string dll, List<string> args, string url, string? logFile)
    {
        var sw = Stopwatch.StartNew();
        var psi = new ProcessStartInfo("dotnet", [dll, .. args]) { RedirectStandardOutput = true, RedirectStandardError = true };
        var p = Process.Start(psi)!;
        var lines = new List<string>();
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (lines) lines.Add(e.Data); };
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
                    var ms = sw.Elapsed.TotalMilliseconds;
                    if (logFile is not null)
                    {
                        await Task.Delay(3000); // what the server does just after (the trace's later lines)
                        Directory.CreateDirectory(Path.GetDirectoryName(logFile)!);
                        lock (lines) File.WriteAllLines(logFile, [$"serving after {ms:F0} ms (client side)", .. lines]);
                    }
                    return (p, ms);
                }
            }
            catch (HttpRequestException) { }
            await Task.Delay(20);
        }
        p.Kill(true);
        lock (lines) Console.Error.WriteLine(string.Join('\n', lines));
        throw new InvalidOperationException("server did not start");
    }

    private static async Task StopAsync(Process p)
    {
        if (p.HasExited) return;
        Process.Start("kill", ["-TERM", p.Id.ToString()])!.WaitForExit();
        if (!p.WaitForExit(15000)) p.Kill(true);
        await Task.CompletedTask;
    }
}
