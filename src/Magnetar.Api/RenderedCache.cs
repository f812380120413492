using System.Collections.Concurrent;
using Magnetar.Persistence;
using Microsoft.EntityFrameworkCore;

namespace Magnetar.Api;

/// <summary>
/// Cluster lists and shows as rendered bytes, each tagged with the database's list version (<see cref="ListVersion"/>)
/// read <em>before</em> the rows were: a page is served again only while that version is still the current one, so a
/// write by any replica (or by hand) that changes what it shows makes it stale at once — the triggers bump the version in
/// the writing transaction. A page rendered from rows newer than its tag is only re-rendered once more, never served stale.
/// Bounded by <see cref="ApiOptions.RenderedCacheBytes"/>: when full, it starts over.
/// </summary>
public sealed class RenderedCache(ApiOptions options)
{
    private readonly ConcurrentDictionary<string, (long Version, byte[] Body)> pages = new();
    private long bytes, hits, misses;

    public bool Enabled => options.RenderedCacheBytes > 0;

    public (long Hits, long Misses, int Pages, long Bytes) Counters => (Interlocked.Read(ref hits), Interlocked.Read(ref misses), pages.Count, Interlocked.Read(ref bytes));

    /// <summary>The current list version, or null when the cache is off.</summary>
    public async Task<long?> VersionAsync(MagnetarDbContext db, CancellationToken ct)
        => Enabled ? await db.ListVersions.AsNoTracking().Where(v => v.Name == ListVersion.Clusters).Select(v => (long?)v.Version).FirstOrDefaultAsync(ct) : null;

    public byte[]? Get(string key, long? version)
    {
        if (version is { } v && pages.TryGetValue(key, out var page) && page.Version == v)
        {
            Interlocked.Increment(ref hits);
            return page.Body;
        }
        Interlocked.Increment(ref misses);
        return null;
    }

    public void Put(string key, long? version, byte[] body)
    {
        if (version is not { } v || body.Length > options.RenderedCacheBytes / 4) return;
        if (Interlocked.Add(ref bytes, body.Length) > options.RenderedCacheBytes)
        {
            pages.Clear();
            Interlocked.Exchange(ref bytes, body.Length);
        }
        if (pages.TryGetValue(key, out var old)) Interlocked.Add(ref bytes, -old.Body.Length);
        pages[key] = (v, body);
    }
}
