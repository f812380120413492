using System.Text;
using System.Text.RegularExpressions;
using k8s;
using k8s.Models;
using static Magnetar.Bootstrap.Addons.ManifestEdits;

namespace Magnetar.Bootstrap.Addons;

/// <summary>
/// The OpenStack integration from kubernetes/cloud-provider-openstack: the openstack-cloud-controller-manager, the
/// Cinder CSI driver with its StorageClasses, and the <c>cloud-config</c> Secret both read (mounted at /etc/config).
/// </summary>
internal static partial class OpenStackAddons
{
    public const string SecretName = "cloud-config";
    public const string SecretNamespace = "kube-system";
    /// <summary>Where the CCM and CSI pods mount the Secret (checked against the pinned manifests).</summary>
    public const string MountPath = "/etc/config";
    public const string CaBundleKey = "ca.crt";
    public const string DefaultStorageClass = "csi-cinder-sc-delete";
    public const string CsiDriverName = "cinder.csi.openstack.org";

    private static readonly string Root = $"cloud-provider-openstack/{PinnedVersions.CloudProviderOpenStackManifests}";
    public static readonly IReadOnlyList<string> ControllerManagerManifests =
    [
        $"{Root}/controller-manager/cloud-controller-manager-roles.yaml",
        $"{Root}/controller-manager/cloud-controller-manager-role-bindings.yaml",
        $"{Root}/controller-manager/openstack-cloud-controller-manager-ds.yaml",
    ];
    public static readonly IReadOnlyList<string> CinderCsiManifests =
    [
        $"{Root}/cinder-csi-plugin/cinder-csi-controllerplugin-rbac.yaml",
        $"{Root}/cinder-csi-plugin/cinder-csi-nodeplugin-rbac.yaml",
        $"{Root}/cinder-csi-plugin/csi-cinder-driver.yaml",
        $"{Root}/cinder-csi-plugin/cinder-csi-controllerplugin.yaml",
        $"{Root}/cinder-csi-plugin/cinder-csi-nodeplugin.yaml",
    ];

    /// <summary>The CSI sidecars' images and the labels (Magnum's) that override their tags.</summary>
    private static readonly (string Repository, string Label)[] CsiSidecars =
    [
        ("sig-storage/csi-attacher", AddonLabels.CsiAttacherTag),
        ("sig-storage/csi-provisioner", AddonLabels.CsiProvisionerTag),
        ("sig-storage/csi-snapshotter", AddonLabels.CsiSnapshotterTag),
        ("sig-storage/csi-resizer", AddonLabels.CsiResizerTag),
        ("sig-storage/csi-node-driver-registrar", AddonLabels.CsiNodeDriverRegistrarTag),
        ("sig-storage/livenessprobe", AddonLabels.CsiLivenessProbeTag),
    ];

    [GeneratedRegex("^[A-Za-z0-9_.-]{1,64}$")]
    private static partial Regex OctaviaWord();

    /// <summary>Rejects unusable cloud values; messages name the field and never contain the credential secret.</summary>
    public static void Validate(OpenStackCloudConfig cloud)
    {
        if (!Uri.TryCreate(cloud.AuthUrl, UriKind.Absolute, out var auth) || auth.Scheme is not ("http" or "https"))
            throw new ArgumentException("Cloud.AuthUrl must be an absolute http(s) URL.", nameof(OpenStackCloudConfig.AuthUrl));
        RequireText(cloud.ApplicationCredentialId, nameof(OpenStackCloudConfig.ApplicationCredentialId), required: true);
        RequireText(cloud.ApplicationCredentialSecret, nameof(OpenStackCloudConfig.ApplicationCredentialSecret), required: true);
        RequireText(cloud.Region, nameof(OpenStackCloudConfig.Region), required: false);
        RequireText(cloud.FloatingNetworkId, nameof(OpenStackCloudConfig.FloatingNetworkId), required: false);
        RequireText(cloud.SubnetId, nameof(OpenStackCloudConfig.SubnetId), required: false);
        RequireText(cloud.NetworkId, nameof(OpenStackCloudConfig.NetworkId), required: false);
        if (cloud.CaBundlePem is not null && !cloud.CaBundlePem.Contains("-----BEGIN CERTIFICATE-----", StringComparison.Ordinal))
            throw new ArgumentException("Cloud.CaBundlePem holds no PEM certificate.", nameof(OpenStackCloudConfig.CaBundlePem));
    }

    private static void RequireText(string? value, string field, bool required)
    {
        if (value is null && !required) return;
        if (string.IsNullOrWhiteSpace(value))
            throw new ArgumentException($"Cloud.{field} must not be empty.", field);
        if (value.Any(char.IsControl) || value != value.Trim())
            throw new ArgumentException($"Cloud.{field} contains control characters or surrounding white space.", field);
    }

