using System.Globalization;
using k8s.Models;

namespace Magnetar.Bootstrap.Addons;

/// <summary>
/// The upstream cluster-autoscaler (registry.k8s.io/autoscaling/cluster-autoscaler, the release of the cluster's
/// Kubernetes minor) with its <c>externalgrpc</c> cloud provider pointed at Magnetar: a Deployment on the control
/// plane, its RBAC, and a Secret with the cloud-config (address, CA, the cluster's client certificate and key).
/// Written by Magnetar (no upstream manifest is pinned for it): the RBAC rules are what the autoscaler reads and writes.
/// </summary>
internal static class ClusterAutoscalerAddon
{
    public const string Name = "cluster-autoscaler", Namespace = "kube-system", SecretName = "cluster-autoscaler-cloud-config";
    public const string Image = "registry.k8s.io/autoscaling/cluster-autoscaler";
    /// <summary>Where the Secret is mounted; the cloud-config names its files there.</summary>
    public const string ConfigDir = "/config";
    private static readonly Dictionary<string, string> AppLabels = new() { ["app.kubernetes.io/name"] = Name, ["app.kubernetes.io/managed-by"] = "magnetar" };

    public static RenderedAddon Render(AddonRenderer.AddonContext c, AutoscalerCloudConfig a)
    {
        Validate(a);
        var tag = c.Labels.Tag(AddonLabels.AutoscalerTag, PinnedVersions.ClusterAutoscalerFor(c.KubernetesMinor));
        var set = ManifestSet.Empty();
        set.Add(new V1ServiceAccount { ApiVersion = "v1", Kind = "ServiceAccount", Metadata = Meta(Name, Namespace) });
        set.Add(new V1ClusterRole { ApiVersion = "rbac.authorization.k8s.io/v1", Kind = "ClusterRole", Metadata = Meta(Name), Rules = ClusterRules() });
        set.Add(new V1Role { ApiVersion = "rbac.authorization.k8s.io/v1", Kind = "Role", Metadata = Meta(Name, Namespace), Rules = NamespaceRules() });
        set.Add(new V1ClusterRoleBinding
        {
            ApiVersion = "rbac.authorization.k8s.io/v1", Kind = "ClusterRoleBinding", Metadata = Meta(Name),
            RoleRef = new V1RoleRef { ApiGroup = "rbac.authorization.k8s.io", Kind = "ClusterRole", Name = Name },
            Subjects = [new Rbacv1Subject { Kind = "ServiceAccount", Name = Name, NamespaceProperty = Namespace }],
        });
        set.Add(new V1RoleBinding
        {
            ApiVersion = "rbac.authorization.k8s.io/v1", Kind = "RoleBinding", Metadata = Meta(Name, Namespace),
            RoleRef = new V1RoleRef { ApiGroup = "rbac.authorization.k8s.io", Kind = "Role", Name = Name },
            Subjects = [new Rbacv1Subject { Kind = "ServiceAccount", Name = Name, NamespaceProperty = Namespace }],
        });
        set.Add(new V1Secret
        {
            ApiVersion = "v1", Kind = "Secret", Metadata = Meta(SecretName, Namespace), Type = "Opaque",
            StringData = new Dictionary<string, string>
            {
                ["cloud-config"] = a.CloudConfigYaml(ConfigDir),
                ["ca.crt"] = Pem(a.CaPem),
                ["tls.crt"] = Pem(a.CertificatePem),
                ["tls.key"] = Pem(a.PrivateKeyPem),
            },
        });
        set.Add(Deployment(tag));
        return new RenderedAddon(Name, tag, AddonRenderer.ClusterAutoscalerFile, set.ToYaml(
            $"Magnetar addon cluster-autoscaler {tag} (externalgrpc provider: Magnetar at {a.Address}), written by Magnetar\n" +
            "(src/Magnetar.Bootstrap/Addons). Holds the cluster's autoscaler key: keep this file readable by root only."));
    }

