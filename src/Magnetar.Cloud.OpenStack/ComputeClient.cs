using System.Net;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;

namespace Magnetar.Cloud.OpenStack;

public sealed record ServerAddress(string Addr, int Version, [property: JsonPropertyName("OS-EXT-IPS:type")] string? Type);
public sealed record ServerFault(string? Message, int? Code, string? Details);
public sealed record ServerFlavor(string? OriginalName, int? Vcpus, int? Ram);
public sealed record AttachedVolume(string Id, bool? DeleteOnTermination);
public sealed record Server(string Id, string Name, string Status, Dictionary<string, string>? Metadata,
    Dictionary<string, List<ServerAddress>>? Addresses, ServerFault? Fault, List<string>? Tags,
    [property: JsonPropertyName("OS-EXT-STS:task_state")] string? TaskState = null,
    ServerFlavor? Flavor = null,
    [property: JsonPropertyName("os-extended-volumes:volumes_attached")] List<AttachedVolume>? VolumesAttached = null,
    /// <summary>Base64 user-data: present only for callers Nova's policy lets see extended attributes (admins by default).</summary>
    [property: JsonPropertyName("OS-EXT-SRV-ATTR:user_data")] string? UserData = null,
    DateTimeOffset? Created = null,
    /// <summary>When the compute host finished building it (Nova's launched_at, UTC without an offset).</summary>
    [property: JsonPropertyName("OS-SRV-USG:launched_at")] DateTime? LaunchedAt = null)
{
    /// <summary>The first fixed IPv4 address on any network, or null while Nova has none.</summary>
    public string? FixedAddress => Addresses?.Values.SelectMany(a => a).FirstOrDefault(a => a.Version == 4 && a.Type != "floating")?.Addr;
    /// <summary>Every address Nova lists for the server (fixed and floating, both families).</summary>
    public IEnumerable<string> AllAddresses => Addresses?.Values.SelectMany(a => a).Select(a => a.Addr).Where(a => !string.IsNullOrEmpty(a)) ?? [];
}
public sealed record Flavor(string Id, string Name, int Vcpus, int Ram, int Disk);
public sealed record ServerGroup(string Id, string Name, string? Policy, List<string>? Members);

/// <summary>A block device of a new server (Nova's block_device_mapping_v2).</summary>
public sealed record BlockDevice(string SourceType, string DestinationType, int BootIndex, int? VolumeSize, string? Uuid, bool DeleteOnTermination);

/// <summary>Nova, microversion 2.67 on every call (tags and server group policy in create bodies, BDM volume types).</summary>
public sealed class ComputeClient(HttpClient http, KeystoneSession session, ILogger logger)
    : OpenStackServiceClient(http, session, "compute", "nova", logger)
{
    public const string Microversion = "2.67";

    protected override IEnumerable<(string, string)> MicroversionHeaders(string v)
        => [("OpenStack-API-Version", "compute " + v), ("X-OpenStack-Nova-API-Version", v)];

    public Task<List<Server>> ListServersByTagAsync(string tag, CancellationToken ct)
        => ListAsync<Server>($"/servers/detail?tags={Q(tag)}", "servers", "list servers", ct, Microversion);

    public async Task<Server> CreateServerAsync(string name, string imageId, string flavorId, string networkId, IEnumerable<string> securityGroups,
        string? keyName, string userDataBase64, string? serverGroupId, IReadOnlyDictionary<string, string> metadata, IEnumerable<string> tags,
        IReadOnlyList<BlockDevice> blockDevices, CancellationToken ct)
    {
        var server = new JsonObject
        {
            ["name"] = name,
            ["imageRef"] = blockDevices.Any(b => b.BootIndex == 0) ? "" : imageId,
            ["flavorRef"] = flavorId,
            ["networks"] = new JsonArray(new JsonObject { ["uuid"] = networkId }),
            ["security_groups"] = new JsonArray(securityGroups.Select(s => (JsonNode)new JsonObject { ["name"] = s }).ToArray()),
            ["user_data"] = userDataBase64,
            ["metadata"] = new JsonObject(metadata.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
            ["tags"] = new JsonArray(tags.Select(t => (JsonNode)t).ToArray()),
        };
        if (keyName is not null) server["key_name"] = keyName;
        if (blockDevices.Count > 0)
            server["block_device_mapping_v2"] = new JsonArray(blockDevices.Select(b => (JsonNode)JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(b, Json))!).ToArray());
        var body = new JsonObject { ["server"] = server };
        if (serverGroupId is not null) body["os:scheduler_hints"] = new JsonObject { ["group"] = serverGroupId };
        var answer = await SendAsync(HttpMethod.Post, "/servers", body, $"create server {name}", ct, Microversion, HttpStatusCode.Accepted);
        var id = (string?)answer?["server"]?["id"] ?? throw new OpenStackApiException(ServiceName, $"create server {name}", HttpStatusCode.Accepted, "no server id in the answer", null);
        return new Server(id, name, "BUILD", metadata.ToDictionary(), null, null, tags.ToList());
    }

    public Task<Server?> FindServerAsync(string id, CancellationToken ct)
        => FindAsync<Server>($"/servers/{Q(id)}", "server", $"show server {id}", ct, Microversion);

    public Task<bool> DeleteServerAsync(string id, CancellationToken ct) => DeleteAsync($"/servers/{Q(id)}", $"delete server {id}", ct, Microversion);

    /// <summary>
    /// A flavor by id or name (null when neither exists), as the caller may use it. One list answers both (templates name flavors more often than
    /// not, and a show by a name costs a 404 first); only a value the list does not hold (beyond its first page, or a
    /// flavor hidden from lists) is asked for by id.
    /// </summary>
    public async Task<Flavor?> FindFlavorAsync(string idOrName, CancellationToken ct)
    {
        var all = await ListAsync<Flavor>("/flavors/detail?is_public=None", "flavors", "list flavors", ct, Microversion);
        return all.FirstOrDefault(f => f.Id == idOrName) ?? all.FirstOrDefault(f => f.Name == idOrName)
            ?? await FindAsync<Flavor>($"/flavors/{Q(idOrName)}", "flavor", $"show flavor {idOrName}", ct, Microversion);
    }

    public async Task<bool> KeypairExistsAsync(string name, CancellationToken ct)
        => await FindAsync<JsonObject>($"/os-keypairs/{Q(name)}", "keypair", $"show keypair {name}", ct, Microversion) is not null;

    public Task<List<ServerGroup>> ListServerGroupsAsync(CancellationToken ct)
        => ListAsync<ServerGroup>("/os-server-groups", "server_groups", "list server groups", ct, Microversion);

    public async Task<ServerGroup> CreateServerGroupAsync(string name, string policy, CancellationToken ct)
    {
        var answer = await SendAsync(HttpMethod.Post, "/os-server-groups",
            new JsonObject { ["server_group"] = new JsonObject { ["name"] = name, ["policy"] = policy } },
            $"create server group {name}", ct, Microversion, HttpStatusCode.OK);
        return Read<ServerGroup>(answer?["server_group"])!;
    }

    public Task<bool> DeleteServerGroupAsync(string id, CancellationToken ct)
        => DeleteAsync($"/os-server-groups/{Q(id)}", $"delete server group {id}", ct, Microversion);
}
