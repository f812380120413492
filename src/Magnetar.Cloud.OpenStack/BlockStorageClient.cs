using System.Net;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;

namespace Magnetar.Cloud.OpenStack;

public sealed record VolumeAttachment(string? ServerId, string? AttachmentId);
public sealed record Volume(string Id, string? Name, string Status, int Size, Dictionary<string, string>? Metadata,
    List<VolumeAttachment>? Attachments, [property: JsonPropertyName("volume_type")] string? VolumeType = null);

/// <summary>Cinder v3 (catalog type block-storage, or volumev3 on older catalogs), microversion 3.60.</summary>
public sealed class BlockStorageClient(HttpClient http, KeystoneSession session, ILogger logger)
    : OpenStackServiceClient(http, session, "block-storage", "cinder", logger)
{
    public const string Microversion = "3.60";

    /// <summary>The metadata key cinder-csi-plugin writes on every volume it creates (value: its <c>--cluster</c> flag).</summary>
    public const string CsiClusterKey = "cinder.csi.openstack.org/cluster";

    protected override IEnumerable<(string, string)> MicroversionHeaders(string v) => [("OpenStack-API-Version", "volume " + v)];

    public Task<List<Volume>> ListVolumesAsync(CancellationToken ct)
        => ListAsync<Volume>("/volumes/detail", "volumes", "list volumes", ct, Microversion);

    public Task<Volume?> FindVolumeAsync(string id, CancellationToken ct)
        => FindAsync<Volume>($"/volumes/{Q(id)}", "volume", $"show volume {id}", ct, Microversion);

    public async Task<Volume> CreateVolumeAsync(string name, int sizeGb, IReadOnlyDictionary<string, string> metadata, CancellationToken ct)
    {
        var body = new JsonObject
        {
            ["volume"] = new JsonObject
            {
                ["name"] = name, ["size"] = sizeGb,
                ["metadata"] = new JsonObject(metadata.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
            },
        };
        var answer = await SendAsync(HttpMethod.Post, "/volumes", body, $"create volume {name}", ct, Microversion, HttpStatusCode.Accepted);
        return Read<Volume>(answer?["volume"]) ?? throw new OpenStackApiException(ServiceName, $"create volume {name}", HttpStatusCode.Accepted, "no volume in the answer", null);
    }

    public Task<bool> DeleteVolumeAsync(string id, CancellationToken ct)
        => DeleteAsync($"/volumes/{Q(id)}", $"delete volume {id}", ct, Microversion);
}