    private static void Validate(AutoscalerCloudConfig a)
    {
        var colon = a.Address.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(a.Address[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535
            || a.Address.IndexOfAny(['"', '\n', ' ', '/']) >= 0)
            throw new ArgumentException($"Autoscaler address '{a.Address}' is not host:port.", nameof(AddonValues.Autoscaler));
        foreach (var (pem, what) in new[] { (a.CaPem, "CA certificate"), (a.CertificatePem, "client certificate"), (a.PrivateKeyPem, "client key") })
            if (string.IsNullOrWhiteSpace(pem) || !pem.Contains("-----BEGIN ", StringComparison.Ordinal))
                throw new ArgumentException($"Autoscaler {what} is not PEM.", nameof(AddonValues.Autoscaler));
    }

    private static string Pem(string pem) => pem.EndsWith('\n') ? pem : pem + "\n";

    private static V1ObjectMeta Meta(string name, string? ns = null) => new() { Name = name, NamespaceProperty = ns, Labels = new Dictionary<string, string>(AppLabels) };

    private static V1PolicyRule Rule(string group, string[] resources, string[] verbs, string[]? names = null)
        => new() { ApiGroups = [group], Resources = resources, Verbs = verbs, ResourceNames = names };

    /// <summary>What the autoscaler watches to simulate scheduling, and what it changes (node taints, evictions, events, its lease).</summary>
    private static List<V1PolicyRule> ClusterRules() =>
    [
        Rule("", ["events", "endpoints"], ["create", "patch"]),
        Rule("", ["pods/eviction"], ["create"]),
        Rule("", ["pods/status"], ["update"]),
        Rule("", ["endpoints"], ["get", "update"], [Name]),
        Rule("", ["nodes"], ["watch", "list", "get", "update"]),
        Rule("", ["namespaces", "pods", "services", "replicationcontrollers", "persistentvolumeclaims", "persistentvolumes"], ["watch", "list", "get"]),
        Rule("apps", ["statefulsets", "replicasets", "daemonsets"], ["watch", "list", "get"]),
        Rule("batch", ["jobs", "cronjobs"], ["watch", "list", "get"]),
        Rule("policy", ["poddisruptionbudgets"], ["watch", "list"]),
        Rule("storage.k8s.io", ["storageclasses", "csinodes", "csidrivers", "csistoragecapacities", "volumeattachments"], ["watch", "list", "get"]),
        Rule("coordination.k8s.io", ["leases"], ["create"]),
        Rule("coordination.k8s.io", ["leases"], ["get", "update"], [Name]),
    ];

    /// <summary>Its status ConfigMap in kube-system.</summary>
    private static List<V1PolicyRule> NamespaceRules() =>
    [
        Rule("", ["configmaps"], ["create", "list", "watch"]),
        Rule("", ["configmaps"], ["delete", "get", "update", "watch"], ["cluster-autoscaler-status", "cluster-autoscaler-priority-expander"]),
    ];

    private static V1Deployment Deployment(string tag) => new()
    {
        ApiVersion = "apps/v1",
        Kind = "Deployment",
        Metadata = Meta(Name, Namespace),
        Spec = new V1DeploymentSpec
        {
            Replicas = 1,
            Selector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["app.kubernetes.io/name"] = Name } },
            Template = new V1PodTemplateSpec
            {
                Metadata = new V1ObjectMeta { Labels = new Dictionary<string, string>(AppLabels) },
                Spec = new V1PodSpec
                {
                    ServiceAccountName = Name,
                    PriorityClassName = "system-cluster-critical",
                    // On the control plane: the autoscaler must not run on a node it may remove.
                    NodeSelector = new Dictionary<string, string> { ["node-role.kubernetes.io/control-plane"] = "" },
                    Tolerations =
                    [
                        new V1Toleration { Key = "node-role.kubernetes.io/control-plane", OperatorProperty = "Exists", Effect = "NoSchedule" },
                        new V1Toleration { Key = "CriticalAddonsOnly", OperatorProperty = "Exists" },
                    ],
                    // Non-root; the Secret's files are readable through the pod's group.
                    SecurityContext = new V1PodSecurityContext { RunAsNonRoot = true, RunAsUser = 65534, RunAsGroup = 65534, FsGroup = 65534 },
                    Containers =
                    [
                        new V1Container
                        {
                            Name = Name,
                            Image = $"{Image}:{tag}",
                            Command =
                            [
                                "./cluster-autoscaler",
                                "--cloud-provider=externalgrpc",
                                $"--cloud-config={ConfigDir}/cloud-config",
                                "--v=2",
                            ],
                            Resources = new V1ResourceRequirements
                            {
                                Requests = new Dictionary<string, ResourceQuantity> { ["cpu"] = new("100m"), ["memory"] = new("300Mi") },
                                Limits = new Dictionary<string, ResourceQuantity> { ["memory"] = new("600Mi") },
                            },
                            SecurityContext = new V1SecurityContext { AllowPrivilegeEscalation = false, ReadOnlyRootFilesystem = true, Capabilities = new V1Capabilities { Drop = ["ALL"] } },
                            VolumeMounts = [new V1VolumeMount { Name = "cloud-config", MountPath = ConfigDir, ReadOnlyProperty = true }],
                        },
                    ],
                    Volumes = [new V1Volume { Name = "cloud-config", Secret = new V1SecretVolumeSource { SecretName = SecretName, DefaultMode = 0b100_100_000 /* 0440 */ } }],
                },
            },
        },
    };
}
