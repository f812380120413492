namespace Magnetar.Domain;

/// <summary>A cluster template (Magnum's ClusterTemplate / baymodel).</summary>
public sealed class ClusterTemplate
{
    public long Id { get; set; }
    public string Uuid { get; set; } = "";
    public string Name { get; set; } = "";
    public string ProjectId { get; set; } = "";
    public string UserId { get; set; } = "";
    public string Coe { get; set; } = "kubernetes";
    public string ImageId { get; set; } = "";
    public string? FlavorId { get; set; }
    public string? MasterFlavorId { get; set; }
    public string? DnsNameserver { get; set; }
    public string? KeypairId { get; set; }
    public string? ExternalNetworkId { get; set; }
    public string? FixedNetwork { get; set; }
    public string? FixedSubnet { get; set; }
    public string? NetworkDriver { get; set; }
    public string? VolumeDriver { get; set; }
    public int? ApiserverPort { get; set; }
    public int? DockerVolumeSize { get; set; }
    public string? DockerStorageDriver { get; set; }
    public string? ClusterDistro { get; set; }
    public string? HttpProxy { get; set; }
    public string? HttpsProxy { get; set; }
    public string? NoProxy { get; set; }
    public bool RegistryEnabled { get; set; }
    public bool TlsDisabled { get; set; }
    public bool Public { get; set; }
    public bool Hidden { get; set; }
    public string ServerType { get; set; } = "vm";
    public string? InsecureRegistry { get; set; }
    public bool MasterLbEnabled { get; set; }
    public bool FloatingIpEnabled { get; set; } = true;
    public string? Tags { get; set; }
    public string? Driver { get; set; }
    public Dictionary<string, string> Labels { get; set; } = new();
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? UpdatedAt { get; set; }
}

