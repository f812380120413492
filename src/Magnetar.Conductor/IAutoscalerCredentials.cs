using Magnetar.Bootstrap.Addons;

namespace Magnetar.Conductor;

/// <summary>Issues a cluster's cluster-autoscaler credential for Magnetar's externalgrpc endpoint (Magnetar.Autoscaler).</summary>
public interface IAutoscalerCredentials
{
    /// <summary>A new client certificate for the cluster, with the endpoint's address and CA.</summary>
    Task<AutoscalerCloudConfig> IssueAsync(string clusterUuid, CancellationToken ct);
}