    /// <summary>
    /// cloud.conf in the gcfg format both components read. String values are quoted (gcfg's escapes for '\' and '"'),
    /// so no value can end a line, start a comment or open a section.
    /// </summary>
    public static string CloudConf(AddonRenderer.AddonContext c)
    {
        var cloud = c.Cloud!;
        var sb = new StringBuilder();
        sb.Append("[Global]\n");
        Line(sb, "auth-url", cloud.AuthUrl);
        Line(sb, "application-credential-id", cloud.ApplicationCredentialId);
        Line(sb, "application-credential-secret", cloud.ApplicationCredentialSecret);
        if (cloud.Region is not null) Line(sb, "region", cloud.Region);
        if (cloud.CaBundlePem is not null) Line(sb, "ca-file", $"{MountPath}/{CaBundleKey}");

        sb.Append("\n[LoadBalancer]\n");
        if (cloud.FloatingNetworkId is not null) Line(sb, "floating-network-id", cloud.FloatingNetworkId);
        if (cloud.SubnetId is not null) Line(sb, "subnet-id", cloud.SubnetId);
        if (cloud.NetworkId is not null) Line(sb, "network-id", cloud.NetworkId);
        sb.Append("create-monitor=").Append(cloud.CreateMonitor ? "true" : "false").Append('\n');
        var provider = OctaviaLabel(c, AddonLabels.OctaviaProvider);
        var method = OctaviaLabel(c, AddonLabels.OctaviaLbAlgorithm);
        if (provider is not null) Line(sb, "lb-provider", provider);
        // The ovn provider supports only SOURCE_IP_PORT, and the CCM's default (ROUND_ROBIN) fails there.
        method ??= provider?.Equals("ovn", StringComparison.OrdinalIgnoreCase) == true ? "SOURCE_IP_PORT" : null;
        if (method is not null) Line(sb, "lb-method", method);

        sb.Append("\n[Networking]\n");
        // Clusters are single-stack IPv4 (pod and service CIDRs are validated as IPv4): report no IPv6 node addresses.
        sb.Append("ipv6-support-disabled=true\n");
        return sb.ToString();
    }

    private static string? OctaviaLabel(AddonRenderer.AddonContext c, string label)
    {
        var value = c.Labels.Get(label);
        if (value is not null && !OctaviaWord().IsMatch(value))
            throw new ArgumentException($"Label {label}='{value}' is not a provider or algorithm name.", nameof(AddonValues.Labels));
        return value;
    }

    private static void Line(StringBuilder sb, string key, string value) =>
        sb.Append(key).Append("=\"").Append(value.Replace("\\", "\\\\").Replace("\"", "\\\"")).Append("\"\n");

    /// <summary>The Secret, in its own file so the node can keep it readable by root only.</summary>
    public static RenderedAddon CloudConfigSecret(AddonRenderer.AddonContext c, bool forControllerManager)
    {
        var version = forControllerManager ? ControllerManagerTag(c) : CinderCsiTag(c);
        var data = new Dictionary<string, string> { ["cloud.conf"] = CloudConf(c) };
        if (c.Cloud!.CaBundlePem is { } ca) data[CaBundleKey] = ca.EndsWith('\n') ? ca : ca + "\n";
        var secret = new V1Secret
        {
            ApiVersion = V1Secret.KubeApiVersion,
            Kind = V1Secret.KubeKind,
            Metadata = new V1ObjectMeta { Name = SecretName, NamespaceProperty = SecretNamespace },
            Type = "Opaque",
            StringData = data,
        };
        return new RenderedAddon(SecretName, version, AddonRenderer.CloudConfigFile, SecretFile(secret));
    }

    private static string SecretFile(V1Secret secret)
    {
        var set = ManifestSet.Empty();
        set.Add(secret);
        return set.ToYaml($"Magnetar addon {SecretName}: OpenStack application credential for the cloud-controller-manager and Cinder CSI.\n" +
                          "Holds a credential: keep this file readable by root only.");
    }

    public static RenderedAddon CloudControllerManager(AddonRenderer.AddonContext c)
    {
        var tag = ControllerManagerTag(c);
        var objects = ManifestSet.Load(ControllerManagerManifests);
        var ds = objects.Get<V1DaemonSet>("openstack-cloud-controller-manager", "kube-system");
        var container = Container(ds.Spec.Template.Spec, "openstack-cloud-controller-manager");
        ReplaceEnv(container, "CLUSTER_NAME", AddonRenderer.CloudClusterName(c.ClusterUuid));
        RequireCloudConfigMount(objects, container.Name);
        Retag(objects, "provider-os/openstack-cloud-controller-manager", tag);
        return new RenderedAddon("openstack-cloud-controller-manager", tag, AddonRenderer.CloudControllerManagerFile,
            objects.ToYaml(CniAddons.Header("openstack-cloud-controller-manager", tag, $"{Root}/controller-manager")));
    }

