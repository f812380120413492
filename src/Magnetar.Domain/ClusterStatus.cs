namespace Magnetar.Domain;

/// <summary>Magnum's cluster status values (magnum/objects/fields.py ClusterStatus).</summary>
public static class ClusterStatus
{
    public const string CreateInProgress = "CREATE_IN_PROGRESS";
    public const string CreateFailed = "CREATE_FAILED";
    public const string CreateComplete = "CREATE_COMPLETE";
    public const string UpdateInProgress = "UPDATE_IN_PROGRESS";
    public const string UpdateFailed = "UPDATE_FAILED";
    public const string UpdateComplete = "UPDATE_COMPLETE";
    public const string DeleteInProgress = "DELETE_IN_PROGRESS";
    public const string DeleteFailed = "DELETE_FAILED";
    public const string DeleteComplete = "DELETE_COMPLETE";
    public const string ResumeComplete = "RESUME_COMPLETE";
    public const string ResumeFailed = "RESUME_FAILED";
    public const string RestoreComplete = "RESTORE_COMPLETE";
    public const string RollbackInProgress = "ROLLBACK_IN_PROGRESS";
    public const string RollbackFailed = "ROLLBACK_FAILED";
    public const string RollbackComplete = "ROLLBACK_COMPLETE";
    public const string SnapshotComplete = "SNAPSHOT_COMPLETE";
    public const string CheckComplete = "CHECK_COMPLETE";
    public const string AdoptComplete = "ADOPT_COMPLETE";

    public static readonly IReadOnlyList<string> All =
    [
        CreateInProgress, CreateFailed, CreateComplete, UpdateInProgress, UpdateFailed, UpdateComplete,
        DeleteInProgress, DeleteFailed, DeleteComplete, ResumeComplete, ResumeFailed, RestoreComplete,
        RollbackInProgress, RollbackFailed, RollbackComplete, SnapshotComplete, CheckComplete, AdoptComplete,
    ];

    /// <summary>Where Magnum lets a CA rotation start (magnum/conductor/handlers/ca_conductor.py).</summary>
    public static readonly IReadOnlySet<string> CaRotationAllowed = new HashSet<string>
    {
        CreateComplete, UpdateComplete, ResumeComplete, RestoreComplete, RollbackComplete, SnapshotComplete, CheckComplete, AdoptComplete,
    };

    public static bool IsInProgress(string status) => status.EndsWith("_IN_PROGRESS", StringComparison.Ordinal);
    public static bool IsFailed(string status) => status.EndsWith("_FAILED", StringComparison.Ordinal);
}

public static class HealthStatus
{
    public const string Healthy = "HEALTHY";
    public const string Unhealthy = "UNHEALTHY";
    public const string Unknown = "UNKNOWN";
}

public static class ClusterOperations
{
    public const string Create = "create";
    public const string Update = "update";
    public const string Upgrade = "upgrade";
    public const string Delete = "delete";
    /// <summary>A CA rotation on the cluster's nodes (status UPDATE_IN_PROGRESS, as Magnum's).</summary>
    public const string RotateCa = "rotate_ca";
    /// <summary>Auto-healing replaces unhealthy nodes (status UPDATE_IN_PROGRESS, as Magnum's auto-healer's resize).</summary>
    public const string Heal = "heal";
}

/// <summary>Condition types a reconcile pass reports, in the order a cluster comes up.</summary>
public static class ConditionTypes
{
    public const string CertificatesReady = "CertificatesReady";
    public const string NetworkReady = "NetworkReady";
    public const string SecurityGroupsReady = "SecurityGroupsReady";
    public const string LoadBalancerReady = "LoadBalancerReady";
    public const string ControlPlaneReady = "ControlPlaneReady";
    public const string WorkersReady = "WorkersReady";
    public const string AddonsReady = "AddonsReady";
    /// <summary>Every node reported Ready through the bootstrap protocol (readiness mode "reports").</summary>
    public const string NodesReady = "NodesReady";
}
