using System.Globalization;
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
    public static string? StackId(Cluster c, bool clusterStacks) => c.StackId ?? (clusterStacks ? c.Uuid : null);

    public static int NodeCount(Cluster c) => c.NodeGroups.Where(n => n.Role != NodeGroupRoles.Master && !n.DeleteRequested).Sum(n => n.NodeCount);
    public static int MasterCount(Cluster c) => c.NodeGroups.Where(n => n.Role == NodeGroupRoles.Master).Sum(n => n.NodeCount);

    /// <summary>The list representation (Magnum's expand=False fields).</summary>
    public static JsonObject ClusterSummary(Cluster c, int nodeCount, int masterCount, string baseUrl, bool clusterStacks = false) => new()
    {
        ["uuid"] = c.Uuid,
        ["name"] = c.Name,
        ["cluster_template_id"] = c.ClusterTemplateId,
        ["keypair"] = c.Keypair,
        ["docker_volume_size"] = c.DockerVolumeSize,
        ["labels"] = Map(c.Labels),
        ["node_count"] = nodeCount,
        ["status"] = c.Status,
        ["master_flavor_id"] = c.MasterFlavorId,
        ["flavor_id"] = c.FlavorId,
        ["create_timeout"] = c.CreateTimeout,
        ["master_count"] = masterCount,
        ["stack_id"] = StackId(c, clusterStacks),
        ["health_status"] = c.HealthStatus,
        ["links"] = Links(baseUrl, $"clusters/{c.Uuid}"),
    };

    public static JsonObject Cluster(Cluster c, IReadOnlyDictionary<string, string> templateLabels, string baseUrl, bool withConditions, bool clusterStacks = false)
    {
        var diff = Labels.Compare(templateLabels, c.Labels);
        var o = new JsonObject
        {
            ["uuid"] = c.Uuid,
            ["name"] = c.Name,
            ["cluster_template_id"] = c.ClusterTemplateId,
            ["keypair"] = c.Keypair,
            ["docker_volume_size"] = c.DockerVolumeSize,
            ["labels"] = Map(c.Labels),
            ["labels_overridden"] = Map(diff.Overridden),
            ["labels_added"] = Map(diff.Added),
            ["labels_skipped"] = Map(diff.Skipped),
            ["master_flavor_id"] = c.MasterFlavorId,
            ["flavor_id"] = c.FlavorId,
            ["create_timeout"] = c.CreateTimeout,
            ["links"] = Links(baseUrl, $"clusters/{c.Uuid}"),
            ["stack_id"] = StackId(c, clusterStacks),
            ["status"] = c.Status,
            ["status_reason"] = c.StatusReason,
            ["health_status"] = c.HealthStatus,
            ["health_status_reason"] = c.HealthStatusReason is null ? new JsonObject() : Map(c.HealthStatusReason),
            ["discovery_url"] = c.DiscoveryUrl,
            ["api_address"] = c.ApiAddress,
            ["coe_version"] = c.CoeVersion,
            ["container_version"] = c.ContainerVersion,
            ["project_id"] = c.ProjectId,
            ["user_id"] = c.UserId,
            ["node_count"] = NodeCount(c),
            ["master_count"] = MasterCount(c),
            ["node_addresses"] = Strings(c.NodeGroups.Where(n => n.Role != NodeGroupRoles.Master).OrderBy(n => n.Id).SelectMany(n => n.NodeAddresses)),
            ["master_addresses"] = Strings(c.NodeGroups.Where(n => n.Role == NodeGroupRoles.Master).OrderBy(n => n.Id).SelectMany(n => n.NodeAddresses)),
            ["fixed_network"] = c.FixedNetwork,
            ["fixed_subnet"] = c.FixedSubnet,
            ["floating_ip_enabled"] = c.FloatingIpEnabled,
            ["master_lb_enabled"] = c.MasterLbEnabled,
            ["created_at"] = Time(c.CreatedAt),
            ["updated_at"] = Time(c.UpdatedAt),
        };
        if (withConditions)
        {
            if (ClusterStatus.IsFailed(c.Status))
                o["faults"] = Map(c.NodeGroups.Where(n => ClusterStatus.IsFailed(n.Status)).ToDictionary(n => n.Name, n => n.StatusReason ?? ""));
            // Magnetar extension: the per-step conditions behind status_reason.
            o["conditions"] = new JsonArray(c.Conditions.Select(x => (JsonNode?)new JsonObject
            {
                ["type"] = x.Type,
                ["status"] = x.Status ? "True" : "False",
                ["reason"] = x.Reason,
                ["message"] = x.Message,
                ["last_transition_time"] = Time(x.LastTransitionAt),
            }).ToArray());
        }
        return o;
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
