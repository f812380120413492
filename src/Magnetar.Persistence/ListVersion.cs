namespace Magnetar.Persistence;

/// <summary>
/// A counter the database itself bumps whenever what a list shows may have changed: triggers on <c>clusters</c>,
/// <c>nodegroups</c> and <c>cluster_templates</c> (migration <c>ListVersions</c>) fire on every insert, delete and
/// update of a shown column, whoever writes — this replica, another one, an older release during a rolling upgrade, or
/// SQL by hand. A rendered page is served again only while the counter it was rendered at is still the current one.
/// </summary>
public sealed class ListVersion
{
    /// <summary>The row the cluster lists depend on.</summary>
    public const string Clusters = "clusters";

    public string Name { get; set; } = "";
    public long Version { get; set; }
}
