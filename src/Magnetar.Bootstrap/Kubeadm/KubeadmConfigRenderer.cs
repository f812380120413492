using System.Text.RegularExpressions;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;

namespace Magnetar.Bootstrap.Kubeadm;

public static class KubeadmVersions
{
    public const string V1Beta3 = "kubeadm.k8s.io/v1beta3";
    public const string V1Beta4 = "kubeadm.k8s.io/v1beta4";
}

/// <summary>Which kubeadm command a node runs.</summary>
public enum KubeadmRole
{
    /// <summary>The first control-plane node: <c>kubeadm init</c>.</summary>
    Init,
    /// <summary>Further control-plane nodes: <c>kubeadm join --control-plane</c> (certificates pre-placed by Magnetar).</summary>
    JoinControlPlane,
    /// <summary>Workers: <c>kubeadm join</c>.</summary>
    Worker,
}

/// <summary>Everything the kubeadm documents of one node depend on.</summary>
public sealed record KubeadmInputs(
    string ClusterName,
    string KubernetesVersion,
    string ControlPlaneEndpoint,
    IReadOnlyList<string> CertSans,
    string PodCidr,
    string ServiceCidr,
    string DnsDomain,
    string NodeName,
    KubeadmRole Role,
    string? BootstrapToken,
    bool ExternalCloudProvider,
    string BootstrapTokenTtl = "24h0m0s");

/// <summary>
/// Renders a node's kubeadm configuration: InitConfiguration + ClusterConfiguration + KubeletConfiguration for the
/// first control-plane node, JoinConfiguration + KubeletConfiguration for the others. kubeadm.k8s.io/v1beta4 for
/// Kubernetes ≥ 1.31, v1beta3 for 1.22–1.30.
/// </summary>
public static partial class KubeadmConfigRenderer
{
    public const string CriSocket = "unix:///run/containerd/containerd.sock";
    public const int ApiServerPort = 6443;
    /// <summary>
    /// Joining nodes discover the cluster from this kubeconfig (in their bundle): the cluster CA and a short-lived client
    /// certificate system:node:&lt;name&gt; / system:nodes, which kubeadm uses for the kubelet's TLS bootstrap instead of a
    /// shared bootstrap token — so a node added months later joins without a token minted in the cluster.
    /// </summary>
    public const string JoinKubeconfigPath = "/etc/kubernetes/magnetar/join.conf";
    public const string KubeletServingCertPath = "/var/lib/kubelet/pki/kubelet-serving.crt";
    public const string KubeletServingKeyPath = "/var/lib/kubelet/pki/kubelet-serving.key";
    /// <summary>How long a joining node waits for the API server (the first control-plane node may still be coming up).</summary>
    private const string DiscoveryTimeout = "15m0s";

    [GeneratedRegex(@"^v?(\d+)\.(\d+)\.(\d+)(?:[-+][0-9A-Za-z.-]+)?$")]
    private static partial Regex VersionPattern();

    [GeneratedRegex(@"^[a-z0-9]{6}\.[a-z0-9]{16}$")]
    private static partial Regex TokenPattern();

    /// <summary>(major, minor, patch) of a Kubernetes version such as v1.31.1; ArgumentException when it is not one.</summary>
    public static (int Major, int Minor, int Patch) ParseVersion(string version)
    {
        var m = VersionPattern().Match(version ?? "");
        if (!m.Success) throw new ArgumentException($"'{version}' is not a Kubernetes version (expected e.g. v1.31.1)", nameof(version));
        return (int.Parse(m.Groups[1].Value), int.Parse(m.Groups[2].Value), int.Parse(m.Groups[3].Value));
    }

    /// <summary>The kubeadm API group version a Kubernetes version reads: v1beta4 from 1.31, v1beta3 for 1.22–1.30.</summary>
    public static string ApiVersionFor(string kubernetesVersion)
    {
        var (major, minor, _) = ParseVersion(kubernetesVersion);
        if (major != 1 || minor < 22) throw new ArgumentException($"Kubernetes {kubernetesVersion} is not supported (1.22 or later)", nameof(kubernetesVersion));
        return minor >= 31 ? KubeadmVersions.V1Beta4 : KubeadmVersions.V1Beta3;
    }

    public static bool IsValidBootstrapToken(string token) => TokenPattern().IsMatch(token ?? "");

