using System.Data.Common;
using System.Globalization;
using Microsoft.EntityFrameworkCore;

namespace Magnetar.Persistence;

/// <summary>
/// Replicas of a release older than the <c>replicas</c> table cannot register; on PostgreSQL they are still seen by
/// their sessions: Magnetar (this release on) names its sessions (<c>application_name</c> <c>magnetar…</c>), older
/// releases left it empty, as Npgsql does. Sessions with an empty name on this database are attributed to local
/// processes through <c>/proc</c> where they run on this host (one entry per process), else grouped by client address.
/// psql, pg_dump and most tools name their sessions, so they do not count.
/// </summary>
public static class LegacyReplicas
{
    public static async Task<IReadOnlyList<ReplicaView>> FindAsync(MagnetarDbContext db, CancellationToken ct)
    {
        if (!db.Database.IsNpgsql()) return [];
        var sessions = new List<(string? Address, int Port)>();
        var conn = db.Database.GetDbConnection();
        var opened = conn.State != System.Data.ConnectionState.Open;
        if (opened) await conn.OpenAsync(ct);
        try
        {
            await using var cmd = conn.CreateCommand();
            cmd.CommandText = """
                SELECT host(client_addr), COALESCE(client_port, -1) FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
                  AND COALESCE(application_name, '') = ''
                """;
            await using DbDataReader r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) sessions.Add((r.IsDBNull(0) ? null : r.GetString(0), r.GetInt32(1)));
        }
        finally { if (opened) await conn.CloseAsync(); }
        if (sessions.Count == 0) return [];

        var byPort = LocalSocketOwners();
        var found = new List<ReplicaView>();
        foreach (var g in sessions.GroupBy(s => byPort.TryGetValue(s.Port, out var pid) && IsLocal(s.Address) ? pid : (int?)null))
        {
            if (g.Key is { } pid)
                found.Add(ReplicaView.Legacy($"pid {pid} on this host ({g.Count()} session(s); {CommandLine(pid)})", Environment.MachineName, pid));
            else
                foreach (var a in g.GroupBy(s => s.Address ?? "local socket"))
                    found.Add(ReplicaView.Legacy($"{a.Count()} session(s) from {a.Key}", a.Key, null));
        }
        return found;
    }

    private static bool IsLocal(string? address) => address is "127.0.0.1" or "::1" or null || address.StartsWith("::ffff:127.");

    /// <summary>Local TCP port → owning process, from /proc (empty where there is no /proc or it is not readable).</summary>
    private static Dictionary<int, int> LocalSocketOwners()
    {
        var result = new Dictionary<int, int>();
        try
        {
            var inodeToPort = new Dictionary<string, int>();
            foreach (var file in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
            {
                if (!File.Exists(file)) continue;
                foreach (var line in File.ReadLines(file).Skip(1))
                {
                    var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    if (f.Length < 10) continue;
                    var port = int.Parse(f[1][(f[1].LastIndexOf(':') + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                    inodeToPort.TryAdd(f[9], port);
                }
            }
            if (inodeToPort.Count == 0) return result;
            foreach (var dir in Directory.EnumerateDirectories("/proc"))
            {
                if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
                try
                {
                    foreach (var fd in Directory.EnumerateFiles(Path.Combine(dir, "fd")))
                    {
                        var target = new FileInfo(fd).LinkTarget;
                        if (target is not null && target.StartsWith("socket:[") && inodeToPort.TryGetValue(target[8..^1], out var port))
                            result.TryAdd(port, pid);
                    }
                }
                catch (Exception e) when (e is UnauthorizedAccessException or IOException) { }
            }
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException or FormatException) { }
        return result;
    }

    private static string CommandLine(int pid)
    {
        try
        {
            var args = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries);
            var text = string.Join(' ', args.Take(3));
            return text.Length > 120 ? text[..117] + "..." : text;
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException) { return "command line not readable"; }
    }
}
