using Magnetar.Domain;

namespace Magnetar.Api;

/// <summary>Magnum's v1 API objects and their constraints (magnum/api/controllers/v1/*.py).</summary>
public static class Schemas
{
    public static readonly string[] Coes = ["kubernetes", "swarm", "swarm-mode", "mesos", "dcos"];
    public static readonly string[] ServerTypes = ["vm", "bm"];
    public static readonly string[] NetworkDrivers = ["calico", "cilium", "flannel"];
    public static readonly string[] VolumeDrivers = ["cinder"];

    public static readonly Schema ClusterTemplate = new("cluster_template",
        Field.Ro("uuid"),
        Field.Str("name"),
        Field.Str("coe", 0) with { Allowed = Coes, Mandatory = true, Nullable = false },
        Field.Str("image_id") with { Mandatory = true, Nullable = false },
        Field.Str("flavor_id"),
        Field.Str("master_flavor_id"),
        Field.Str("dns_nameserver"),
        Field.Str("keypair_id") with { EmptyIsNull = true },
        Field.Str("external_network_id"),
        Field.Str("fixed_network"),
        Field.Str("fixed_subnet"),
        Field.Str("network_driver"),
        Field.Int("apiserver_port", 1024, 65535),
        Field.Int("docker_volume_size", 1),
        Field.Str("cluster_distro"),
        Field.Ro("links"),
        Field.Str("http_proxy"),
        Field.Str("https_proxy"),
        Field.Str("no_proxy"),
        Field.Str("volume_driver"),
        Field.Bool("registry_enabled"),
        new Field("labels", FieldKind.Labels),
        Field.Bool("tls_disabled"),
        Field.Bool("public"),
        Field.Str("server_type", 0) with { Allowed = ServerTypes },
        Field.Str("insecure_registry"),
        Field.Str("docker_storage_driver"),
        Field.Bool("master_lb_enabled"),
        Field.Bool("floating_ip_enabled"),
        Field.Ro("project_id"),
        Field.Ro("user_id"),
        Field.Bool("hidden"),
        Field.Str("tags", 0, 255),
        Field.Str("driver"),
        Field.Ro("created_at"),
        Field.Ro("updated_at"));

    public static readonly string[] TemplateNonRemovable =
        ["/network_driver", "/external_network_id", "/tls_disabled", "/public", "/server_type", "/coe", "/registry_enabled", "/cluster_distro", "/hidden", "/image_id"];

    public static readonly Schema Cluster = new("cluster",
        Field.Ro("uuid"),
        Field.Str("name", 1, 242) with { Pattern = ResourceNames.ClusterNamePattern() },
        Field.Str("cluster_template_id", 1, 255) with { Mandatory = true, Nullable = false },
        Field.Str("keypair") with { EmptyIsNull = true },
        Field.Int("node_count", 0),
        Field.Int("master_count", 1),
        Field.Int("docker_volume_size", 1),
        new Field("labels", FieldKind.Labels),
        Field.Str("master_flavor_id"),
        Field.Str("flavor_id"),
        Field.Int("create_timeout", 0),
        Field.Ro("links"),
        Field.Ro("stack_id"),
        Field.Str("status", 0) with { Allowed = ClusterStatus.All },
        Field.Str("status_reason", 0, null),
        Field.Str("health_status", 0) with { Allowed = [HealthStatus.Healthy, HealthStatus.Unhealthy, HealthStatus.Unknown] },
        new Field("health_status_reason", FieldKind.StringMap),
        Field.Str("discovery_url", 0, null),
        Field.Ro("api_address"),
        Field.Ro("coe_version"),
        Field.Ro("container_version"),
        Field.Ro("project_id"),
        Field.Ro("user_id"),
        Field.Ro("node_addresses"),
        Field.Ro("master_addresses"),
        new Field("faults", FieldKind.StringMap),
        Field.Str("fixed_network"),
        Field.Str("fixed_subnet"),
        Field.Bool("floating_ip_enabled"),
        Field.Bool("merge_labels"),
        new Field("labels_overridden", FieldKind.Labels),
        new Field("labels_added", FieldKind.Labels),
        new Field("labels_skipped", FieldKind.Labels),
        Field.Bool("master_lb_enabled"),
        Field.Ro("created_at"),
        Field.Ro("updated_at"),
        Field.Ro("conditions"));

    public static readonly string[] ClusterInternal =
        ["/api_address", "/node_addresses", "/master_addresses", "/stack_id", "/ca_cert_ref", "/magnum_cert_ref", "/trust_id",
         "/trustee_user_name", "/trustee_password", "/trustee_user_id", "/etcd_ca_cert_ref", "/front_proxy_ca_cert_ref", "/conditions"];

    /// <summary>Magnum's validation.cluster_update_allowed_properties.</summary>
    public static readonly string[] ClusterUpdatable = ["node_count", "health_status", "health_status_reason"];

    public static readonly Schema NodeGroup = new("nodegroup",
        Field.Int("id", 1) with { ReadOnly = true },
        Field.Ro("uuid"),
        Field.Str("name") with { Pattern = ResourceNames.ClusterNamePattern() },
        Field.Ro("cluster_id"),
        Field.Ro("project_id"),
        Field.Int("docker_volume_size", 1),
        new Field("labels", FieldKind.Labels),
        Field.Ro("links"),
        Field.Str("flavor_id"),
        Field.Str("image_id"),
        Field.Ro("node_addresses"),
        Field.Int("node_count", 0),
        Field.Str("role"),
        Field.Int("min_node_count", 0),
        Field.Int("max_node_count", 0),
        Field.Bool("is_default"),
        Field.Ro("stack_id"),
        Field.Ro("status"),
        Field.Ro("status_reason"),
        Field.Ro("version"),
        Field.Bool("merge_labels"),
        Field.Ro("labels_overridden"),
        Field.Ro("labels_added"),
        Field.Ro("labels_skipped"),
        Field.Ro("created_at"),
        Field.Ro("updated_at"));

    public static readonly string[] NodeGroupInternal =
        ["/name", "/cluster_id", "/project_id", "/docker_volume_size", "/labels", "/flavor_id", "/image_id", "/node_addresses",
         "/node_count", "/role", "/is_default", "/stack_id", "/status", "/status_reason", "/version"];

    public static readonly Schema Resize = new("cluster_resize_req",
        Field.Int("node_count", 0) with { Mandatory = true, Nullable = false },
        new Field("nodes_to_remove", FieldKind.StringList),
        Field.Str("nodegroup"));

    public static readonly Schema Upgrade = new("cluster_upgrade_req",
        Field.Int("max_batch_size", 1),
        Field.Str("nodegroup"),
        Field.Str("cluster_template") with { Mandatory = true, Nullable = false });

    public static readonly Schema Quota = new("quota",
        Field.Int("id", 1) with { ReadOnly = true },
        Field.Int("hard_limit", 0),
        Field.Str("project_id"),
        Field.Str("resource", 0) with { Allowed = ["Cluster"] },
        Field.Ro("created_at"),
        Field.Ro("updated_at"));

    public static readonly Schema Certificate = new("certificate",
        Field.Str("bay_uuid"),
        Field.Str("cluster_uuid"),
        Field.Ro("links"),
        Field.Str("csr", 1, 65536),
        Field.Str("pem", 0, null) with { ReadOnly = true },
        Field.Str("ca_cert_type", 0));
}