    public static RenderedAddon CinderCsi(AddonRenderer.AddonContext c)
    {
        var tag = CinderCsiTag(c);
        var objects = ManifestSet.Load(CinderCsiManifests);
        var controller = objects.Get<V1Deployment>("csi-cinder-controllerplugin", "kube-system");
        var plugin = Container(controller.Spec.Template.Spec, "cinder-csi-plugin");
        ReplaceEnv(plugin, "CLUSTER_NAME", AddonRenderer.CloudClusterName(c.ClusterUuid));
        var socketDir = controller.Spec.Template.Spec.Volumes.SingleOrDefault(v => v.Name == "socket-dir")
            ?? throw new InvalidOperationException("Pinned Cinder CSI manifest: controller has no socket-dir volume.");
        if (socketDir.EmptyDir is null)
        {
            // Upstream writes "emptyDir:" with no value, i.e. no volume source, which the API server defaults to an
            // emptyDir; say so explicitly — but only if it really has no other source.
            if (KubernetesYaml.Serialize(socketDir).Trim() != "name: socket-dir")
                throw new InvalidOperationException("Pinned Cinder CSI manifest: socket-dir is no longer an emptyDir.");
            socketDir.EmptyDir = new V1EmptyDirVolumeSource();
        }
        RequireCloudConfigMount(objects, "cinder-csi-plugin");
        Retag(objects, "provider-os/cinder-csi-plugin", tag);
        foreach (var (repository, label) in CsiSidecars) Retag(objects, repository, c.Labels.Tag(label, PinnedTag(objects, repository)));
        objects.Add(StorageClass(DefaultStorageClass, "Delete", isDefault: true));
        objects.Add(StorageClass("csi-cinder-sc-retain", "Retain", isDefault: false));
        return new RenderedAddon("cinder-csi", tag, AddonRenderer.CinderCsiFile,
            objects.ToYaml(CniAddons.Header("cinder-csi", tag, $"{Root}/cinder-csi-plugin")));
    }

    /// <summary>As the upstream Helm chart's storageclass.yaml (charts/cinder-csi-plugin) writes them.</summary>
    private static V1StorageClass StorageClass(string name, string reclaimPolicy, bool isDefault) => new()
    {
        ApiVersion = "storage.k8s.io/v1",
        Kind = V1StorageClass.KubeKind,
        Metadata = new V1ObjectMeta
        {
            Name = name,
            Annotations = isDefault ? new Dictionary<string, string> { ["storageclass.kubernetes.io/is-default-class"] = "true" } : null,
        },
        Provisioner = CsiDriverName,
        ReclaimPolicy = reclaimPolicy,
        AllowVolumeExpansion = true,
    };

    private static string ControllerManagerTag(AddonRenderer.AddonContext c) =>
        c.Labels.Tag(AddonLabels.CloudProviderTag, PinnedVersions.CloudProviderOpenStackFor(c.KubernetesMinor));

    private static string CinderCsiTag(AddonRenderer.AddonContext c) =>
        c.Labels.Tag(AddonLabels.CinderCsiPluginTag, PinnedVersions.CloudProviderOpenStackFor(c.KubernetesMinor));

    /// <summary>cloud.conf's ca-file points into <see cref="MountPath"/>: the container must mount the Secret exactly there.</summary>
    private static void RequireCloudConfigMount(ManifestSet objects, string containerName)
    {
        var mounted = false;
        foreach (var spec in objects.PodSpecs())
        {
            var volumes = (spec.Volumes ?? []).Where(v => v.Secret?.SecretName == SecretName).Select(v => v.Name).ToHashSet();
            foreach (var container in AllContainers(spec).Where(x => x.Name == containerName))
                foreach (var mount in (container.VolumeMounts ?? []).Where(m => volumes.Contains(m.Name)))
                {
                    if (mount.MountPath.TrimEnd('/') != MountPath)
                        throw new InvalidOperationException($"Pinned manifest: {containerName} mounts {SecretName} at {mount.MountPath}, not {MountPath}.");
                    mounted = true;
                }
        }
        if (!mounted) throw new InvalidOperationException($"Pinned manifest: {containerName} does not mount the {SecretName} Secret.");
    }
}