    public static ISerializer Serializer { get; } = new SerializerBuilder()
        .WithNamingConvention(CamelCaseNamingConvention.Instance)
        .ConfigureDefaultValuesHandling(DefaultValuesHandling.OmitNull)
        .DisableAliases()
        .Build();

    /// <summary>Strict: a key the model does not know is an error (YamlDotNet's default).</summary>
    public static IDeserializer Deserializer { get; } = new DeserializerBuilder()
        .WithNamingConvention(CamelCaseNamingConvention.Instance)
        .Build();

    public static string Render(KubeadmInputs i)
    {
        Validate(i);
        var docs = ApiVersionFor(i.KubernetesVersion) == KubeadmVersions.V1Beta4 ? RenderV1Beta4(i) : RenderV1Beta3(i);
        docs.Add(new KubeletConfiguration());
        return string.Join("---\n", docs.Select(d => Serializer.Serialize(d)));
    }

    private static void Validate(KubeadmInputs i)
    {
        if (i.Role == KubeadmRole.Init && !IsValidBootstrapToken(i.BootstrapToken!))
            throw new ArgumentException("the bootstrap token does not have kubeadm's form [a-z0-9]{6}.[a-z0-9]{16}");
        foreach (var cidr in new[] { i.PodCidr, i.ServiceCidr })
            if (!System.Net.IPNetwork.TryParse(cidr, out _)) throw new ArgumentException($"'{cidr}' is not a CIDR");
        if (string.IsNullOrWhiteSpace(i.ControlPlaneEndpoint)) throw new ArgumentException("the control-plane endpoint is not known");
        if (string.IsNullOrWhiteSpace(i.NodeName)) throw new ArgumentException("the node name is empty");
    }

    private static string Semver(string version) => version.StartsWith('v') ? version : "v" + version;

    private static List<object> RenderV1Beta4(KubeadmInputs i)
    {
        var kubeletArgs = i.ExternalCloudProvider ? new List<V1Beta4.Arg> { new() { Name = "cloud-provider", Value = "external" } } : null;
        var registration = new V1Beta4.NodeRegistrationOptions { Name = i.NodeName, CriSocket = CriSocket, KubeletExtraArgs = kubeletArgs };
        if (i.Role != KubeadmRole.Init)
            return
            [
                new V1Beta4.JoinConfiguration
                {
                    NodeRegistration = registration,
                    Discovery = new V1Beta4.Discovery { File = new V1Beta4.FileDiscovery { KubeConfigPath = JoinKubeconfigPath } },
                    ControlPlane = i.Role == KubeadmRole.JoinControlPlane ? new V1Beta4.JoinControlPlane() : null,
                    Timeouts = new V1Beta4.Timeouts { Discovery = DiscoveryTimeout },
                },
            ];
        return
        [
            new V1Beta4.InitConfiguration
            {
                BootstrapTokens =
                [
                    new V1Beta4.BootstrapToken
                    {
                        Token = i.BootstrapToken!, Ttl = i.BootstrapTokenTtl, Description = "Magnetar: nodes of cluster " + i.ClusterName,
                        Usages = ["signing", "authentication"], Groups = ["system:bootstrappers:kubeadm:default-node-token"],
                    },
                ],
                NodeRegistration = registration,
                LocalAPIEndpoint = new V1Beta4.ApiEndpoint { BindPort = ApiServerPort },
            },
            new V1Beta4.ClusterConfiguration
            {
                ClusterName = i.ClusterName,
                KubernetesVersion = Semver(i.KubernetesVersion),
                ControlPlaneEndpoint = i.ControlPlaneEndpoint,
                Networking = new V1Beta4.Networking { PodSubnet = i.PodCidr, ServiceSubnet = i.ServiceCidr, DnsDomain = i.DnsDomain },
                ApiServer = new V1Beta4.ApiServer { CertSANs = i.CertSans.ToList() },
                ControllerManager = i.ExternalCloudProvider
                    ? new V1Beta4.ControlPlaneComponent { ExtraArgs = [new() { Name = "cloud-provider", Value = "external" }] }
                    : null,
                Etcd = new V1Beta4.Etcd { Local = new V1Beta4.LocalEtcd { DataDir = "/var/lib/etcd" } },
            },
        ];
    }

