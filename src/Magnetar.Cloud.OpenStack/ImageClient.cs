using Microsoft.Extensions.Logging;

namespace Magnetar.Cloud.OpenStack;

public sealed record Image(string Id, string Name, string Status, string? OsDistro);

/// <summary>Glance v2.</summary>
public sealed class ImageClient(HttpClient http, KeystoneSession session, ILogger logger)
    : OpenStackServiceClient(http, session, "image", "glance", logger)
{
    /// <summary>An image the caller may use, by id or else by name; null when none (or several share the name).</summary>
    public async Task<Image?> FindImageAsync(string idOrName, CancellationToken ct)
    {
        if (Guid.TryParse(idOrName, out _))
        {
            try
            {
                var node = await GetAsync($"/v2/images/{Q(idOrName)}", $"show image {idOrName}", ct);
                if (Read<Image>(node) is { } byId) return byId;
            }
            catch (OpenStackNotFoundException) { }
        }
        var named = await ListAsync<Image>($"/v2/images?name={Q(idOrName)}", "images", $"find image {idOrName}", ct);
        return named.Count == 1 ? named[0] : null;
    }
}
