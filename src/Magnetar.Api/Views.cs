using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Magnetar.Domain;
using Microsoft.AspNetCore.Http;

namespace Magnetar.Api;

/// <summary>Renders domain objects as Magnum's v1 JSON representations.</summary>
public static class Views
{
    public static string BaseUrl(HttpContext http, string? configuredPublicUrl)
        => !string.IsNullOrEmpty(configuredPublicUrl)
            ? configuredPublicUrl.TrimEnd('/')
            : $"{http.Request.Scheme}://{http.Request.Host}{http.Request.PathBase}";

    public static string? Time(DateTimeOffset? t)
        => t?.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'+00:00'", CultureInfo.InvariantCulture);

    public static JsonArray Links(string baseUrl, string path) =>
    [
        new JsonObject { ["href"] = $"{baseUrl}/v1/{path}", ["rel"] = "self" },
        new JsonObject { ["href"] = $"{baseUrl}/{path}", ["rel"] = "bookmark" },
    ];

    public static JsonObject Map(IReadOnlyDictionary<string, string>? map)
    {
        var o = new JsonObject();
        if (map is null) return o;
        foreach (var (k, v) in map) o[k] = v;
        return o;
    }

    private static JsonArray Strings(IEnumerable<string> items) => new(items.Select(i => (JsonNode?)JsonValue.Create(i)).ToArray());

    public static JsonObject Template(ClusterTemplate t, string baseUrl) => new()
    {
        ["uuid"] = t.Uuid,
        ["name"] = t.Name,
        ["coe"] = t.Coe,
        ["image_id"] = t.ImageId,
        ["flavor_id"] = t.FlavorId,
        ["master_flavor_id"] = t.MasterFlavorId,
        ["dns_nameserver"] = t.DnsNameserver,
        ["keypair_id"] = t.KeypairId,
        ["external_network_id"] = t.ExternalNetworkId,
        ["fixed_network"] = t.FixedNetwork,
        ["fixed_subnet"] = t.FixedSubnet,
        ["network_driver"] = t.NetworkDriver ?? ClusterDefaults.NetworkDriver, // rows made before the default was filled in
        ["apiserver_port"] = t.ApiserverPort,
        ["docker_volume_size"] = t.DockerVolumeSize,
        ["cluster_distro"] = t.ClusterDistro,
        ["links"] = Links(baseUrl, $"clustertemplates/{t.Uuid}"),
        ["http_proxy"] = t.HttpProxy,
        ["https_proxy"] = t.HttpsProxy,
        ["no_proxy"] = t.NoProxy,
        ["volume_driver"] = t.VolumeDriver,
        ["registry_enabled"] = t.RegistryEnabled,
        ["labels"] = Map(t.Labels),
        ["tls_disabled"] = t.TlsDisabled,
        ["public"] = t.Public,
        ["server_type"] = t.ServerType,
        ["insecure_registry"] = t.InsecureRegistry,
        ["docker_storage_driver"] = t.DockerStorageDriver,
        ["master_lb_enabled"] = t.MasterLbEnabled,
        ["floating_ip_enabled"] = t.FloatingIpEnabled,
        ["project_id"] = t.ProjectId,
        ["user_id"] = t.UserId,
        ["hidden"] = t.Hidden,
        ["tags"] = t.Tags,
        ["driver"] = t.Driver,
        ["created_at"] = Time(t.CreatedAt),
        ["updated_at"] = Time(t.UpdatedAt),
    };

    /// <summary>Magnum's stack_id: the cluster's uuid where the standalone orchestration endpoint describes clusters as stacks (<see cref="ApiOptions.ClusterStacks"/>), else null.</summary>
    public static string? StackId(Cluster c, bool clusterStacks) => StackId(c.StackId, c.Uuid, clusterStacks);

    private static string? StackId(string? stackId, string uuid, bool clusterStacks) => stackId ?? (clusterStacks ? uuid : null);

    public static int NodeCount(Cluster c) => c.NodeGroups.Where(n => n.Role != NodeGroupRoles.Master && !n.DeleteRequested).Sum(n => n.NodeCount);
    public static int MasterCount(Cluster c) => c.NodeGroups.Where(n => n.Role == NodeGroupRoles.Master).Sum(n => n.NodeCount);

