using System.Diagnostics;
using System.Text.RegularExpressions;

/// <summary>
/// The server's RSA key pool (keys for new clusters' CAs, made in the background from 10 s after start: ≈ 3 s of CPU).
/// Benchmarks wait for it to be full so that its key generation does not land in what they measure. Shared by
/// Magnetar.Bench and Magnetar.CreateBench (a linked source file).
/// </summary>
public static class KeyPool
{
    /// <summary>Polls the server's /metrics until <c>magnetar_pki_key_pool_missing</c> is 0; returns how long that took.</summary>
    public static async Task<TimeSpan> WaitFullAsync(HttpClient http, TimeSpan limit)
    {
        var wait = Stopwatch.StartNew();
        while (!Regex.IsMatch(await http.GetStringAsync("/metrics"), @"^magnetar_pki_key_pool_missing(\{[^}]*\})? 0$", RegexOptions.Multiline))
        {
            if (wait.Elapsed > limit) throw new TimeoutException($"the server's RSA key pool did not fill within {limit.TotalMinutes:F0} minutes");
            await Task.Delay(250);
        }
        return wait.Elapsed;
    }
}
