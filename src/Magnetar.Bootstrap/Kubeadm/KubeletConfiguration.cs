namespace Magnetar.Bootstrap.Kubeadm;

/// <summary>kubelet.config.k8s.io/v1beta1 KubeletConfiguration, the fields Magnetar sets (passed to kubeadm with its own documents).</summary>
public sealed class KubeletConfiguration
{
    public string ApiVersion { get; set; } = "kubelet.config.k8s.io/v1beta1";
    public string Kind { get; set; } = "KubeletConfiguration";
    /// <summary>containerd is configured with SystemdCgroup = true; the kubelet must agree.</summary>
    public string? CgroupDriver { get; set; } = "systemd";
    public bool? RotateCertificates { get; set; } = true;
    /// <summary>Swap is turned off on the node; the kubelet refuses to start with swap on.</summary>
    public bool? FailSwapOn { get; set; } = true;
    /// <summary>
    /// The serving certificate Magnetar issues each node (signed by the cluster CA, the node's name and cloud addresses
    /// as SANs) instead of the kubelet's self-signed one, so that metrics-server can verify kubelets against the CA.
    /// </summary>
    public string? TlsCertFile { get; set; } = KubeadmConfigRenderer.KubeletServingCertPath;
    public string? TlsPrivateKeyFile { get; set; } = KubeadmConfigRenderer.KubeletServingKeyPath;
}