    /// <summary>The list representation (Magnum's expand=False fields), from a projection of the columns it needs.</summary>
    public static void WriteClusterSummary(Utf8JsonWriter w, ClusterSummaryRow c, string baseUrl, bool clusterStacks)
    {
        WriteClusterHead(w, c.Uuid, c.Name, c.ClusterTemplateId, c.Keypair, c.DockerVolumeSize, c.Labels);
        w.WriteNumber("node_count", c.NodeCount);
        w.WriteString("status", c.Status);
        w.WriteString("master_flavor_id", c.MasterFlavorId);
        w.WriteString("flavor_id", c.FlavorId);
        w.WriteNumber("create_timeout", c.CreateTimeout);
        w.WriteNumber("master_count", c.MasterCount);
        w.WriteString("stack_id", StackId(c.StackId, c.Uuid, clusterStacks));
        w.WriteString("health_status", c.HealthStatus);
        WriteLinks(w, baseUrl, "clusters/", c.Uuid);
        w.WriteEndObject();
    }

    /// <summary>A cluster as Magnum's show (and the detail list, without the conditions) renders it.</summary>
    public static JsonObject Cluster(Cluster c, IReadOnlyDictionary<string, string> templateLabels, string baseUrl, bool withConditions, bool clusterStacks = false)
        => (JsonObject)JsonBytes.ToNode(w => WriteCluster(w, c, templateLabels, baseUrl, withConditions, clusterStacks));

