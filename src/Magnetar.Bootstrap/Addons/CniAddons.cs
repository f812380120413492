using System.Text.Json;
using System.Text.Json.Nodes;
using k8s.Models;
using static Magnetar.Bootstrap.Addons.ManifestEdits;

namespace Magnetar.Bootstrap.Addons;

/// <summary>The pod network: Calico, Cilium or flannel, with the pod CIDR set where each reads it.</summary>
internal static class CniAddons
{
    public static readonly string CalicoManifest = $"calico/{PinnedVersions.Calico}/calico.yaml";
    public static readonly string CiliumManifest = $"cilium/{PinnedVersions.Cilium}/cilium.yaml";
    public static readonly string FlannelManifest = $"flannel/{PinnedVersions.Flannel}/kube-flannel.yml";

    /// <summary>
    /// Calico (manifests/calico.yaml: Kubernetes datastore, calico-ipam, IPIP). The default IP pool comes from
    /// CALICO_IPV4POOL_CIDR, which upstream leaves commented out.
    /// </summary>
    public static RenderedAddon Calico(AddonRenderer.AddonContext c)
    {
        var tag = c.Labels.Tag(AddonLabels.CalicoTag, PinnedVersions.Calico);
        // Pod traffic between nodes must be encapsulated: Neutron's port security drops packets from pod addresses, and
        // Magnetar gives node ports no allowed-address-pairs for the pod CIDR. So the pool's IPIP mode stays Always.
        var ipip = c.Labels.Get(AddonLabels.CalicoIpv4PoolIpip);
        if (ipip is not null && !ipip.Equals("Always", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException(
                $"Label {AddonLabels.CalicoIpv4PoolIpip}='{ipip}' is not supported: only Always works on Magnetar's Neutron network " +
                "(node ports have no allowed-address-pairs for the pod CIDR, so unencapsulated pod traffic is dropped).", nameof(AddonValues.Labels));
        if (c.PodNetwork.PrefixLength > 26)
            throw new ArgumentException($"PodCidr {c.PodCidr} is smaller than one Calico IPAM block (/26).", nameof(AddonValues.PodCidr));

        var objects = ManifestSet.Load(CalicoManifest);
        var node = Container(objects.Get<V1DaemonSet>("calico-node", "kube-system").Spec.Template.Spec, "calico-node");
        AddEnv(node, "CALICO_IPV4POOL_CIDR", c.PodCidr);
        if (Env(node, "CALICO_IPV4POOL_IPIP") != "Always")
            throw new InvalidOperationException("Pinned Calico manifest: CALICO_IPV4POOL_IPIP is no longer Always.");
        foreach (var image in new[] { "calico/cni", "calico/node", "calico/kube-controllers" }) Retag(objects, image, tag);
        return new RenderedAddon("calico", tag, AddonRenderer.CalicoFile,
            objects.ToYaml(Header("calico", tag, CalicoManifest)));
    }

    /// <summary>
    /// Cilium with kube-proxy (no replacement), VXLAN tunnel and cluster-pool IPAM, from a static manifest rendered
    /// from the pinned Helm chart (see Addons/README.md). The operator hands out per-node /24s from cluster-pool-ipv4-cidr.
    /// </summary>
    public static RenderedAddon Cilium(AddonRenderer.AddonContext c)
    {
        var tag = c.Labels.Tag(AddonLabels.CiliumTag, PinnedVersions.Cilium);
        if (c.KubernetesMinor < PinnedVersions.CiliumMinimumKubernetesMinor)
            throw new ArgumentException(
                $"KubernetesVersion 1.{c.KubernetesMinor} is older than the pinned Cilium manifest supports (1.{PinnedVersions.CiliumMinimumKubernetesMinor}).",
                nameof(AddonValues.KubernetesVersion));

        var objects = ManifestSet.Load(CiliumManifest);
        var config = objects.Get<V1ConfigMap>("cilium-config", "kube-system");
        Expect(config, "ipam", "cluster-pool");
        Expect(config, "kube-proxy-replacement", "false");
        Expect(config, "routing-mode", "tunnel");
        var maskSize = int.Parse(Expect(config, "cluster-pool-ipv4-mask-size", null), System.Globalization.CultureInfo.InvariantCulture);
        if (c.PodNetwork.PrefixLength > maskSize)
            throw new ArgumentException($"PodCidr {c.PodCidr} is smaller than one node's Cilium pod range (/{maskSize}).", nameof(AddonValues.PodCidr));
        Expect(config, "cluster-pool-ipv4-cidr", null);
        config.Data["cluster-pool-ipv4-cidr"] = c.PodCidr;
        Retag(objects, "cilium/cilium", tag);
        Retag(objects, "cilium/operator-generic", tag);
        return new RenderedAddon("cilium", tag, AddonRenderer.CiliumFile,
            objects.ToYaml(Header("cilium", tag, CiliumManifest)));
    }

    /// <summary>flannel (Documentation/kube-flannel.yml, VXLAN): the network comes from net-conf.json's Network.</summary>
    public static RenderedAddon Flannel(AddonRenderer.AddonContext c)
    {
        var tag = c.Labels.Tag(AddonLabels.FlannelTag, PinnedVersions.Flannel);
        var cniTag = c.Labels.Tag(AddonLabels.FlannelCniTag, PinnedVersions.FlannelCniPlugin);
        var backend = c.Labels.Get(AddonLabels.FlannelBackend) ?? "vxlan";
        if (!backend.Equals("vxlan", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException(
                $"Label {AddonLabels.FlannelBackend}='{backend}' is not supported: only vxlan works on Magnetar's Neutron network " +
                "(host-gw sends pod addresses unencapsulated, which port security drops; flannel removed udp).", nameof(AddonValues.Labels));
        var subnetLen = 24;
        if (c.Labels.Get(AddonLabels.FlannelNetworkSubnetLen) is { } len
            && !(int.TryParse(len, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out subnetLen) && subnetLen is >= 16 and <= 28))
            throw new ArgumentException($"Label {AddonLabels.FlannelNetworkSubnetLen}='{len}' must be a prefix length from 16 to 28.", nameof(AddonValues.Labels));
        if (c.PodNetwork.PrefixLength > subnetLen)
            throw new ArgumentException($"PodCidr {c.PodCidr} is smaller than one node's flannel subnet (/{subnetLen}).", nameof(AddonValues.PodCidr));

        var objects = ManifestSet.Load(FlannelManifest);
        var config = objects.Get<V1ConfigMap>("kube-flannel-cfg", "kube-flannel");
        var netConf = JsonNode.Parse(Expect(config, "net-conf.json", null))?.AsObject()
            ?? throw new InvalidOperationException("Pinned flannel manifest: net-conf.json is not a JSON object.");
        if (netConf["Network"] is null || netConf["Backend"]?["Type"]?.GetValue<string>() != "vxlan")
            throw new InvalidOperationException("Pinned flannel manifest: net-conf.json has no Network or its backend is not vxlan.");
        netConf["Network"] = c.PodCidr;
        netConf["SubnetLen"] = subnetLen;
        config.Data["net-conf.json"] = netConf.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
        Retag(objects, "flannel-io/flannel", tag);
        Retag(objects, "flannel-io/flannel-cni-plugin", cniTag);
        return new RenderedAddon("flannel", tag, AddonRenderer.FlannelFile,
            objects.ToYaml(Header("flannel", tag, FlannelManifest)));
    }

    /// <summary>The value of a ConfigMap key, which must exist (and equal <paramref name="expected"/> when given).</summary>
    private static string Expect(V1ConfigMap config, string key, string? expected)
    {
        if (config.Data is null || !config.Data.TryGetValue(key, out var value))
            throw new InvalidOperationException($"Pinned manifest: ConfigMap {config.Metadata.Name} has no key {key}.");
        if (expected is not null && value != expected)
            throw new InvalidOperationException($"Pinned manifest: ConfigMap {config.Metadata.Name} {key} is '{value}', not '{expected}'.");
        return value;
    }

    internal static string Header(string name, string tag, string manifest) =>
        $"Magnetar addon {name} {tag}, rendered from the pinned upstream manifest {manifest}\n" +
        "(src/Magnetar.Bootstrap/Addons). Applied with kubectl apply --server-side; local edits are overwritten.";
}