/// <summary>A cluster: the tenant's desired spec plus what the conductor observed.</summary>
public sealed class Cluster
{
    public long Id { get; set; }
    public string Uuid { get; set; } = "";
    public string Name { get; set; } = "";
    public string ProjectId { get; set; } = "";
    public string UserId { get; set; } = "";
    public string ClusterTemplateId { get; set; } = "";
    public string? Keypair { get; set; }
    public int? DockerVolumeSize { get; set; }
    public Dictionary<string, string> Labels { get; set; } = new();
    public string? MasterFlavorId { get; set; }
    public string? FlavorId { get; set; }
    public int CreateTimeout { get; set; } = 60;
    public string? StackId { get; set; }
    public string Status { get; set; } = ClusterStatus.CreateInProgress;
    public string? StatusReason { get; set; }
    public string? HealthStatus { get; set; }
    public Dictionary<string, string>? HealthStatusReason { get; set; }
    public string? DiscoveryUrl { get; set; }
    public string? ApiAddress { get; set; }
    public string? CoeVersion { get; set; }
    public string? ContainerVersion { get; set; }
    public string? FixedNetwork { get; set; }
    public string? FixedSubnet { get; set; }
    public bool FloatingIpEnabled { get; set; } = true;
    public bool MasterLbEnabled { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? UpdatedAt { get; set; }

    // ---- reconciliation bookkeeping (not part of Magnum's API) ----
    /// <summary>Bumped on every change of the desired spec; the conductor works until ObservedGeneration catches up.</summary>
    public long Generation { get; set; } = 1;
    public long ObservedGeneration { get; set; }
    /// <summary>The operation the conductor is driving: create, update, upgrade, delete (null when idle).</summary>
    public string? Operation { get; set; }
    public DateTimeOffset? OperationStartedAt { get; set; }
    /// <summary>Which conductor holds the lease on this cluster, and until when.</summary>
    public string? LeaseOwner { get; set; }
    public DateTimeOffset? LeaseExpiresAt { get; set; }
    /// <summary>When the conductor should look at this cluster next (null: no work).</summary>
    public DateTimeOffset? NextReconcileAt { get; set; }
    /// <summary>Per-step conditions (NetworkReady, ControlPlaneReady, …) as the last pass saw them.</summary>
    public List<ClusterCondition> Conditions { get; set; } = new();
    /// <summary>Template to move to when an upgrade is requested (applied by the conductor).</summary>
    public string? UpgradeToTemplateId { get; set; }
    /// <summary>
    /// The step of an unfinished CA rotation (<see cref="CaRotationSteps"/>), null when none: set by
    /// <c>PATCH /v1/certificates</c>, kept when a step fails so that rotating again resumes where it stopped.
    /// </summary>
    public string? CaRotationStep { get; set; }
    /// <summary>When the current CA rotation step began or a node last completed it (a step's timeout counts from it).</summary>
    public DateTimeOffset? CaRotationProgressAt { get; set; }
    /// <summary>
    /// An upgrade's <c>max_batch_size</c>: how many new nodes a worker nodegroup may have beyond its asked count while
    /// old ones are replaced (control-plane nodes always go one at a time). Null when no upgrade runs.
    /// </summary>
    public int? UpgradeMaxBatchSize { get; set; }
    /// <summary>
    /// When the current operation last made progress (a node replaced, drained, joined): an upgrade or healing step
    /// that makes none within its timeout fails with the node and step named.
    /// </summary>
    public DateTimeOffset? ProgressAt { get; set; }
    /// <summary>When auto-healing last started replacing a node of this cluster (healing is rate-limited per cluster).</summary>
    public DateTimeOffset? LastHealAt { get; set; }

    public List<NodeGroup> NodeGroups { get; set; } = new();
}

public sealed class ClusterCondition
{
    public string Type { get; set; } = "";
    public bool Status { get; set; }
    public string? Reason { get; set; }
    public string? Message { get; set; }
    public DateTimeOffset LastTransitionAt { get; set; }
}

/// <summary>A group of nodes of one role and flavor (Magnum ≥ 1.9).</summary>
public sealed class NodeGroup
{
    public long Id { get; set; }
    public string Uuid { get; set; } = "";
    public string Name { get; set; } = "";
    public long ClusterDbId { get; set; }
    public string ClusterId { get; set; } = "";
    public string ProjectId { get; set; } = "";
    public int? DockerVolumeSize { get; set; }
    public Dictionary<string, string> Labels { get; set; } = new();
    public string? FlavorId { get; set; }
    public string? ImageId { get; set; }
    public List<string> NodeAddresses { get; set; } = new();
    public int NodeCount { get; set; } = 1;
    public string Role { get; set; } = NodeGroupRoles.Worker;
    public int MinNodeCount { get; set; }
    public int? MaxNodeCount { get; set; }
    public bool IsDefault { get; set; }
    public string? StackId { get; set; }
    public string Status { get; set; } = ClusterStatus.CreateInProgress;
    public string? StatusReason { get; set; }
    public string? Version { get; set; }
    /// <summary>Servers (names or ids) the tenant asked to remove in a resize; consumed by the conductor.</summary>
    public List<string> NodesToRemove { get; set; } = new();
    /// <summary>Set when the nodegroup is being deleted; the row goes once its nodes are gone.</summary>
    public bool DeleteRequested { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? UpdatedAt { get; set; }
}

/// <summary>
/// What a cluster gets when neither its request nor its template says, filled in at create so that the API shows
/// what the cluster really gets. Magnum fills a template's network_driver from kubernetes_default_network_driver
/// (flannel there; Calico here) and leaves flavors empty for its Heat templates' default, m1.small.
/// </summary>
public static class ClusterDefaults
{
    public const string NetworkDriver = "calico";
    public const string Flavor = "m1.small";
}

public static class NodeGroupRoles
{
    public const string Master = "master";
    public const string Worker = "worker";
    public const string DefaultMasterName = "default-master";
    public const string DefaultWorkerName = "default-worker";
}

public sealed class Quota
{
    public long Id { get; set; }
    public string ProjectId { get; set; } = "";
    public string Resource { get; set; } = "Cluster";
    public int HardLimit { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? UpdatedAt { get; set; }
}

/// <summary>A running Magnetar conductor, listed by GET /v1/mservices (Magnum's magnum_service table).</summary>
public sealed class ServiceRecord
{
    public long Id { get; set; }
    public string Host { get; set; } = "";
    public string Binary { get; set; } = "magnum-conductor";
    public bool Disabled { get; set; }
    public string? DisabledReason { get; set; }
    public DateTimeOffset? LastSeenUp { get; set; }
    public bool ForcedDown { get; set; }
    public long ReportCount { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? UpdatedAt { get; set; }
}

/// <summary>
/// A lease on work that only one replica should do at a time for all clusters (the health monitor): taken and kept
/// with a conditional UPDATE, like a cluster's lease, and taken over by another replica once it expires.
/// </summary>
public sealed class SingletonLease
{
    public long Id { get; set; }
    public string Name { get; set; } = "";
    public string? Owner { get; set; }
    public DateTimeOffset? ExpiresAt { get; set; }
}

/// <summary>A cluster's certificate authority. The private key is stored only in protected (encrypted) form.</summary>
public sealed class ClusterCertificateAuthority
{
    public long Id { get; set; }
    public string ClusterUuid { get; set; } = "";
    /// <summary>kubernetes (the cluster CA); etcd and front-proxy CAs come with the bootstrap work.</summary>
    public string CaType { get; set; } = "kubernetes";
    public string CertificatePem { get; set; } = "";
    public string ProtectedPrivateKey { get; set; } = "";
    public DateTimeOffset CreatedAt { get; set; }
}

/// <summary>
/// A cluster's own cloud credential (an OpenStack application credential of the creating user), created with the
/// cluster and revoked after its resources are gone. The secret is stored only in protected (encrypted) form.
/// </summary>
public sealed class ClusterCloudCredential
{
    public long Id { get; set; }
    public string ClusterUuid { get; set; } = "";
    public string CredentialId { get; set; } = "";
    public string UserId { get; set; } = "";
    public string ProtectedSecret { get; set; } = "";
    public DateTimeOffset CreatedAt { get; set; }
}

/// <summary>An event in a cluster's history: what the conductor did or saw, for operators and tenants.</summary>
public sealed class ClusterEvent
{
    public long Id { get; set; }
    public string ClusterUuid { get; set; } = "";
    public DateTimeOffset At { get; set; }
    public string Type { get; set; } = "Normal";
    public string Reason { get; set; } = "";
    public string Message { get; set; } = "";
}

/// <summary>
/// A credential a node uses to talk to Magnetar's bootstrap endpoint. Only a hash of the secret is stored.
/// <c>fetch</c>: single-use and short-lived, carried in the server's user-data, exchanged for the node's bundle;
/// <c>report</c>: delivered inside the bundle (never in user-data), lets the node post its progress.
/// </summary>
public sealed class NodeBootstrapCredential
{
    public long Id { get; set; }
    /// <summary>Public part of the token (mgb1.&lt;TokenId&gt;.&lt;secret&gt;), the lookup key.</summary>
    public string TokenId { get; set; } = "";
    public string SecretHash { get; set; } = "";
    public string Kind { get; set; } = NodeCredentialKinds.Fetch;
    public string ClusterUuid { get; set; } = "";
    public string NodeName { get; set; } = "";
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset ExpiresAt { get; set; }
    public DateTimeOffset? UsedAt { get; set; }
}

public static class NodeCredentialKinds
{
    public const string Fetch = "fetch";
    public const string Report = "report";
}

/// <summary>What a node has reported of its bootstrap (one row per node, created when its server is requested).</summary>
public sealed class NodeBootstrapState
{
    public long Id { get; set; }
    public string ClusterUuid { get; set; } = "";
    public string NodeName { get; set; } = "";
    public string NodeGroup { get; set; } = "";
    /// <summary>init (first control-plane node), control-plane (joining), worker.</summary>
    public string Role { get; set; } = "";
    /// <summary>The last phase reported (<see cref="NodePhases"/>), or "pending" before the first report.</summary>
    public string Phase { get; set; } = NodePhases.Pending;
    public bool Failed { get; set; }
    public int? ExitCode { get; set; }
    public string? LogTail { get; set; }
    /// <summary>When the node's server was requested (its user-data rendered).</summary>
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? LastReportAt { get; set; }
    /// <summary>
    /// The addresses the cloud gave the node's server (fixed and floating, comma-separated), recorded by the conductor;
    /// its kubelet serving certificate carries them, so a node fetching its bundle before they are known is told to ask again.
    /// </summary>
    public string? Addresses { get; set; }
    /// <summary>
    /// The id of the node's server in the cloud and its last seen status (ACTIVE, BUILD, ERROR…), recorded by the
    /// conductor: the cluster-autoscaler knows a node by its provider id, <c>openstack:///&lt;server id&gt;</c>.
    /// </summary>
    public string? ServerId { get; set; }
    public string? ServerStatus { get; set; }
    /// <summary>The last step of the cluster's current CA rotation this node completed (<see cref="CaRotationSteps"/>).</summary>
    public string? RotationStep { get; set; }
    /// <summary>Why this node failed the current CA rotation step (node, step, exit code, log tail); null when it did not.</summary>
    public string? RotationFailure { get; set; }
    /// <summary>
    /// When the kubelet serving certificate Magnetar last gave this node expires (null before its bundle): the node's
    /// agent is handed a new one when less than a third of its validity is left.
    /// </summary>
    public DateTimeOffset? ServingCertificateExpiresAt { get; set; }
    /// <summary>
    /// On control-plane nodes, when the certificates kubeadm issued there (API server, its clients, the control plane's
    /// kubeconfigs; kubeadm's default validity, one year) expire: renewed through the node's agent before they do.
    /// </summary>
    public DateTimeOffset? ControlPlaneCertificatesExpireAt { get; set; }
    /// <summary>The Kubernetes version this node's server was created to run (its nodegroup's at that moment).</summary>
    public string? KubernetesVersion { get; set; }
    /// <summary>
    /// What the node's server was made from, <c>version|image</c>: a node whose revision differs from its nodegroup's
    /// is replaced by an upgrade. Recorded when its user-data is rendered, i.e. when the server is requested.
    /// </summary>
    public string? Revision { get; set; }
    /// <summary>The kubelet version the node itself reported (<c>kubelet --version</c>), null before it did.</summary>
    public string? KubeletVersion { get; set; }
    /// <summary>The node's last authenticated contact (a report, or its agent asking for work): its heartbeat.</summary>
    public DateTimeOffset? LastSeenAt { get; set; }
    /// <summary>Where the node's retirement stands (<see cref="NodeRetireSteps"/>); null while it serves.</summary>
    public string? RetireStep { get; set; }
    /// <summary>When the current retirement step began (its timeout counts from it).</summary>
    public DateTimeOffset? RetireStepAt { get; set; }
    /// <summary>Why the node is being replaced: "upgrade", or the health problem auto-healing acts on.</summary>
    public string? RetireReason { get; set; }
    /// <summary>Since when the health monitor has seen this node unhealthy (null: healthy or not judged).</summary>
    public DateTimeOffset? UnhealthySince { get; set; }
    /// <summary>What the health monitor found wrong with the node, e.g. "server ERROR", "NotReady (KubeletNotReady)".</summary>
    public string? UnhealthyReason { get; set; }
}

/// <summary>
/// The steps of retiring a node that is replaced (upgrade, healing). Its replacement has joined before it starts.
/// </summary>
public static class NodeRetireSteps
{
    /// <summary>Cordon and evict its pods through the cluster's API (PodDisruptionBudgets honoured).</summary>
    public const string Drain = "drain";
    /// <summary>A control-plane node leaves etcd (its agent runs <c>kubeadm reset phase remove-etcd-member</c>) before its server goes.</summary>
    public const string LeaveEtcd = "leave-etcd";
    /// <summary>Its server is deleted and its Node object removed.</summary>
    public const string Remove = "remove";
}

/// <summary>
/// The record of a replaced first control-plane node, kept under a new name as the mark that the cluster was
/// initialised: no later server runs kubeadm init, and a new server may take the old name (it joins).
/// </summary>
public static class InitMarker
{
    /// <summary>What a kept record's name contains (also usable in queries).</summary>
    public const string Infix = "~retired-";