    private static List<object> RenderV1Beta3(KubeadmInputs i)
    {
        var kubeletArgs = i.ExternalCloudProvider ? new Dictionary<string, string> { ["cloud-provider"] = "external" } : null;
        var registration = new V1Beta3.NodeRegistrationOptions { Name = i.NodeName, CriSocket = CriSocket, KubeletExtraArgs = kubeletArgs };
        if (i.Role != KubeadmRole.Init)
            return
            [
                new V1Beta3.JoinConfiguration
                {
                    NodeRegistration = registration,
                    Discovery = new V1Beta3.Discovery
                    {
                        File = new V1Beta3.FileDiscovery { KubeConfigPath = JoinKubeconfigPath }, Timeout = DiscoveryTimeout,
                    },
                    ControlPlane = i.Role == KubeadmRole.JoinControlPlane ? new V1Beta3.JoinControlPlane() : null,
                },
            ];
        return
        [
            new V1Beta3.InitConfiguration
            {
                BootstrapTokens =
                [
                    new V1Beta3.BootstrapToken
                    {
                        Token = i.BootstrapToken!, Ttl = i.BootstrapTokenTtl, Description = "Magnetar: nodes of cluster " + i.ClusterName,
                        Usages = ["signing", "authentication"], Groups = ["system:bootstrappers:kubeadm:default-node-token"],
                    },
                ],
                NodeRegistration = registration,
                LocalAPIEndpoint = new V1Beta3.ApiEndpoint { BindPort = ApiServerPort },
            },
            new V1Beta3.ClusterConfiguration
            {
                ClusterName = i.ClusterName,
                KubernetesVersion = Semver(i.KubernetesVersion),
                ControlPlaneEndpoint = i.ControlPlaneEndpoint,
                Networking = new V1Beta3.Networking { PodSubnet = i.PodCidr, ServiceSubnet = i.ServiceCidr, DnsDomain = i.DnsDomain },
                ApiServer = new V1Beta3.ApiServer { CertSANs = i.CertSans.ToList() },
                ControllerManager = i.ExternalCloudProvider
                    ? new V1Beta3.ControlPlaneComponent { ExtraArgs = new() { ["cloud-provider"] = "external" } }
                    : null,
                Etcd = new V1Beta3.Etcd { Local = new V1Beta3.LocalEtcd { DataDir = "/var/lib/etcd" } },
            },
        ];
    }

    /// <summary>
    /// Reads kubeadm documents back into the typed models of their apiVersion/kind, rejecting unknown keys.
    /// Used by the tests and by anyone who wants to check a document before a node consumes it.
    /// </summary>
    public static IReadOnlyList<object> Parse(string yaml)
    {
        var result = new List<object>();
        foreach (var doc in SplitDocuments(yaml))
        {
            var head = new DeserializerBuilder().IgnoreUnmatchedProperties().Build().Deserialize<Dictionary<string, object>>(doc)
                ?? throw new FormatException("empty document");
            var apiVersion = head.GetValueOrDefault("apiVersion") as string;
            var kind = head.GetValueOrDefault("kind") as string;
            var type = (apiVersion, kind) switch
            {
                (KubeadmVersions.V1Beta4, "InitConfiguration") => typeof(V1Beta4.InitConfiguration),
                (KubeadmVersions.V1Beta4, "ClusterConfiguration") => typeof(V1Beta4.ClusterConfiguration),
                (KubeadmVersions.V1Beta4, "JoinConfiguration") => typeof(V1Beta4.JoinConfiguration),
                (KubeadmVersions.V1Beta3, "InitConfiguration") => typeof(V1Beta3.InitConfiguration),
                (KubeadmVersions.V1Beta3, "ClusterConfiguration") => typeof(V1Beta3.ClusterConfiguration),
                (KubeadmVersions.V1Beta3, "JoinConfiguration") => typeof(V1Beta3.JoinConfiguration),
                ("kubelet.config.k8s.io/v1beta1", "KubeletConfiguration") => typeof(KubeletConfiguration),
                _ => throw new FormatException($"unknown document {apiVersion}/{kind}"),
            };
            result.Add(Deserializer.Deserialize(doc, type)!);
        }
        return result;
    }

    public static IEnumerable<string> SplitDocuments(string yaml)
        => Regex.Split(yaml, @"^---\s*$", RegexOptions.Multiline).Where(d => !string.IsNullOrWhiteSpace(d));
}
