namespace Magnetar.Persistence;

/// <summary>
/// The triggers behind <see cref="ListVersion"/> (migration <c>ListVersions</c>): every insert and delete of a cluster or
/// nodegroup, and every update of a column a cluster list (summary or detail) or show renders or sorts by, bumps the
/// <c>clusters</c> row. Bookkeeping columns (leases, next reconcile, generations, rotation and upgrade progress) do not:
/// the conductor writes them all the time and no list shows them. A template's labels count (the detail list's
/// labels_overridden/added/skipped compare against them).
/// On PostgreSQL the triggers are deferred constraint triggers: the counter row is locked only while a transaction
/// commits, after all its other writes, so two transactions never wait on each other for it in a cycle.
/// </summary>
public static class ListVersionTriggers
{
    public static readonly string[] ClusterColumns =
    [
        "Uuid", "Name", "ProjectId", "UserId", "ClusterTemplateId", "Keypair", "DockerVolumeSize", "Labels", "MasterFlavorId", "FlavorId",
        "CreateTimeout", "StackId", "Status", "StatusReason", "HealthStatus", "HealthStatusReason", "DiscoveryUrl", "ApiAddress",
        "CoeVersion", "ContainerVersion", "FixedNetwork", "FixedSubnet", "FloatingIpEnabled", "MasterLbEnabled", "CreatedAt", "UpdatedAt",
        "Conditions",
    ];

    public static readonly string[] NodeGroupColumns = ["ClusterDbId", "Name", "Role", "NodeCount", "DeleteRequested", "NodeAddresses", "Status", "StatusReason"];

    public static readonly string[] TemplateColumns = ["Uuid", "Labels"];

    private static readonly (string Table, string[] Columns, bool OnInsert)[] Watched =
    [
        ("clusters", ClusterColumns, true), ("nodegroups", NodeGroupColumns, true), ("cluster_templates", TemplateColumns, false),
    ];

    private static string Columns(string[] columns) => string.Join(", ", columns.Select(c => $"\"{c}\""));

    private const string Bump = $"UPDATE list_versions SET \"Version\" = \"Version\" + 1 WHERE \"Name\" = '{ListVersion.Clusters}';";

    public static IEnumerable<string> SqliteUp()
    {
        foreach (var (table, columns, onInsert) in Watched)
        {
            if (onInsert) yield return $"CREATE TRIGGER {table}_list_version_insert AFTER INSERT ON {table} BEGIN {Bump} END;";
            yield return $"CREATE TRIGGER {table}_list_version_delete AFTER DELETE ON {table} BEGIN {Bump} END;";
            yield return $"CREATE TRIGGER {table}_list_version_update AFTER UPDATE OF {Columns(columns)} ON {table} BEGIN {Bump} END;";
        }
    }

    public static IEnumerable<string> SqliteDown()
    {
        foreach (var (table, _, onInsert) in Watched)
        {
            if (onInsert) yield return $"DROP TRIGGER IF EXISTS {table}_list_version_insert;";
            yield return $"DROP TRIGGER IF EXISTS {table}_list_version_delete;";
            yield return $"DROP TRIGGER IF EXISTS {table}_list_version_update;";
        }
    }

    public static IEnumerable<string> PostgresUp()
    {
        yield return $"""
            CREATE FUNCTION magnetar_bump_list_version() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              {Bump}
              RETURN NULL;
            END $$;
            """;
        foreach (var (table, columns, onInsert) in Watched)
            yield return $"CREATE CONSTRAINT TRIGGER {table}_list_version AFTER {(onInsert ? "INSERT OR " : "")}DELETE OR UPDATE OF {Columns(columns)} ON {table} " +
                         "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION magnetar_bump_list_version();";
    }

    public static IEnumerable<string> PostgresDown()
    {
        foreach (var (table, _, _) in Watched) yield return $"DROP TRIGGER IF EXISTS {table}_list_version ON {table};";
        yield return "DROP FUNCTION IF EXISTS magnetar_bump_list_version();";
    }
}
