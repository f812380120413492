namespace Magnetar.Bootstrap.Addons;

/// <summary>
/// The upstream versions whose manifests are embedded under Addons/Manifests/, and the image tags used when no label
/// overrides them. Bumping one is described in Addons/README.md.
/// </summary>
public static class PinnedVersions
{
    public const string Calico = "v3.29.7";
    public const string Cilium = "v1.18.12";
    public const string Flannel = "v0.28.9";
    /// <summary>The flannel CNI plugin image the pinned kube-flannel.yml names.</summary>
    public const string FlannelCniPlugin = "v1.9.1-flannel3";
    /// <summary>kubernetes/cloud-provider-openstack tag whose manifests/ are embedded (CCM and Cinder CSI).</summary>
    public const string CloudProviderOpenStackManifests = "v1.31.4";
    public const string MetricsServer = "v0.8.1";

    /// <summary>
    /// The newest cloud-provider-openstack release of each Kubernetes minor: the default openstack-cloud-controller-manager
    /// and cinder-csi-plugin image tag (labels <c>cloud_provider_tag</c>, <c>cinder_csi_plugin_tag</c> override).
    /// </summary>
    public static readonly IReadOnlyDictionary<int, string> CloudProviderOpenStackByMinor = new Dictionary<int, string>
    {
        [28] = "v1.28.3",
        [29] = "v1.29.1",
        [30] = "v1.30.3",
        [31] = "v1.31.4",
        [32] = "v1.32.1",
        [33] = "v1.33.1",
        [34] = "v1.34.1",
        [35] = "v1.35.0",
        [36] = "v1.36.0",
    };

    /// <summary>The cloud-provider-openstack release for a Kubernetes 1.x minor: its own, else the nearest one known.</summary>
    public static string CloudProviderOpenStackFor(int minor) => ForMinor(CloudProviderOpenStackByMinor, minor);

    /// <summary>A table's release for a Kubernetes 1.x minor: its own, else the nearest one known (the oldest or the newest).</summary>
    private static string ForMinor(IReadOnlyDictionary<int, string> table, int minor)
    {
        if (table.TryGetValue(minor, out var tag)) return tag;
        var keys = table.Keys.Order().ToList();
        return table[minor < keys[0] ? keys[0] : keys[^1]];
    }

    /// <summary>
    /// The cluster-autoscaler release for each Kubernetes minor (the autoscaler is released per minor and should match
    /// the cluster's; label <c>autoscaler_tag</c>, Magnum's name, overrides). Image registry.k8s.io/autoscaling/cluster-autoscaler.
    /// </summary>
    public static readonly IReadOnlyDictionary<int, string> ClusterAutoscalerByMinor = new Dictionary<int, string>
    {
        [28] = "v1.28.0",
        [29] = "v1.29.0",
        [30] = "v1.30.1",
        [31] = "v1.31.0",
        [32] = "v1.32.0",
        [33] = "v1.33.0",
        [34] = "v1.34.0",
        [35] = "v1.35.2",
        [36] = "v1.36.0",
    };

    /// <summary>The cluster-autoscaler release for a Kubernetes 1.x minor: its own, else the nearest one known.</summary>
    public static string ClusterAutoscalerFor(int minor) => ForMinor(ClusterAutoscalerByMinor, minor);

    /// <summary>Oldest Kubernetes minor the pinned Cilium manifest is valid for (it uses the pod field appArmorProfile, GA in 1.30).</summary>
    public const int CiliumMinimumKubernetesMinor = 30;
}
