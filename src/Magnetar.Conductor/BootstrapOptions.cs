namespace Magnetar.Conductor;

/// <summary>Settings of node bootstrap (<c>Magnetar:Bootstrap</c>).</summary>
public sealed class BootstrapOptions
{
    /// <summary>
    /// The URL booted nodes reach Magnetar's bootstrap endpoint at (https://…). Default: Magnetar:PublicUrl, else the
    /// first address the server listens on.
    /// </summary>
    public string? Url { get; set; }
    /// <summary>A PEM file with the CA that signed the bootstrap endpoint's TLS certificate; written into user-data so nodes verify it.</summary>
    public string? CaFile { get; set; }
    /// <summary>The bundle endpoint refuses plain HTTP unless this is set (never in production: the bundle holds CA keys).</summary>
    public bool AllowInsecureHttp { get; set; }
    /// <summary>How long the single-use credential in a server's user-data stays valid.</summary>
    public int FetchCredentialMinutes { get; set; } = 60;
    /// <summary>
    /// How long the credential of a node's bundle stays valid: the node posts its reports with it, and its agent asks
    /// for work (CA rotation steps) with it for as long as the node lives. Revoked when the node's server is replaced
    /// or removed, or the cluster deleted. Default: 10 years.
    /// </summary>
    public int ReportCredentialHours { get; set; } = 87600;
    /// <summary>
    /// A CA rotation step fails (UPDATE_FAILED, naming the nodes) when no node has completed it for this long. A node's
    /// agent asks for work every 30 s; a control-plane node's step restarts its control plane.
    /// </summary>
    public int CaRotationStepTimeoutSeconds { get; set; } = 1800;
    /// <summary>
    /// <c>reports</c>: a node is ready when it reports Ready (the real path); <c>cloud</c>: when its server is ACTIVE —
    /// for clouds where nothing boots (the simulated cloud, Nova's fake driver) and no test node plays the VM's part.
    /// Default: reports on OpenStack, cloud on the simulated cloud.
    /// </summary>
    public string? NodeReadiness { get; set; }
    /// <summary>A node that has not reported for this long (since its server was requested, or its last report) fails the cluster.</summary>
    public int NodeReportTimeoutSeconds { get; set; } = 1800;
    /// <summary>Where nodes get kubelet/kubeadm/kubectl when the kube_package_source label does not say: upstream or image.</summary>
    public string PackageSource { get; set; } = "upstream";
    /// <summary>
    /// Validity of the bootstrap token <c>kubeadm init</c> creates (kubeadm duration). Magnetar's nodes do not use it to
    /// join (they carry a client certificate of their own, see JoinCertificateMinutes); kubeadm always makes one.
    /// </summary>
    public string BootstrapTokenTtl { get; set; } = "24h0m0s";
    /// <summary>Validity of the client certificate in a joining node's bundle: kubeadm join and the kubelet's TLS bootstrap must happen within it.</summary>
    public int JoinCertificateMinutes { get; set; } = 120;
    /// <summary>
    /// Validity of a kubelet's serving certificate. The kubelet does not renew a certificate it was given: the node's
    /// agent is handed a new one when less than a third of this is left.
    /// </summary>
    public int KubeletServingCertificateDays { get; set; } = 365;
    /// <summary>Keystone URL and region written into the cloud integration's cloud.conf (OpenStack only).</summary>
    public string? CloudAuthUrl { get; set; }
    public string? CloudRegion { get; set; }

    public bool ReadinessFromReports => string.Equals(NodeReadiness, "reports", StringComparison.OrdinalIgnoreCase);
}
