using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace Magnetar.Bootstrap.Addons;

/// <summary>
/// Renders the addons the first control-plane node applies after <c>kubeadm init</c>
/// (<c>kubectl apply --server-side -f /etc/kubernetes/magnetar/addons/</c>): the CNI, and with a cloud the
/// openstack-cloud-controller-manager, the Cinder CSI driver and their <c>cloud-config</c> Secret, and metrics-server.
/// Each comes from an upstream manifest pinned under Addons/Manifests/, parsed into typed objects and edited there.
/// </summary>
public static partial class AddonRenderer
{
    public const string CalicoFile = "10-cni-calico.yaml";
    public const string CiliumFile = "10-cni-cilium.yaml";
    public const string FlannelFile = "10-cni-flannel.yaml";
    public const string CloudConfigFile = "20-cloud-config.yaml";
    public const string CloudControllerManagerFile = "21-openstack-cloud-controller-manager.yaml";
    public const string CinderCsiFile = "30-cinder-csi.yaml";
    public const string MetricsServerFile = "40-metrics-server.yaml";
    public const string ClusterAutoscalerFile = "50-cluster-autoscaler.yaml";

    public static readonly IReadOnlyList<string> NetworkDrivers = ["calico", "cilium", "flannel"];

    /// <summary>The files, ordered by name. Invalid values throw <see cref="ArgumentException"/> naming the field or label.</summary>
    public static IReadOnlyList<RenderedAddon> Render(AddonValues values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var context = AddonContext.Validate(values);

        var addons = new List<RenderedAddon>
        {
            context.NetworkDriver switch
            {
                "calico" => CniAddons.Calico(context),
                "cilium" => CniAddons.Cilium(context),
                _ => CniAddons.Flannel(context),
            },
        };
        if (context.Cloud is not null)
        {
            var ccm = context.Labels.Flag(AddonLabels.CloudProviderEnabled, true);
            var csi = context.Labels.Flag(AddonLabels.CinderCsiEnabled, true);
            if (ccm || csi) addons.Add(OpenStackAddons.CloudConfigSecret(context, ccm));
            if (ccm) addons.Add(OpenStackAddons.CloudControllerManager(context));
            if (csi) addons.Add(OpenStackAddons.CinderCsi(context));
        }
        if (context.Labels.Flag(AddonLabels.MetricsServerEnabled, true)) addons.Add(MetricsServerAddon.Render(context));
        if (context.Labels.Flag(AddonLabels.AutoScalingEnabled, false))
            addons.Add(ClusterAutoscalerAddon.Render(context, values.Autoscaler
                ?? throw new ArgumentException($"Label {AddonLabels.AutoScalingEnabled}=true needs the autoscaler endpoint's address and the cluster's certificate.", nameof(AddonValues.Autoscaler))));
        return addons.OrderBy(a => a.FileName, StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// The cluster name the cloud-controller-manager (<c>--cluster-name</c>: its load balancers are named
    /// <c>kube_service_&lt;name&gt;_…</c>) and the Cinder CSI driver (<c>--cluster</c>: volume metadata) run with, so
    /// cluster delete finds what they created. Must equal the OpenStack driver's CloudControllerClusterName.
    /// </summary>
    public static string CloudClusterName(string clusterUuid) => $"magnetar-{clusterUuid}";

    [GeneratedRegex(@"^v?(?<major>[0-9]+)\.(?<minor>[0-9]+)(\.[0-9]+)?([-+][0-9A-Za-z.-]+)?$")]
    private static partial Regex KubernetesVersionPattern();

    [GeneratedRegex("^[0-9A-Za-z-]{1,64}$")]
    private static partial Regex UuidPattern();

    /// <summary>Validated values shared by the addon renderers.</summary>
    internal sealed record AddonContext(
        string ClusterUuid,
        string ClusterName,
        int KubernetesMinor,
        string NetworkDriver,
        IPNetwork PodNetwork,
        IPNetwork ServiceNetwork,
        LabelReader Labels,
        OpenStackCloudConfig? Cloud)
    {
        public string PodCidr => PodNetwork.ToString();

        public static AddonContext Validate(AddonValues v)
        {
            if (string.IsNullOrWhiteSpace(v.ClusterUuid) || !UuidPattern().IsMatch(v.ClusterUuid))
                throw new ArgumentException("ClusterUuid must be a UUID (letters, digits and dashes).", nameof(AddonValues.ClusterUuid));
            var version = KubernetesVersionPattern().Match(v.KubernetesVersion ?? "");
            if (!version.Success || version.Groups["major"].Value != "1")
                throw new ArgumentException($"KubernetesVersion '{v.KubernetesVersion}' is not a Kubernetes 1.x version such as v1.31.1.", nameof(AddonValues.KubernetesVersion));
            var minor = int.Parse(version.Groups["minor"].Value, System.Globalization.CultureInfo.InvariantCulture);

            var driver = (v.NetworkDriver ?? "").Trim().ToLowerInvariant();
            if (!NetworkDrivers.Contains(driver))
                throw new ArgumentException($"NetworkDriver '{v.NetworkDriver}' is not one of {string.Join(", ", NetworkDrivers)}.", nameof(AddonValues.NetworkDriver));

            var pods = ParseIpv4Cidr(v.PodCidr, nameof(AddonValues.PodCidr));
            var services = ParseIpv4Cidr(v.ServiceCidr, nameof(AddonValues.ServiceCidr));
            if (pods.Contains(services.BaseAddress) || services.Contains(pods.BaseAddress))
                throw new ArgumentException($"PodCidr {pods} overlaps ServiceCidr {services}.", nameof(AddonValues.PodCidr));

            var labels = new LabelReader(v.Labels ?? new Dictionary<string, string>());
            labels.ValidateAll();
            if (v.Cloud is not null) OpenStackAddons.Validate(v.Cloud);
            return new AddonContext(v.ClusterUuid, v.ClusterName ?? "", minor, driver, pods, services, labels, v.Cloud);
        }

        private static IPNetwork ParseIpv4Cidr(string? value, string field)
        {
            // IPNetwork.TryParse clears host bits silently: 10.100.0.1/16 must fail, not become 10.100.0.0/16.
            var slash = value?.IndexOf('/') ?? -1;
            if (string.IsNullOrWhiteSpace(value) || slash < 0 || !IPNetwork.TryParse(value, out var network)
                || !IPAddress.TryParse(value[..slash], out var address) || !address.Equals(network.BaseAddress))
                throw new ArgumentException($"{field} '{value}' is not a CIDR such as 10.100.0.0/16 (network address, no host bits).", field);
            if (network.BaseAddress.AddressFamily != AddressFamily.InterNetwork)
                throw new ArgumentException($"{field} '{value}' is not IPv4: clusters are single-stack IPv4.", field);
            return network;
        }
    }
}