    public static bool Is(NodeBootstrapState s) => s.NodeName.Contains(Infix, StringComparison.Ordinal);

    /// <summary>Renames the record of a first control-plane node whose server is gone or whose name a new server takes.</summary>
    public static void Keep(NodeBootstrapState s, DateTimeOffset now)
    {
        s.NodeName = $"{s.NodeName}{Infix}{now.ToUnixTimeMilliseconds()}";
        s.RetireStep = null;
        s.ServingCertificateExpiresAt = s.ControlPlaneCertificatesExpireAt = null;
    }
}

/// <summary>A node's kubeadm role (<see cref="NodeBootstrapState.Role"/>).</summary>
public static class NodeRoles
{
    /// <summary>The first control-plane node: kubeadm init, once per cluster.</summary>
    public const string Init = "init";
    /// <summary>A control-plane node that joins (kubeadm join --control-plane).</summary>
    public const string ControlPlane = "control-plane";
    public const string Worker = "worker";
}

/// <summary>The phases a node reports, in order.</summary>
public static class NodePhases
{
    public const string Pending = "pending";
    public const string Booted = "booted";
    public const string ContainerdReady = "containerd-ready";
    public const string KubeadmDone = "kubeadm-done";
    public const string AddonsApplied = "addons-applied";
    public const string Ready = "ready";
    public static readonly string[] All = [Booted, ContainerdReady, KubeadmDone, AddonsApplied, Ready];
    /// <summary>Reported by a node's agent after it installed a renewed kubelet serving certificate (not a bootstrap phase).</summary>
    public const string KubeletServingRenewed = "kubelet-serving-renewed";
    /// <summary>Reported by a control-plane node's agent after <c>kubeadm certs renew all</c> and a control-plane restart.</summary>
    public const string ControlPlaneCertificatesRenewed = "control-plane-certs-renewed";
    /// <summary>What a node's agent reports for the certificates it renews.</summary>
    public static readonly string[] Renewals = [KubeletServingRenewed, ControlPlaneCertificatesRenewed];
    /// <summary>Reported by a retiring control-plane node's agent once it removed its own etcd member.</summary>
    public const string EtcdMemberRemoved = "etcd-member-removed";
}

/// <summary>
/// The steps of a CA rotation on a running cluster, in order (Kubernetes' "manual rotation of CA certificates", driven
/// by Magnetar and carried out on each node by its agent). Control-plane nodes take each step one at a time, then the
/// workers all at once; a step begins only when every node finished the one before.
/// </summary>
public static class CaRotationSteps
{
    /// <summary>Every component trusts both CAs; control-plane nodes still sign with the old one.</summary>
    public const string Trust = "trust";
    /// <summary>Control-plane nodes sign with the new CA and re-issue their certificates; every kubelet gets new ones.</summary>
    public const string Reissue = "reissue";
    /// <summary>The old CA is trusted nowhere any more.</summary>
    public const string Finish = "finish";
    public static readonly string[] All = [Trust, Reissue, Finish];

    /// <summary>The phase a node reports for a step: ca-trust, ca-reissue, ca-finish.</summary>
    public static string Phase(string step) => "ca-" + step;
    public static string? StepOfPhase(string phase) => All.FirstOrDefault(s => Phase(s) == phase);
    public static string? Next(string step) => Array.IndexOf(All, step) is var i && i >= 0 && i + 1 < All.Length ? All[i + 1] : null;
}
