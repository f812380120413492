using System.Text.RegularExpressions;

namespace Magnetar.Bootstrap.Addons;

/// <summary>The cluster labels the addons read — Magnum's names where Magnum has the setting.</summary>
public static partial class AddonLabels
{
    public const string CalicoTag = "calico_tag";
    public const string CalicoIpv4PoolIpip = "calico_ipv4pool_ipip";
    public const string CiliumTag = "cilium_tag";
    public const string FlannelTag = "flannel_tag";
    public const string FlannelCniTag = "flannel_cni_tag";
    public const string FlannelBackend = "flannel_backend";
    public const string FlannelNetworkSubnetLen = "flannel_network_subnetlen";

    public const string CloudProviderEnabled = "cloud_provider_enabled";
    public const string CloudProviderTag = "cloud_provider_tag";
    public const string OctaviaProvider = "octavia_provider";
    public const string OctaviaLbAlgorithm = "octavia_lb_algorithm";

    public const string CinderCsiEnabled = "cinder_csi_enabled";
    public const string CinderCsiPluginTag = "cinder_csi_plugin_tag";
    public const string CsiAttacherTag = "csi_attacher_tag";
    public const string CsiProvisionerTag = "csi_provisioner_tag";
    public const string CsiSnapshotterTag = "csi_snapshotter_tag";
    public const string CsiResizerTag = "csi_resizer_tag";
    public const string CsiNodeDriverRegistrarTag = "csi_node_driver_registrar_tag";
    public const string CsiLivenessProbeTag = "csi_liveness_probe_tag";

    public const string MetricsServerEnabled = "metrics_server_enabled";
    /// <summary>Magnetar's own (Magnum installs metrics-server from a Helm chart, <c>metrics_server_chart_tag</c>).</summary>
    public const string MetricsServerTag = "metrics_server_tag";

    /// <summary>Magnum's: the cluster-autoscaler runs in the cluster (Magnetar: with its externalgrpc provider).</summary>
    public const string AutoScalingEnabled = "auto_scaling_enabled";
    public const string AutoscalerTag = "autoscaler_tag";

    /// <summary>Every label that names an image tag; each is checked against <see cref="TagPattern"/> when set.</summary>
    public static readonly IReadOnlyList<string> TagLabels =
    [
        CalicoTag, CiliumTag, FlannelTag, FlannelCniTag, CloudProviderTag, CinderCsiPluginTag, CsiAttacherTag, CsiProvisionerTag,
        CsiSnapshotterTag, CsiResizerTag, CsiNodeDriverRegistrarTag, CsiLivenessProbeTag, MetricsServerTag, AutoscalerTag,
    ];

    /// <summary>Every true/false label.</summary>
    public static readonly IReadOnlyList<string> FlagLabels = [CloudProviderEnabled, CinderCsiEnabled, MetricsServerEnabled, AutoScalingEnabled];

    [GeneratedRegex(@"^v?[0-9]+\.[0-9]+\.[0-9]+([.-][0-9A-Za-z.-]+)?$")]
    public static partial Regex TagPattern();
}

/// <summary>Reads labels with validation; every failure is an <see cref="ArgumentException"/> naming the label.</summary>
internal sealed class LabelReader(IReadOnlyDictionary<string, string> labels)
{
    /// <summary>The label's value as given (not trimmed), or null when absent or blank.</summary>
    public string? Get(string key) => labels.TryGetValue(key, out var v) && !string.IsNullOrWhiteSpace(v) ? v : null;

    /// <summary>The image tag a label names, or <paramref name="fallback"/> when unset.</summary>
    public string Tag(string key, string fallback)
    {
        var value = Get(key);
        if (value is null) return fallback;
        if (!AddonLabels.TagPattern().IsMatch(value))
            throw new ArgumentException($"Label {key}='{value}' is not an image tag such as v1.2.3 or v1.2.3-suffix.", nameof(AddonValues.Labels));
        return value;
    }

    public bool Flag(string key, bool fallback)
    {
        var value = Get(key);
        if (value is null) return fallback;
        if (bool.TryParse(value, out var b)) return b;
        throw new ArgumentException($"Label {key}='{value}' must be true or false.", nameof(AddonValues.Labels));
    }

    /// <summary>Checks every tag and flag label up front, so a bad one fails whether or not its addon is enabled.</summary>
    public void ValidateAll()
    {
        foreach (var key in AddonLabels.TagLabels) Tag(key, "v0.0.0");
        foreach (var key in AddonLabels.FlagLabels) Flag(key, false);
    }
}
