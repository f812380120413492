namespace Magnetar.Autoscaler;

/// <summary>
/// The cluster-autoscaler endpoint (<c>Magnetar:Autoscaler</c>): a gRPC service (the autoscaler's <c>externalgrpc</c>
/// cloud provider) on a listener of its own, HTTPS with a client certificate Magnetar issued to one cluster.
/// </summary>
public sealed class AutoscalerOptions
{
    /// <summary>The port of the listener; 0 (default) turns the endpoint off, and clusters asking for autoscaling are refused.</summary>
    public int Port { get; set; }
    /// <summary>The address the listener binds (default: every address).</summary>
    public string Listen { get; set; } = "0.0.0.0";
    /// <summary>
    /// host:port the clusters' autoscalers dial (their nodes must reach it). Default: the host of the bootstrap URL
    /// (Magnetar:Bootstrap:Url) with <see cref="Port"/>. Its host is in the endpoint's server certificate.
    /// </summary>
    public string? Address { get; set; }
    /// <summary>More names or addresses for the endpoint's server certificate (e.g. a load balancer's).</summary>
    public List<string> ServerNames { get; set; } = new();
    /// <summary>How long a cluster's autoscaler client certificate is valid (days).</summary>
    public int ClientCertificateDays { get; set; } = 365;

    public bool Enabled => Port > 0;
}
