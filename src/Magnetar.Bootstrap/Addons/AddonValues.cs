namespace Magnetar.Bootstrap.Addons;

/// <summary>
/// How the cluster's openstack-cloud-controller-manager and Cinder CSI driver reach OpenStack: a Keystone application
/// credential scoped to the cluster's project. <see cref="ApplicationCredentialSecret"/> is written only into the
/// <c>cloud-config</c> Secret; <see cref="ToString"/> never shows it.
/// </summary>
public sealed record OpenStackCloudConfig(
    string AuthUrl,
    string? Region,
    string ApplicationCredentialId,
    string ApplicationCredentialSecret,
    string? FloatingNetworkId,
    string? SubnetId,
    string? NetworkId,
    bool CreateMonitor = true,
    string? CaBundlePem = null)
{
    public override string ToString() =>
        $"OpenStackCloudConfig {{ AuthUrl = {AuthUrl}, Region = {Region}, ApplicationCredentialId = {ApplicationCredentialId}, " +
        $"ApplicationCredentialSecret = (redacted), FloatingNetworkId = {FloatingNetworkId}, SubnetId = {SubnetId}, NetworkId = {NetworkId}, " +
        $"CreateMonitor = {CreateMonitor}, CaBundlePem = {(CaBundlePem is null ? "" : $"({CaBundlePem.Length} chars)")} }}";
}

/// <summary>
/// What the addons of one cluster are rendered from. <see cref="Labels"/> are the cluster's Magnum labels
/// (<c>calico_tag</c>, <c>cilium_tag</c>, <c>flannel_tag</c>, <c>cloud_provider_enabled</c>, … — see Addons/README.md).
/// <see cref="Cloud"/> null means no cloud integration (no cloud-controller-manager, no Cinder CSI).
/// </summary>
public sealed record AddonValues(
    string ClusterUuid,
    string ClusterName,
    string KubernetesVersion,
    string NetworkDriver,
    string PodCidr,
    string ServiceCidr,
    IReadOnlyDictionary<string, string> Labels,
    OpenStackCloudConfig? Cloud,
    AutoscalerCloudConfig? Autoscaler = null);

/// <summary>
/// How the cluster's cluster-autoscaler reaches Magnetar's externalgrpc endpoint: host:port, the CA that signed the
/// endpoint's certificate, and the cluster's own client certificate and key (written only into the addon's Secret).
/// </summary>
public sealed record AutoscalerCloudConfig(string Address, string CaPem, string CertificatePem, string PrivateKeyPem)
{
    public override string ToString() => $"AutoscalerCloudConfig {{ Address = {Address} }}"; // never the key

    /// <summary>The externalgrpc provider's cloud-config (YAML, the provider's keys) for files ca.crt, tls.crt, tls.key in <paramref name="dir"/>.</summary>
    public string CloudConfigYaml(string dir) =>
        $"address: \"{Address}\"\ncert: \"{dir}/tls.crt\"\nkey: \"{dir}/tls.key\"\ncacert: \"{dir}/ca.crt\"\ngrpc_timeout: \"10s\"\n";
}

/// <summary>
/// One file for <c>/etc/kubernetes/magnetar/addons/</c>. Files are applied in the order of their names. The file of the
/// <c>cloud-config</c> Secret holds the application credential secret: write it readable by root only.
/// </summary>
public sealed record RenderedAddon(string Name, string Version, string FileName, string Yaml)
{
    /// <summary>Without the YAML, which may hold a credential.</summary>
    public override string ToString() => $"RenderedAddon {{ Name = {Name}, Version = {Version}, FileName = {FileName}, Yaml = ({Yaml.Length} chars) }}";
}
