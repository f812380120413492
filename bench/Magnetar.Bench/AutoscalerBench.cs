using System.Diagnostics;
using System.Globalization;
using System.Net.Security;
using System.Runtime.InteropServices;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Grpc.Net.Client;
using Magnetar.Autoscaler.ExternalGrpc;
using Magnetar.Bootstrap.Pki;
using Magnetar.Bootstrap.Secrets;
using Microsoft.Data.Sqlite;
using static BenchSupport;

/// <summary>
/// What idle cluster-autoscalers cost Magnetar: N clusters with autoscaling on (seeded in the database of the published
/// server: SQLite, simulated cloud, health monitor off), one client per cluster with that cluster's own certificate and
/// connection, each doing what the autoscaler does every scan interval (Refresh, NodeGroups, NodeGroupNodes) every
/// --interval seconds, spread evenly over the interval. The server's CPU over the window, minus the same server idle
/// for the same window, is the polling's cost.
/// </summary>
static class AutoscalerBench
{
    public static async Task<int> RunAsync(Dictionary<string, string> opts)
    {
        var serverDll = opts["server"];
        var clusters = int.Parse(opts.GetValueOrDefault("clusters") ?? "1000");
        var nodes = int.Parse(opts.GetValueOrDefault("nodes") ?? "4");
        var interval = int.Parse(opts.GetValueOrDefault("interval") ?? "10");
        var seconds = int.Parse(opts.GetValueOrDefault("seconds") ?? "60");
        var outFile = opts.GetValueOrDefault("out") ?? "bench/results-autoscaler.md";
        var ticks = ClockTicks();
        var dataDir = Directory.CreateTempSubdirectory("magnetar-autoscaler-").FullName;
        var dbFile = Path.Combine(dataDir, "magnetar.db");
        var url = $"http://127.0.0.1:{FreePort()}";
        var grpcPort = FreePort();
        List<string> Args() =>
        [
            serverDll, "serve", "--urls", url, "--data-dir", dataDir, "--Logging:LogLevel:Default=Warning",
            "--Magnetar:Health:Enabled=false", $"--Magnetar:Autoscaler:Port={grpcPort}", "--Magnetar:Autoscaler:Listen=127.0.0.1",
        ];
        var report = new StringBuilder();
        void Line(string s) { Console.WriteLine(s); report.AppendLine(s); }
        string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
        try
        {
            await using (var s = await ServerProcess.StartAsync(Args(), url)) { } // migrates
            await HealthBench.SeedAsync(dbFile, clusters, nodes);
            var uuids = await AutoscalingOnAsync(dbFile);
            Console.WriteLine($"seeded {uuids.Count} clusters with autoscaling × {nodes} nodes");

            await using var server = await ServerProcess.StartAsync(Args(), url);
            // The first credential through the command (which makes the deployment's autoscaler CA), the others signed
            // here with that CA (unsealed with the data directory's key): the command's process start would be the bench.
            var first = Path.Combine(dataDir, "cred0");
            var cli = Process.Start(new ProcessStartInfo("dotnet", [serverDll, "autoscaler-credential", "--cluster", uuids[0], "--output", first,
                "--data-dir", dataDir, $"--Magnetar:Autoscaler:Port={grpcPort}"]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            await cli.WaitForExitAsync();
            if (cli.ExitCode != 0) throw new InvalidOperationException("autoscaler-credential failed: " + await cli.StandardError.ReadToEndAsync());
            var caPem = File.ReadAllText(Path.Combine(first, "ca.crt"));
            var ca = LoadAuthority(dbFile, dataDir);
            var trust = X509Certificate2.CreateFromPem(caPem);
            var issueWatch = Stopwatch.StartNew();
            var certificates = uuids.Select(u => ClusterPki.IssueCertificate(ca, "cluster-autoscaler:" + u, [], CertificatePurpose.Client, null, TimeSpan.FromDays(1), LeafKey.EcdsaP256))
                .Select(c => X509CertificateLoader.LoadPkcs12(X509Certificate2.CreateFromPem(c.CertificatePem, c.PrivateKeyPem).Export(X509ContentType.Pkcs12), null)).ToList();
            Console.WriteLine(F($"{certificates.Count} client certificates in {issueWatch.Elapsed.TotalSeconds:F1} s"));

            // Idle server: the baseline.
            await Task.Delay(TimeSpan.FromSeconds(5));
            var idle = await server.MeasureAsync(seconds, ticks);
            Console.WriteLine(F($"idle: {idle.Cpu / idle.Elapsed * 100:F2} % of one core"));

            // The autoscalers: one connection each; a warm-up round opens them all (TLS handshakes), then the window.
            var clients = certificates.Select(c => Client(grpcPort, trust, c)).ToList();
            var latencies = new List<double>();
            var errors = 0;
            var rounds = 0;
            async Task PollAsync(CloudProvider.CloudProviderClient client, bool record)
            {
                var watch = Stopwatch.StartNew();
                try
                {
                    await client.RefreshAsync(new RefreshRequest());
                    var groups = await client.NodeGroupsAsync(new NodeGroupsRequest());
                    foreach (var g in groups.NodeGroups) await client.NodeGroupNodesAsync(new NodeGroupNodesRequest { Id = g.Id });
                    if (groups.NodeGroups.Count != 1) Interlocked.Increment(ref errors);
                }
                catch (Exception e)
                {
                    if (Interlocked.Increment(ref errors) <= 3) Console.Error.WriteLine("poll failed: " + e.Message);
                }
                if (record) lock (latencies) { latencies.Add(watch.Elapsed.TotalMilliseconds); rounds++; }
            }
            var warmWatch = Stopwatch.StartNew();
            await Parallel.ForEachAsync(clients, new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (c, _) => await PollAsync(c.Client, false));
            Console.WriteLine(F($"warm-up round (TLS handshakes, {clients.Count} connections): {warmWatch.Elapsed.TotalSeconds:F1} s, {errors} errors"));
            var loadBefore = File.ReadAllText("/proc/loadavg").Trim();
            var benchCpu0 = Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;
            using var stop = new CancellationTokenSource();
            var pollers = clients.Select((c, i) => Task.Run(async () =>
            {
                await Task.Delay(TimeSpan.FromSeconds(interval * (double)i / clients.Count), stop.Token);
                while (!stop.IsCancellationRequested)
                {
                    var next = Stopwatch.GetTimestamp() + (long)(interval * Stopwatch.Frequency);
                    await PollAsync(c.Client, true);
                    var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), next);
                    if (wait > TimeSpan.Zero) await Task.Delay(wait, stop.Token);
                }
            })).ToList();
            await Task.Delay(TimeSpan.FromSeconds(interval)); // every poller has started
            var busy = await server.MeasureAsync(seconds, ticks);
            var benchCpu = Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds - benchCpu0;
            stop.Cancel();
            try { await Task.WhenAll(pollers); } catch (OperationCanceledException) { }
            foreach (var c in clients) c.Channel.Dispose();

            var cost = busy.Cpu / busy.Elapsed - idle.Cpu / idle.Elapsed;
            var sorted = latencies.Order().ToList();
            var pollsPerSecond = (double)clusters / interval;
            Line($"## autoscaler polling: {clusters} clusters, one autoscaler each every {interval} s (Refresh + NodeGroups + NodeGroupNodes) — {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
            Line($"- machine: {Environment.ProcessorCount} cores ({CpuModel()}), {OsName()}, {RuntimeInformation.FrameworkDescription}; SQLite, simulated cloud, health monitor off; the clients run on the same machine; load average before the window: {loadBefore}");
            Line(F($"- fleet: {clusters} clusters × {nodes} nodes (1 control plane, {nodes - 1} workers in default-worker, min 1 max 10), {clusters} client certificates, {clusters} TLS connections (HTTP/2) kept open"));
            Line(F($"- server CPU: idle {idle.Cpu / idle.Elapsed * 100:F2} % of one core, polled {busy.Cpu / busy.Elapsed * 100:F2} %, polling's cost {cost * 100:F2} % of one core ({pollsPerSecond:F0} polls/s = {pollsPerSecond * 3:F0} calls/s)"));
            Line(F($"- per poll (3 calls): {cost / pollsPerSecond * 1e6:F0} µs of server CPU; per cluster: {cost / clusters * 100:F4} % of one core"));
            Line(F($"- poll latency (3 calls in sequence, client side): p50 {P(sorted, 0.5):F1} ms, p99 {P(sorted, 0.99):F1} ms, max {sorted[^1]:F1} ms over {sorted.Count} polls; errors {errors}"));
            Line(F($"- RSS: idle {idle.Rss / 1048576.0:F0} MiB, with {clusters} connections polling {busy.Rss / 1048576.0:F0} MiB; the clients used {benchCpu / busy.Elapsed * 100:F1} % of one core"));
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(outFile))!);
            File.AppendAllText(outFile, report + "\n");
            Console.WriteLine($"appended to {outFile}");
            return errors == 0 ? 0 : 1;
        }
        finally
        {
            try { Directory.Delete(dataDir, true); } catch { }
        }
    }

    /// <summary>Turns autoscaling on for every seeded cluster (label, worker range, server ids); their uuids.</summary>
    private static async Task<List<string>> AutoscalingOnAsync(string dbFile)
    {
        await using var db = new SqliteConnection($"Data Source={dbFile};Default Timeout=30");
        await db.OpenAsync();
        await using var tx = await db.BeginTransactionAsync();
        foreach (var sql in new[]
        {
            "UPDATE clusters SET Labels = json_set(Labels, '$.auto_scaling_enabled', 'true')",
            "UPDATE nodegroups SET MinNodeCount = 1, MaxNodeCount = 10 WHERE Role = 'worker'",
            "UPDATE node_states SET ServerId = (SELECT r.ResourceId FROM simulated_resources r WHERE r.ClusterUuid = node_states.ClusterUuid AND r.Name = node_states.NodeName), ServerStatus = 'ACTIVE'",
        })
        {
            await using var cmd = db.CreateCommand();
            cmd.CommandText = sql;
            await cmd.ExecuteNonQueryAsync();
        }
        await tx.CommitAsync();
        await using var list = db.CreateCommand();
        list.CommandText = "SELECT Uuid FROM clusters ORDER BY Id";
        var uuids = new List<string>();
        await using var r = await list.ExecuteReaderAsync();
        while (await r.ReadAsync()) uuids.Add(r.GetString(0));
        return uuids;
    }

    private static CertificateAuthorityMaterial LoadAuthority(string dbFile, string dataDir)
    {
        using var db = new SqliteConnection($"Data Source={dbFile};Mode=ReadOnly");
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "SELECT CertificatePem, ProtectedPrivateKey FROM cluster_cas WHERE ClusterUuid = 'magnetar' AND CaType = 'autoscaler-ca'";
        using var r = cmd.ExecuteReader();
        if (!r.Read()) throw new InvalidOperationException("no autoscaler CA");
        var protector = new AesGcmSecretProtector(KeyFile.LoadOrCreate(Path.Combine(dataDir, "secret.key")));
        return new CertificateAuthorityMaterial(r.GetString(0), protector.Unprotect(r.GetString(1), "autoscaler-ca-key"));
    }

    private static (CloudProvider.CloudProviderClient Client, GrpcChannel Channel) Client(int port, X509Certificate2 trust, X509Certificate2 certificate)
    {
        var handler = new SocketsHttpHandler { EnableMultipleHttp2Connections = false };
        handler.SslOptions.ClientCertificates = [certificate];
        handler.SslOptions.RemoteCertificateValidationCallback = (_, cert, _, errors) =>
        {
            if ((errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != SslPolicyErrors.None || cert is null) return false;
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.Add(trust);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            return chain.Build(X509CertificateLoader.LoadCertificate(cert.GetRawCertData()));
        };
        var channel = GrpcChannel.ForAddress($"https://127.0.0.1:{port}", new GrpcChannelOptions { HttpHandler = handler });
        return (new CloudProvider.CloudProviderClient(channel), channel);
    }

    /// <summary>The server as a child process: CPU time and RSS from /proc.</summary>
    private sealed class ServerProcess : IAsyncDisposable
    {
        private readonly Process _p;
        private ServerProcess(Process p) => _p = p;

        public static async Task<ServerProcess> StartAsync(List<string> args, string url)
        {
            var p = Process.Start(new ProcessStartInfo("dotnet", args) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            p.OutputDataReceived += (_, e) => { if (e.Data is { } l && (l.Contains("fail") || l.Contains("Exception"))) Console.Error.WriteLine("server: " + l); };
            p.ErrorDataReceived += (_, e) => { if (e.Data is { } l) Console.Error.WriteLine("server: " + l); };
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
            var s = new ServerProcess(p);
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            var deadline = DateTime.UtcNow.AddSeconds(120);
            while (DateTime.UtcNow < deadline)
            {
                if (p.HasExited) throw new InvalidOperationException($"the server exited with {p.ExitCode}");
                try { if ((await http.GetAsync(url + "/healthz")).IsSuccessStatusCode) return s; }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { }
                await Task.Delay(50);
            }
            await s.DisposeAsync();
            throw new InvalidOperationException("the server did not start");
        }

        public async Task<(double Cpu, double Elapsed, long Rss)> MeasureAsync(int seconds, double ticks)
        {
            double Cpu()
            {
                var stat = File.ReadAllText($"/proc/{_p.Id}/stat");
                var f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                return (long.Parse(f[11]) + long.Parse(f[12])) / ticks;
            }
            var cpu0 = Cpu();
            var watch = Stopwatch.StartNew();
            await Task.Delay(TimeSpan.FromSeconds(seconds));
            return (Cpu() - cpu0, watch.Elapsed.TotalSeconds, Rss(_p));
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
    }
}