    public static void WriteCluster(Utf8JsonWriter w, Cluster c, IReadOnlyDictionary<string, string> templateLabels, string baseUrl, bool withConditions, bool clusterStacks = false)
    {
        var diff = Labels.Compare(templateLabels, c.Labels);
        WriteClusterHead(w, c.Uuid, c.Name, c.ClusterTemplateId, c.Keypair, c.DockerVolumeSize, c.Labels);
        WriteMap(w, "labels_overridden", diff.Overridden);
        WriteMap(w, "labels_added", diff.Added);
        WriteMap(w, "labels_skipped", diff.Skipped);
        w.WriteString("master_flavor_id", c.MasterFlavorId);
        w.WriteString("flavor_id", c.FlavorId);
        w.WriteNumber("create_timeout", c.CreateTimeout);
        WriteLinks(w, baseUrl, "clusters/", c.Uuid);
        w.WriteString("stack_id", StackId(c, clusterStacks));
        w.WriteString("status", c.Status);
        w.WriteString("status_reason", c.StatusReason);
        w.WriteString("health_status", c.HealthStatus);
        WriteMap(w, "health_status_reason", c.HealthStatusReason);
        w.WriteString("discovery_url", c.DiscoveryUrl);
        w.WriteString("api_address", c.ApiAddress);
        w.WriteString("coe_version", c.CoeVersion);
        w.WriteString("container_version", c.ContainerVersion);
        w.WriteString("project_id", c.ProjectId);
        w.WriteString("user_id", c.UserId);
        w.WriteNumber("node_count", NodeCount(c));
        w.WriteNumber("master_count", MasterCount(c));
        w.WriteStartArray("node_addresses");
        foreach (var a in c.NodeGroups.Where(n => n.Role != NodeGroupRoles.Master).OrderBy(n => n.Id).SelectMany(n => n.NodeAddresses)) w.WriteStringValue(a);
        w.WriteEndArray();
        w.WriteStartArray("master_addresses");
        foreach (var a in c.NodeGroups.Where(n => n.Role == NodeGroupRoles.Master).OrderBy(n => n.Id).SelectMany(n => n.NodeAddresses)) w.WriteStringValue(a);
        w.WriteEndArray();
        w.WriteString("fixed_network", c.FixedNetwork);
        w.WriteString("fixed_subnet", c.FixedSubnet);
        w.WriteBoolean("floating_ip_enabled", c.FloatingIpEnabled);
        w.WriteBoolean("master_lb_enabled", c.MasterLbEnabled);
        w.WriteString("created_at", Time(c.CreatedAt));
        w.WriteString("updated_at", Time(c.UpdatedAt));
        if (withConditions)
        {
            if (ClusterStatus.IsFailed(c.Status))
                WriteMap(w, "faults", c.NodeGroups.Where(n => ClusterStatus.IsFailed(n.Status)).ToDictionary(n => n.Name, n => n.StatusReason ?? ""));
            // Magnetar extension: the per-step conditions behind status_reason.
            w.WriteStartArray("conditions");
            foreach (var x in c.Conditions)
            {
                w.WriteStartObject();
                w.WriteString("type", x.Type);
                w.WriteString("status", x.Status ? "True" : "False");
                w.WriteString("reason", x.Reason);
                w.WriteString("message", x.Message);
                w.WriteString("last_transition_time", Time(x.LastTransitionAt));
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        w.WriteEndObject();
    }

    /// <summary>Opens a cluster's object with the fields both representations start with, in Magnum's order.</summary>
    private static void WriteClusterHead(Utf8JsonWriter w, string uuid, string name, string templateId, string? keypair, int? dockerVolumeSize,
        IReadOnlyDictionary<string, string> labels)
    {
        w.WriteStartObject();
        w.WriteString("uuid", uuid);
        w.WriteString("name", name);
        w.WriteString("cluster_template_id", templateId);
        w.WriteString("keypair", keypair);
        Number(w, "docker_volume_size", dockerVolumeSize);
        WriteMap(w, "labels", labels);
    }

    private static void Number(Utf8JsonWriter w, string name, int? value)
    {
        if (value is { } v) w.WriteNumber(name, v);
        else w.WriteNull(name);
    }

    private static void WriteMap(Utf8JsonWriter w, string name, IReadOnlyDictionary<string, string>? map)
    {
        w.WriteStartObject(name);
        if (map is not null)
            foreach (var (k, v) in map) w.WriteString(k, v);
        w.WriteEndObject();
    }

    private static void WriteLinks(Utf8JsonWriter w, string baseUrl, string prefix, string id)
    {
        w.WriteStartArray("links");
        w.WriteStartObject();
        w.WriteString("href", string.Concat(baseUrl, "/v1/", prefix, id));
        w.WriteString("rel", "self");
        w.WriteEndObject();
        w.WriteStartObject();
        w.WriteString("href", string.Concat(baseUrl, "/", prefix, id));
        w.WriteString("rel", "bookmark");
        w.WriteEndObject();
        w.WriteEndArray();
    }

    public static JsonObject NodeGroup(NodeGroup n, Cluster cluster, string baseUrl, bool expand, bool clusterStacks = false)
    {
        var o = new JsonObject
        {
            ["uuid"] = n.Uuid,
            ["name"] = n.Name,
            ["flavor_id"] = n.FlavorId,
            ["node_count"] = n.NodeCount,
            ["role"] = n.Role,
            ["is_default"] = n.IsDefault,
            ["image_id"] = n.ImageId,
            ["status"] = n.Status,
            ["stack_id"] = n.StackId ?? (n.IsDefault ? StackId(cluster, clusterStacks) : null),
        };
        if (!expand) return o;
        var diff = Labels.Compare(cluster.Labels, n.Labels);
        o["id"] = n.Id;
        o["cluster_id"] = n.ClusterId;
        o["project_id"] = n.ProjectId;
        o["docker_volume_size"] = n.DockerVolumeSize;
        o["labels"] = Map(n.Labels);
        o["labels_overridden"] = Map(diff.Overridden);
        o["labels_added"] = Map(diff.Added);
        o["labels_skipped"] = Map(diff.Skipped);
        o["links"] = Links(baseUrl, $"clusters/{n.ClusterId}/nodegroups/{n.Uuid}");
        o["node_addresses"] = Strings(n.NodeAddresses);
        o["min_node_count"] = n.MinNodeCount;
        o["max_node_count"] = n.MaxNodeCount;
        o["status_reason"] = n.StatusReason;
        o["version"] = n.Version;
        o["created_at"] = Time(n.CreatedAt);
        o["updated_at"] = Time(n.UpdatedAt);
        return o;
    }

    public static JsonObject Quota(Quota q) => new()
    {
        ["id"] = q.Id,
        ["project_id"] = q.ProjectId,
        ["resource"] = q.Resource,
        ["hard_limit"] = q.HardLimit,
        ["created_at"] = Time(q.CreatedAt),
        ["updated_at"] = Time(q.UpdatedAt),
    };
}

/// <summary>The columns of a cluster its list representation shows, with its node counts added up by the database.</summary>
public sealed record ClusterSummaryRow(string Uuid, string Name, string ClusterTemplateId, string? Keypair, int? DockerVolumeSize,
    Dictionary<string, string> Labels, string Status, string? MasterFlavorId, string? FlavorId, int CreateTimeout, string? StackId,
    string? HealthStatus, int NodeCount, int MasterCount);
