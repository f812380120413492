// Typed models of kubeadm's configuration API kubeadm.k8s.io/v1beta3 (Kubernetes 1.22–1.30), the subset Magnetar
// writes. Differences from v1beta4 that matter here: extra arguments are maps, discovery has its own timeout, no
// Timeouts block. Checked against kubeadm's Go types by the tests, like V1Beta4.
using YamlDotNet.Serialization;

namespace Magnetar.Bootstrap.Kubeadm.V1Beta3;

public sealed class BootstrapToken
{
    public string Token { get; set; } = "";
    public string? Description { get; set; }
    public string? Ttl { get; set; }
    public List<string>? Usages { get; set; }
    public List<string>? Groups { get; set; }
}

public sealed class Taint
{
    public string Key { get; set; } = "";
    public string? Value { get; set; }
    public string Effect { get; set; } = "";
}

public sealed class NodeRegistrationOptions
{
    public string? Name { get; set; }
    public string? CriSocket { get; set; }
    public List<Taint>? Taints { get; set; }
    public Dictionary<string, string>? KubeletExtraArgs { get; set; }
    public List<string>? IgnorePreflightErrors { get; set; }
    public string? ImagePullPolicy { get; set; }
}

public sealed class ApiEndpoint
{
    public string? AdvertiseAddress { get; set; }
    public int? BindPort { get; set; }
}

public sealed class InitConfiguration
{
    public string ApiVersion { get; set; } = KubeadmVersions.V1Beta3;
    public string Kind { get; set; } = "InitConfiguration";
    public List<BootstrapToken>? BootstrapTokens { get; set; }
    public NodeRegistrationOptions? NodeRegistration { get; set; }
    [YamlMember(Alias = "localAPIEndpoint")]
    public ApiEndpoint? LocalAPIEndpoint { get; set; }
    public List<string>? SkipPhases { get; set; }
}

public sealed class LocalEtcd
{
    public string? DataDir { get; set; }
    public Dictionary<string, string>? ExtraArgs { get; set; }
    [YamlMember(Alias = "serverCertSANs")]
    public List<string>? ServerCertSANs { get; set; }
    [YamlMember(Alias = "peerCertSANs")]
    public List<string>? PeerCertSANs { get; set; }
}

public sealed class Etcd
{
    public LocalEtcd? Local { get; set; }
}

public sealed class Networking
{
    public string? ServiceSubnet { get; set; }
    public string? PodSubnet { get; set; }
    public string? DnsDomain { get; set; }
}

public sealed class ControlPlaneComponent
{
    public Dictionary<string, string>? ExtraArgs { get; set; }
}

public sealed class ApiServer
{
    public Dictionary<string, string>? ExtraArgs { get; set; }
    [YamlMember(Alias = "certSANs")]
    public List<string>? CertSANs { get; set; }
    public string? TimeoutForControlPlane { get; set; }
}

public sealed class ClusterConfiguration
{
    public string ApiVersion { get; set; } = KubeadmVersions.V1Beta3;
    public string Kind { get; set; } = "ClusterConfiguration";
    public string? ClusterName { get; set; }
    public string? KubernetesVersion { get; set; }
    public string? ControlPlaneEndpoint { get; set; }
    public Etcd? Etcd { get; set; }
    public Networking? Networking { get; set; }
    public ApiServer? ApiServer { get; set; }
    public ControlPlaneComponent? ControllerManager { get; set; }
    public ControlPlaneComponent? Scheduler { get; set; }
    public string? CertificatesDir { get; set; }
    public string? ImageRepository { get; set; }
}

public sealed class BootstrapTokenDiscovery
{
    public string Token { get; set; } = "";
    public string? ApiServerEndpoint { get; set; }
    public List<string>? CaCertHashes { get; set; }
    [YamlMember(Alias = "unsafeSkipCAVerification")]
    public bool? UnsafeSkipCAVerification { get; set; }
}

/// <summary>Discovery from a kubeconfig file; when it carries a client certificate, kubeadm uses it for the TLS bootstrap.</summary>
public sealed class FileDiscovery
{
    public string KubeConfigPath { get; set; } = "";
}

public sealed class Discovery
{
    public BootstrapTokenDiscovery? BootstrapToken { get; set; }
    public FileDiscovery? File { get; set; }
    public string? TlsBootstrapToken { get; set; }
    public string? Timeout { get; set; }
}

public sealed class JoinControlPlane
{
    [YamlMember(Alias = "localAPIEndpoint")]
    public ApiEndpoint? LocalAPIEndpoint { get; set; }
}

public sealed class JoinConfiguration
{
    public string ApiVersion { get; set; } = KubeadmVersions.V1Beta3;
    public string Kind { get; set; } = "JoinConfiguration";
    public NodeRegistrationOptions? NodeRegistration { get; set; }
    public string? CaCertPath { get; set; }
    public Discovery? Discovery { get; set; }
    public JoinControlPlane? ControlPlane { get; set; }
    public List<string>? SkipPhases { get; set; }
}
