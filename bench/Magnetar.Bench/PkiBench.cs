using System.Diagnostics;
using System.Globalization;
using System.Text;
using Magnetar.Bootstrap.Pki;

/// <summary>
/// CPU cost of the PKI Magnetar makes: a cluster's CAs (API request and first conductor pass) and a node's bundle
/// credentials (join kubeconfig + kubelet serving certificate, at every bundle fetch), with ECDSA P-256 node keys as
/// shipped and with RSA 2048 for comparison. Single-threaded wall time per operation (median and p90 of N).
/// usage: Magnetar.Bench --mode pki [--iterations 40] [--out bench/results-pki.md]
/// </summary>
internal static class PkiBench
{
    public static int Run(Dictionary<string, string> opts)
    {
        var n = int.Parse(opts.GetValueOrDefault("iterations") ?? "40", CultureInfo.InvariantCulture);
        var ca = ClusterPki.CreateCertificateAuthority("bench", Guid.NewGuid().ToString());
        string[] addresses = ["10.0.0.17", "203.0.113.17"];
        var rows = new List<(string What, double Median, double P90)>
        {
            Measure("cluster CA (RSA 2048, in the create request)", n, () => ClusterPki.CreateCertificateAuthority("bench", Guid.NewGuid().ToString())),
            Measure("etcd / front-proxy CA (RSA 2048, each)", n, () => ClusterPki.CreateNamedAuthority("etcd-ca", Guid.NewGuid().ToString())),
            Measure("service-account key (RSA 2048)", n, () => ClusterPki.CreateServiceAccountKey()),
            Measure("node bundle credentials, ECDSA P-256 (as shipped)", n, () =>
            {
                NodeCertificates.JoinKubeconfig(ca, "https://203.0.113.10:6443", "bench", "bench-default-worker-0", TimeSpan.FromHours(2));
                NodeCertificates.KubeletServing(ca, "bench-default-worker-0", addresses, TimeSpan.FromDays(365));
            }),
            Measure("node bundle credentials, RSA 2048 (for comparison)", n, () =>
            {
                ClusterPki.IssueCertificate(ca, "system:node:x", ["system:nodes"], CertificatePurpose.Client, null, TimeSpan.FromHours(2));
                ClusterPki.IssueCertificate(ca, "system:node:x", ["system:nodes"], CertificatePurpose.Server,
                    new SubjectAlternativeNames(["x"], addresses.Select(System.Net.IPAddress.Parse).ToList()), TimeSpan.FromDays(365));
            }),
        };
        var md = new StringBuilder();
        md.AppendLine($"# PKI cost — {DateTime.UtcNow:yyyy-MM-dd}, {Environment.ProcessorCount} cores, .NET {Environment.Version}, {n} iterations each");
        md.AppendLine();
        md.AppendLine("| operation | median ms | p90 ms |");
        md.AppendLine("|---|---:|---:|");
        foreach (var (what, median, p90) in rows) md.AppendLine($"| {what} | {median:F1} | {p90:F1} |");
        Console.Write(md);
        if (opts.GetValueOrDefault("out") is { } file) File.WriteAllText(file, md.ToString());
        return 0;
    }

    private static (string, double, double) Measure(string what, int n, Action action)
    {
        action(); // warm-up
        var times = new List<double>();
        for (var i = 0; i < n; i++)
        {
            var sw = Stopwatch.StartNew();
            action();
            times.Add(sw.Elapsed.TotalMilliseconds);
        }
        times.Sort();
        return (what, times[n / 2], times[Math.Min(n - 1, (int)(n * 0.9))]);
    }
}
