namespace Magnetar.Cloud.OpenStack;

/// <summary>Configuration section <c>Magnetar:Cloud:OpenStack</c>: where the cloud is and how Magnetar talks to it.</summary>
public sealed class OpenStackOptions
{
    /// <summary>Keystone v3 endpoint (…/v3). Defaults to <c>Magnetar:Identity:Keystone:AuthUrl</c>.</summary>
    public string AuthUrl { get; set; } = "";
    public string Region { get; set; } = "RegionOne";
    /// <summary>Catalog interface used to reach the services: public, internal or admin.</summary>
    public string Interface { get; set; } = "public";

    /// <summary>
    /// Magnetar's service user (defaults to the Keystone identity mode's). Used for what no cluster credential can
    /// do: revoking a cluster's application credential after the cluster's resources are gone.
    /// </summary>
    public string Username { get; set; } = "";
    public string Password { get; set; } = "";
    public string ProjectName { get; set; } = "service";
    public string UserDomainName { get; set; } = "Default";
    public string ProjectDomainName { get; set; } = "Default";

    /// <summary>
    /// Roles a cluster's application credential may carry: it gets those of them the creating user has (least
    /// privilege — never admin). Octavia's default policy needs load-balancer_member for Services of type LoadBalancer.
    /// </summary>
    public List<string> ApplicationCredentialRoles { get; set; } = ["member", "load-balancer_member"];

    /// <summary>Private network of a cluster that names no fixed network (Magnum's <c>fixed_subnet_cidr</c> label overrides).</summary>
    public string DefaultSubnetCidr { get; set; } = "10.0.0.0/24";
    public List<string> DnsNameservers { get; set; } = [];

    /// <summary>
    /// What cluster delete does with the Cinder volumes the cluster's CSI driver created for PersistentVolumes (metadata
    /// <c>cinder.csi.openstack.org/cluster = magnetar-&lt;uuid&gt;</c>) that still exist: <c>Retain</c> (default) keeps
    /// them — they are tenant data, as a PersistentVolume's own Retain policy keeps them — and logs their ids;
    /// <c>Delete</c> deletes them once the servers are gone (detached), and the cluster is gone only when they are.
    /// </summary>
    public CsiVolumePolicy CsiVolumesOnDelete { get; set; } = CsiVolumePolicy.Retain;

    /// <summary>Seconds one HTTP attempt may take, and how many times an idempotent call is retried.</summary>
    public int AttemptTimeoutSeconds { get; set; } = 30;
    public int MaxRetries { get; set; } = 3;
}

public enum CsiVolumePolicy { Retain, Delete }
