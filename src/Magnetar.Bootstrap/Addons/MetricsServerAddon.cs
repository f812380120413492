using k8s.Models;
using static Magnetar.Bootstrap.Addons.ManifestEdits;

namespace Magnetar.Bootstrap.Addons;

/// <summary>
/// metrics-server (the release's components.yaml). It verifies kubelets' serving certificates against the cluster CA —
/// no <c>--kubelet-insecure-tls</c>: each kubelet serves with a certificate Magnetar issued it from the cluster CA
/// (see NodeCertificates and Addons/README.md); it reaches them by InternalIP, an address those certificates carry.
/// </summary>
internal static class MetricsServerAddon
{
    public static readonly string Manifest = $"metrics-server/{PinnedVersions.MetricsServer}/components.yaml";
    public const string AddressTypesArg = "--kubelet-preferred-address-types=";

    public static RenderedAddon Render(AddonRenderer.AddonContext c)
    {
        var tag = c.Labels.Tag(AddonLabels.MetricsServerTag, PinnedVersions.MetricsServer);
        var objects = ManifestSet.Load(Manifest);
        var container = Container(objects.Get<V1Deployment>("metrics-server", "kube-system").Spec.Template.Spec, "metrics-server");
        var args = container.Args ?? throw new InvalidOperationException("Pinned metrics-server manifest: no args.");
        if (args.Any(a => a.StartsWith("--kubelet-insecure-tls", StringComparison.Ordinal)))
            throw new InvalidOperationException("Pinned metrics-server manifest: sets --kubelet-insecure-tls.");
        var index = args.ToList().FindIndex(a => a.StartsWith(AddressTypesArg, StringComparison.Ordinal));
        if (index < 0) throw new InvalidOperationException($"Pinned metrics-server manifest: no {AddressTypesArg}.");
        args[index] = AddressTypesArg + "InternalIP";
        Retag(objects, "metrics-server/metrics-server", tag);
        return new RenderedAddon("metrics-server", tag, AddonRenderer.MetricsServerFile,
            objects.ToYaml(CniAddons.Header("metrics-server", tag, Manifest)));
    }
}
