using System.Globalization;
using System.Runtime.InteropServices;
using System.Diagnostics;
using System.Text;

/// <summary>What every benchmark mode needs: a free loopback port, a process's RSS, percentiles, JSON bodies, psql.</summary>
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
}
