using System.Text.Json.Nodes;
using Magnetar.Conductor;
using Magnetar.Domain;
using Magnetar.Identity;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;

namespace Magnetar.Api;

/// <summary>/v1/clusters and /v1/clusters/{id}/actions/{resize,upgrade}.</summary>
public static class ClustersApi
{
    private static readonly Dictionary<string, string> SortKeys = new()
    {
        ["id"] = "Id", ["uuid"] = "Uuid", ["name"] = "Name", ["status"] = "Status", ["created_at"] = "CreatedAt",
        ["updated_at"] = "UpdatedAt", ["cluster_template_id"] = "ClusterTemplateId", ["project_id"] = "ProjectId",
        ["create_timeout"] = "CreateTimeout", ["health_status"] = "HealthStatus",
    };

    /// <summary>Magnum's conductor allows updates only from these states.</summary>
    private static readonly string[] UpdatableStates =
    [
        ClusterStatus.CreateComplete, ClusterStatus.UpdateComplete, ClusterStatus.ResumeComplete, ClusterStatus.RestoreComplete,
        ClusterStatus.RollbackComplete, ClusterStatus.SnapshotComplete, ClusterStatus.CheckComplete, ClusterStatus.AdoptComplete,
    ];

    public static void Map(RouteGroupBuilder v1)
    {
        var g = v1.MapGroup("/clusters");
        g.MapGet("", (ApiContext ctx, RenderedCache cache, CancellationToken ct) => List(ctx, cache, expand: false, ct)).Magnum("get_all");
        g.MapGet("/detail", (ApiContext ctx, RenderedCache cache, CancellationToken ct) => List(ctx, cache, expand: true, ct)).Magnum("detail");
        g.MapGet("/{ident}", Show).Magnum("get_one");
        g.MapPost("", Create).Magnum("post");
        g.MapPatch("/{ident}", Update).Magnum("patch");
        g.MapDelete("/{ident}", Delete).Magnum("delete");
        g.MapPost("/{ident}/actions/resize", Resize).Magnum("resize", new ApiVersion(1, 7));
        g.MapPost("/{ident}/actions/upgrade", Upgrade).Magnum("upgrade", new ApiVersion(1, 7));
    }

    private static async Task<IResult> List(ApiContext ctx, RenderedCache cache, bool expand, CancellationToken ct)
    {
        var caller = Policy.Reader(ctx.Http, expand ? "cluster:detail" : "cluster:get_all");
        var page = PageRequest.From(ctx.Http.Request, SortKeys);
        var baseUrl = ctx.BaseUrl;
        // Rendered pages are served again while the database's list version is unchanged (RenderedCache): the version is
        // read before the rows, so that no write between the two can leave a page tagged newer than its rows.
        var version = await cache.VersionAsync(ctx.Db, ct);
        var key = string.Join('\n', expand ? "detail" : "list", caller.IsAdmin ? "*" : caller.ProjectId, page.Limit, page.Marker, page.SortKey, page.Descending, baseUrl);
        if (cache.Get(key, version) is { } cached) return JsonBytes.Result(cached);

        var q = ctx.VisibleClusters(caller).AsNoTracking();
        Cluster? marker = null;
        if (page.Marker is not null)
            marker = await q.FirstOrDefaultAsync(c => c.Uuid == page.Marker, ct) ?? throw MagnumError.ClusterNotFound(page.Marker);
        var stacks = ctx.Options.ClusterStacks;
        var resource = expand ? "clusters/detail" : "clusters";
        byte[] body;
        if (expand)
        {
            var items = await q.Page(page, SortKeys, marker).Include(c => c.NodeGroups).AsSplitQuery().ToListAsync(ct);
            var ids = items.Select(c => c.ClusterTemplateId).Distinct().ToList();
            var templateLabels = await ctx.Db.ClusterTemplates.AsNoTracking().Where(t => ids.Contains(t.Uuid))
                .ToDictionaryAsync(t => t.Uuid, t => t.Labels, ct);
            var next = page.NextLink(baseUrl, resource, items.Count, items.LastOrDefault()?.Uuid);
            body = RenderList(items, next, (w, c) => Views.WriteCluster(w, c, templateLabels.GetValueOrDefault(c.ClusterTemplateId) ?? new(), baseUrl, withConditions: false, stacks));
        }
        else
        {
            // The summary needs a few columns and the node counts: the database adds those up, nothing else is loaded.
            var rows = await q.Page(page, SortKeys, marker).Select(c => new ClusterSummaryRow(c.Uuid, c.Name, c.ClusterTemplateId, c.Keypair,
                c.DockerVolumeSize, c.Labels, c.Status, c.MasterFlavorId, c.FlavorId, c.CreateTimeout, c.StackId, c.HealthStatus,
                c.NodeGroups.Where(n => n.Role != NodeGroupRoles.Master && !n.DeleteRequested).Sum(n => (int?)n.NodeCount) ?? 0,
                c.NodeGroups.Where(n => n.Role == NodeGroupRoles.Master).Sum(n => (int?)n.NodeCount) ?? 0)).ToListAsync(ct);
            var next = page.NextLink(baseUrl, resource, rows.Count, rows.LastOrDefault()?.Uuid);
            body = RenderList(rows, next, (w, r) => Views.WriteClusterSummary(w, r, baseUrl, stacks));
        }
        cache.Put(key, version, body);
        return JsonBytes.Result(body);
    }

    private static byte[] RenderList<T>(List<T> items, string? next, Action<System.Text.Json.Utf8JsonWriter, T> writeItem)
        => JsonBytes.Render(w =>
        {
            w.WriteStartObject();
            w.WriteStartArray("clusters");
            foreach (var item in items) writeItem(w, item);
            w.WriteEndArray();
            if (next is not null) w.WriteString("next", next);
            w.WriteEndObject();
        });

    private static async Task<IResult> Show(ApiContext ctx, RenderedCache cache, string ident, CancellationToken ct)
    {
        var caller = Policy.Reader(ctx.Http, "cluster:get");
        var baseUrl = ctx.BaseUrl;
        var version = await cache.VersionAsync(ctx.Db, ct);
        var key = string.Join('\n', "show", caller.IsAdmin ? "*" : caller.ProjectId, ident, baseUrl);
        if (cache.Get(key, version) is { } cached) return JsonBytes.Result(cached);
        var c = await ctx.FindClusterAsync(caller, ident, track: false, ct);
        var labels = await ctx.Db.ClusterTemplates.AsNoTracking().Where(t => t.Uuid == c.ClusterTemplateId).Select(t => t.Labels).FirstOrDefaultAsync(ct);
        var body = JsonBytes.Render(w => Views.WriteCluster(w, c, labels ?? new(), baseUrl, withConditions: true, ctx.Options.ClusterStacks));
        cache.Put(key, version, body);
        return JsonBytes.Result(body);
    }

    private static async Task<IResult> Create(ApiContext ctx, IClusterCertificates certs, CancellationToken ct)
    {
        var caller = Policy.Member(ctx.Http, "cluster:create");
        var version = ApiVersion.Of(ctx.Http);
        var body = await BodyReader.ReadObjectAsync(ctx.Http.Request, ct);
        var v = Schemas.Cluster.Validate(body);
        string? S(string k) => v.TryGetValue(k, out var x) ? (string?)x : null;
        int? I(string k) => v.TryGetValue(k, out var x) ? (int?)x : null;
        bool? B(string k) => v.TryGetValue(k, out var x) ? (bool?)x : null;

        var nodeCount = I("node_count") ?? 1;
        var masterCount = I("master_count") ?? 1;
        if (nodeCount == 0 && version < new ApiVersion(1, 10))
            throw MagnumError.BadRequest("Resizing a nodegroup to zero is not supported in the provided microversion.");

        await CheckQuotaAsync(ctx, caller, ct);

        var templateIdent = S("cluster_template_id")!;
        ClusterTemplate template;
        try { template = await ctx.FindTemplateAsync(caller, templateIdent, track: false, ct); }
        catch (MagnumError e) when (e.StatusCode == 404 && version < new ApiVersion(1, 10))
        {
            throw MagnumError.BadRequest(e.Message); // Magnum's ct_not_found_to_bad_request before 1.10
        }

        var labels = Labels.Inherit(template.Labels, v.TryGetValue("labels", out var l) ? l as Dictionary<string, string> : null, B("merge_labels") ?? false);
        LabelRules.Validate(labels);
        var masterLb = B("master_lb_enabled") ?? template.MasterLbEnabled;
        if (masterCount > 1 && !masterLb)
            throw MagnumError.BadRequest("master_count must be 1 when master_lb_enabled is False");

        // As Magnum (validate_os_resources with the template and the cluster's overrides): the template's image and
        // external network may have been deleted since the template was made.
        // Flavors neither the request nor the template name are the default the cluster gets, shown as such.
        var flavor = S("flavor_id") ?? template.FlavorId ?? ClusterDefaults.Flavor;
        var masterFlavor = S("master_flavor_id") ?? template.MasterFlavorId ?? ClusterDefaults.Flavor;
        var uuid = Guid.NewGuid().ToString();
        await ctx.ValidateCloudReferencesAsync(string.IsNullOrEmpty(template.ImageId) ? null : template.ImageId, [flavor, masterFlavor],
            template.ExternalNetworkId, S("keypair") ?? template.KeypairId, caller.ProjectId, ct, forCluster: uuid);

        var name = S("name") ?? ResourceNames.Generate("cluster");
        if (await NameInUseAsync(ctx, caller.ProjectId, name, ct))
            throw MagnumError.Conflict($"A cluster with name {name} already exists in this project.");

        var now = ctx.Now;
        var cluster = new Cluster
        {
            Uuid = uuid,
            Name = name,
            ProjectId = caller.ProjectId,
            UserId = caller.UserId,
            ClusterTemplateId = template.Uuid,
            Keypair = S("keypair") ?? template.KeypairId,
            DockerVolumeSize = I("docker_volume_size") ?? template.DockerVolumeSize,
            Labels = labels,
            MasterFlavorId = masterFlavor,
            FlavorId = flavor,
            CreateTimeout = I("create_timeout") ?? 60,
            FixedNetwork = S("fixed_network") ?? template.FixedNetwork,
            FixedSubnet = S("fixed_subnet") ?? template.FixedSubnet,
            FloatingIpEnabled = B("floating_ip_enabled") ?? template.FloatingIpEnabled,
            MasterLbEnabled = masterLb,
            DiscoveryUrl = S("discovery_url"),
            Status = ClusterStatus.CreateInProgress,
            StatusReason = "Cluster accepted; waiting for the conductor",
            CreatedAt = now,
            Operation = ClusterOperations.Create,
            OperationStartedAt = now,
            NextReconcileAt = now,
        };
        cluster.NodeGroups.Add(NewNodeGroup(cluster, NodeGroupRoles.DefaultMasterName, NodeGroupRoles.Master, masterCount, cluster.MasterFlavorId, template.ImageId, now, isDefault: true, min: 1));
        var (workerMin, workerMax) = AutoscalingRange(ctx, labels, nodeCount);
        cluster.NodeGroups.Add(NewNodeGroup(cluster, NodeGroupRoles.DefaultWorkerName, NodeGroupRoles.Worker, nodeCount, cluster.FlavorId, template.ImageId, now, isDefault: true,
            min: workerMin, max: workerMax));
        // The row first, the cloud credential second: a credential is never made for a cluster the database does not
        // know. Until the credential is saved the conductor leaves the cluster alone; if this process dies in between,
        // the conductor fails the cluster after a grace period and its delete revokes a credential found by name.
        cluster.NextReconcileAt = now + CredentialGrace;
        cluster.StatusReason = "Cluster accepted; creating its cloud credential";
        ctx.Db.Clusters.Add(cluster);
        // The CA is born with the cluster (one transaction): the API can serve it at once and no conductor pass races to create it.
        await certs.EnsureCaAsync(ctx.Db, cluster, ct, nodeSecrets: false);
        try { await ctx.Db.SaveChangesAsync(ct); }
        catch (DbUpdateException)
        {
            // The unique (project, name) index caught a concurrent create of the same name.
            ctx.Db.ChangeTracker.Clear();
            if (await NameInUseAsync(ctx, caller.ProjectId, name, ct))
                throw MagnumError.Conflict($"A cluster with name {name} already exists in this project.");
            throw;
        }
        try
        {
            await ctx.IssueCloudCredentialAsync(cluster, caller, ct);
        }
        catch
        {
            // The cluster never existed: revoke a credential Keystone may have made but not answered with, then the rows go.
            await ctx.RevokeUnrecordedCloudCredentialAsync(cluster, CancellationToken.None);
            ctx.Db.ChangeTracker.Clear();
            await certs.DeleteAsync(ctx.Db, cluster.Uuid, CancellationToken.None);
            await ctx.Db.Clusters.Where(c => c.Id == cluster.Id).ExecuteDeleteAsync(CancellationToken.None);
            throw;
        }
        cluster.NextReconcileAt = ctx.Now;
        cluster.StatusReason = "Cluster accepted; waiting for the conductor";
        await ctx.Db.SaveChangesAsync(ct);
        ctx.Poke();
        return Results.Json(new JsonObject { ["uuid"] = cluster.Uuid }, statusCode: 202);
    }

    /// <summary>How long a new cluster waits for its cloud credential before the conductor looks at it anyway.</summary>
    private static readonly TimeSpan CredentialGrace = TimeSpan.FromMinutes(2);

    /// <summary>
    /// Whether a cluster of the project that is not being deleted has this name — the same rule as the filtered
    /// unique index on (project, name) in MagnetarDbContext.
    /// </summary>
    private static Task<bool> NameInUseAsync(ApiContext ctx, string projectId, string name, CancellationToken ct)
        => ctx.Db.Clusters.AsNoTracking().AnyAsync(c => c.ProjectId == projectId && c.Name == name
            && c.Operation != ClusterOperations.Delete && c.Status != ClusterStatus.DeleteFailed, ct);

    /// <summary>
    /// The default worker nodegroup's range from Magnum's labels <c>min_node_count</c> / <c>max_node_count</c> (what
    /// Magnum's autoscaler is configured with), checked as Magnum checks a nodegroup's; and <c>auto_scaling_enabled=true</c>
    /// needs this deployment's autoscaler endpoint.
    /// </summary>
    private static (int Min, int? Max) AutoscalingRange(ApiContext ctx, IReadOnlyDictionary<string, string> labels, int nodeCount)
    {
        int? Count(string key)
        {
            if (!labels.TryGetValue(key, out var text) || string.IsNullOrWhiteSpace(text)) return null;
            return int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n)
                ? n : throw MagnumError.BadRequest($"Label {key}={text} is not a non-negative integer.");
        }
        var min = Count("min_node_count") ?? 0;
        var max = Count("max_node_count");
        if (max is { } mx && mx < min) throw MagnumError.BadRequest($"min_node_count ({min}) should be less or equal to max_node_count ({mx}).");
        if (max is { } m2 && nodeCount > m2) throw MagnumError.BadRequest($"node_count ({nodeCount}) should be less or equal to max_node_count ({m2}).");
        if (min > nodeCount) throw MagnumError.BadRequest($"min_node_count ({min}) should be less or equal to node_count ({nodeCount}).");
        if (Labels.Flag(labels, "auto_scaling_enabled", false) && !ctx.Options.AutoscalerEnabled)
            throw MagnumError.BadRequest("auto_scaling_enabled=true: this Magnetar deployment has no autoscaler endpoint (the operator sets Magnetar:Autoscaler:Port).");
        return (min, max);
    }

    internal static NodeGroup NewNodeGroup(Cluster c, string name, string role, int count, string? flavor, string? image, DateTimeOffset now, bool isDefault, int min, int? max = null)
        => new()
        {
            Uuid = Guid.NewGuid().ToString(),
            Name = name,
            ClusterId = c.Uuid,
            ProjectId = c.ProjectId,
            DockerVolumeSize = c.DockerVolumeSize,
            Labels = new Dictionary<string, string>(c.Labels),
            FlavorId = flavor,
            ImageId = image,
            NodeCount = count,
            Role = role,
            MinNodeCount = Math.Min(min, count),
            MaxNodeCount = max,
            IsDefault = isDefault,
            Status = ClusterStatus.CreateInProgress,
            CreatedAt = now,
        };

    private static async Task CheckQuotaAsync(ApiContext ctx, AuthContext caller, CancellationToken ct)
    {
        var quota = await ctx.Db.Quotas.AsNoTracking().FirstOrDefaultAsync(q => q.ProjectId == caller.ProjectId && q.Resource == "Cluster", ct);
        var limit = quota?.HardLimit ?? ctx.Options.DefaultMaxClustersPerProject;
        var count = await ctx.Db.Clusters.CountAsync(c => c.ProjectId == caller.ProjectId, ct);
        if (count >= limit)
            throw MagnumError.Forbidden($"Resource limit exceeded: You have reached the maximum clusters per project, {limit}. You may delete a cluster to make room for a new one.");
    }

    private static async Task<IResult> Update(ApiContext ctx, string ident, CancellationToken ct)
    {
        var caller = Policy.Member(ctx.Http, "cluster:update");
        var version = ApiVersion.Of(ctx.Http);
        var patch = await BodyReader.ReadAsync(ctx.Http.Request, ct);
        JsonPatch.EnsureWellFormed(patch);
        var cluster = await ctx.FindClusterAsync(caller, ident, track: true, ct);
        var templateLabels = await ctx.Db.ClusterTemplates.AsNoTracking().Where(t => t.Uuid == cluster.ClusterTemplateId).Select(t => t.Labels).FirstOrDefaultAsync(ct) ?? new();
        var before = Views.Cluster(cluster, templateLabels, ctx.BaseUrl, withConditions: false);
        var after = JsonPatch.Apply(before, patch, Schemas.ClusterInternal, ["/cluster_template_id"]);
        var delta = after.Where(kv => !JsonNode.DeepEquals(kv.Value, before[kv.Key])).Select(kv => kv.Key).ToList();
        var disallowed = delta.Except(Schemas.ClusterUpdatable).ToList();
        if (disallowed.Count > 0)
            throw MagnumError.BadRequest($"cannot change cluster property(ies) {string.Join(", ", disallowed)}.");
        var v = Schemas.Cluster.Validate(after);
        if (delta.Count == 0) return Results.Json(new JsonObject { ["uuid"] = cluster.Uuid }, statusCode: 202);

        if (delta.Contains("health_status") || delta.Contains("health_status_reason"))
        {
            // Magnum: cluster:update_health_status is admin_or_user (the cluster's creator).
            if (!caller.IsAdmin && caller.UserId != cluster.UserId) throw MagnumError.PolicyNotAuthorized("cluster:update_health_status");
            cluster.HealthStatus = v.GetValueOrDefault("health_status") as string;
            cluster.HealthStatusReason = v.GetValueOrDefault("health_status_reason") as Dictionary<string, string>;
        }
        if (delta.Contains("node_count"))
        {
            var nodeCount = (int)v["node_count"]!;
            if (nodeCount == 0 && version < new ApiVersion(1, 10))
                throw MagnumError.BadRequest("Resizing a nodegroup to zero is not supported in the provided microversion.");
            var worker = DefaultWorker(cluster);
            EnsureUpdatable(cluster);
            var others = Views.NodeCount(cluster) - worker.NodeCount;
            worker.NodeCount = Math.Max(0, nodeCount - others);
            worker.MinNodeCount = Math.Min(worker.MinNodeCount, worker.NodeCount);
            worker.Status = ClusterStatus.UpdateInProgress;
            worker.UpdatedAt = ctx.Now;
            StartOperation(ctx, cluster, ClusterOperations.Update);
        }
        cluster.UpdatedAt = ctx.Now;
        await SaveAsync(ctx, ct);
        return Results.Json(new JsonObject { ["uuid"] = cluster.Uuid }, statusCode: 202);
    }

    private static async Task<IResult> Delete(ApiContext ctx, string ident, CancellationToken ct)
    {
        var caller = Policy.Member(ctx.Http, "cluster:delete");
        var cluster = await ctx.FindClusterAsync(caller, ident, track: true, ct);
        if (cluster.Status != ClusterStatus.DeleteInProgress)
        {
            // One atomic UPDATE: a conductor pass running on this cluster right now fails its optimistic
            // concurrency check (RowVersion) and the next pass starts the deletion.
            var now = ctx.Now;
            await ctx.Db.Clusters.Where(c => c.Id == cluster.Id).ExecuteUpdateAsync(s => s
                .SetProperty(c => c.Status, ClusterStatus.DeleteInProgress)
                .SetProperty(c => c.StatusReason, "Deletion requested")
                .SetProperty(c => c.Operation, ClusterOperations.Delete)
                .SetProperty(c => c.OperationStartedAt, now)
                .SetProperty(c => c.NextReconcileAt, now)
                .SetProperty(c => c.UpdatedAt, now)
                .SetProperty(c => c.Generation, c => c.Generation + 1)
                .SetProperty(c => EF.Property<long>(c, "RowVersion"), c => EF.Property<long>(c, "RowVersion") + 1), ct);
            ctx.Poke();
        }
        return Results.NoContent();
    }

    private static async Task<IResult> Resize(ApiContext ctx, string ident, CancellationToken ct)
    {
        var caller = Policy.Member(ctx.Http, "cluster:resize");
        var version = ApiVersion.Of(ctx.Http);
        var cluster = await ctx.FindClusterAsync(caller, ident, track: true, ct);
        var v = Schemas.Resize.Validate(await BodyReader.ReadObjectAsync(ctx.Http.Request, ct));
        var nodeCount = (int)v["node_count"]!;
        if (nodeCount == 0 && version < new ApiVersion(1, 10))
            throw MagnumError.BadRequest("Resizing a nodegroup to zero is not supported in the provided microversion.");
        var ngIdent = v.GetValueOrDefault("nodegroup") as string;
        var ng = string.IsNullOrEmpty(ngIdent) ? DefaultWorker(cluster) : NodeGroupsApi.FindIn(cluster, ngIdent);
        if (ng.Role == NodeGroupRoles.Master)
            throw MagnumError.BadRequest("Resizing a master nodegroup is not supported.");
        if (ng.MinNodeCount > nodeCount || (ng.MaxNodeCount is { } max && max < nodeCount))
            throw MagnumError.BadRequest($"Resizing {ng.Name} outside the allowed range: min_node_count = {ng.MinNodeCount}, max_node_count = {(ng.MaxNodeCount?.ToString() ?? "None")}");
        EnsureUpdatable(cluster);
        var toRemove = v.GetValueOrDefault("nodes_to_remove") as List<string> ?? new List<string>();
        if (toRemove.Count > 0 && toRemove.Count > ng.NodeCount - nodeCount)
            throw MagnumError.BadRequest($"nodes_to_remove names {toRemove.Count} nodes but the resize of {ng.Name} from {ng.NodeCount} to {nodeCount} removes {Math.Max(0, ng.NodeCount - nodeCount)}.");
        ng.NodeCount = nodeCount;
        ng.NodesToRemove = toRemove;
        ng.Status = ClusterStatus.UpdateInProgress;
        ng.UpdatedAt = ctx.Now;
        StartOperation(ctx, cluster, ClusterOperations.Update);
        await SaveAsync(ctx, ct);
        return Results.Json(new JsonObject { ["uuid"] = cluster.Uuid }, statusCode: 202);
    }

    /// <summary>
    /// Magnum's upgrade action, carried out for real: the nodes of the upgraded nodegroups are replaced one batch at a
    /// time by servers of the new version (NodeReplacer), the control plane first. Without a nodegroup (or naming a
    /// default one) the control plane and the default worker nodegroup move to the template; a non-default nodegroup
    /// named alone may only move to the cluster's template (Magnum's rule). Refused, before anything changes: a
    /// downgrade, skipping a minor version (kubeadm upgrades one at a time), workers newer than the control plane, a
    /// control plane without load balancer (a new node would change the API address), another operation or an
    /// unfinished CA rotation, and images or flavors the cloud does not have. An upgrade that failed resumes when asked again.
    /// </summary>
    private static async Task<IResult> Upgrade(ApiContext ctx, string ident, CancellationToken ct)
    {
        if (ApiVersion.Of(ctx.Http) < new ApiVersion(1, 8))
            throw MagnumError.BadRequest("Cluster upgrade is not supported in the provided microversion.");
        var caller = Policy.Member(ctx.Http, "cluster:upgrade");
        var cluster = await ctx.FindClusterAsync(caller, ident, track: true, ct);
        var v = Schemas.Upgrade.Validate(await BodyReader.ReadObjectAsync(ctx.Http.Request, ct));
        var target = await ctx.FindTemplateAsync(caller, (string)v["cluster_template"]!, track: false, ct);
        var ngIdent = v.GetValueOrDefault("nodegroup") as string;
        var named = string.IsNullOrEmpty(ngIdent) ? null : NodeGroupsApi.FindIn(cluster, ngIdent);
        if (named is not null && target.Uuid != cluster.ClusterTemplateId && !named.IsDefault)
        {
            var current = await ctx.Db.ClusterTemplates.AsNoTracking().Where(t => t.Uuid == cluster.ClusterTemplateId).Select(t => t.Name).FirstOrDefaultAsync(ct);
            throw MagnumError.Conflict($"Cluster Template is not valid for upgrade: Nodegroup {named.Name} can be upgraded only to match cluster's template ({current}).");
        }
        if (target.Coe != "kubernetes")
            throw MagnumError.Conflict("Cluster Template is not valid for upgrade: the new template is not a Kubernetes template.");
        // A failed upgrade is resumed by asking again; any other state follows Magnum's rules.
        if (!(cluster.Status == ClusterStatus.UpdateFailed && cluster.CaRotationStep is null)) EnsureUpdatable(cluster);

        var clusterVersion = Labels.KubernetesVersion(cluster.Labels, cluster.CoeVersion ?? "");
        var targetVersion = Labels.KubernetesVersion(target.Labels, clusterVersion);
        var masters = cluster.NodeGroups.Where(n => n.Role == NodeGroupRoles.Master && !n.DeleteRequested).ToList();
        var groups = named is null || named.IsDefault ? [.. masters, DefaultWorker(cluster)] : new List<NodeGroup> { named };
        foreach (var ng in groups)
        {
            var from = Labels.KubernetesVersion(ng.Labels, ng.Version ?? clusterVersion);
            CheckVersionStep(ng.Name, from, targetVersion);
        }
        if (!groups.Any(g => g.Role == NodeGroupRoles.Master))
        {
            // What the control plane runs (its nodegroup's version changes only once every node of it runs the new one).
            var controlPlane = masters.Select(m => m.Version ?? Labels.KubernetesVersion(m.Labels, clusterVersion)).FirstOrDefault() ?? clusterVersion;
            if (KubeVersion.Compare(targetVersion, controlPlane) > 0)
                throw MagnumError.BadRequest($"Cluster Template is not valid for upgrade: nodegroup {groups[0].Name} would run {targetVersion}, newer than the control plane ({controlPlane}); " +
                    "a kubelet must not be newer than its API server: upgrade the control plane first (without --nodegroup).");
        }
        var mastersChange = groups.Any(g => g.Role == NodeGroupRoles.Master &&
            (Labels.KubernetesVersion(g.Labels, g.Version ?? clusterVersion) != targetVersion || (g.ImageId ?? "") != target.ImageId));
        if (mastersChange && !cluster.MasterLbEnabled)
            throw MagnumError.BadRequest("Cluster upgrade is not supported for a control plane without load balancer (master_lb_enabled is false): " +
                "Magnetar upgrades by replacing nodes, and a new control-plane node would change the cluster's API address.");
        await ctx.ValidateCloudReferencesAsync(string.IsNullOrEmpty(target.ImageId) ? null : target.ImageId,
            groups.Select(g => g.FlavorId), null, null, cluster.ProjectId, ct);

        if (named is null || named.IsDefault)
        {
            cluster.UpgradeToTemplateId = target.Uuid;
            cluster.ClusterTemplateId = target.Uuid;
            cluster.Labels = new Dictionary<string, string>(cluster.Labels) { ["kube_tag"] = targetVersion };
        }
        foreach (var ng in groups)
        {
            ng.Status = ClusterStatus.UpdateInProgress;
            ng.StatusReason = null;
            ng.Labels = new Dictionary<string, string>(ng.Labels) { ["kube_tag"] = targetVersion };
            if (!string.IsNullOrEmpty(target.ImageId)) ng.ImageId = target.ImageId;
            ng.UpdatedAt = ctx.Now;
        }
        cluster.UpgradeMaxBatchSize = v.GetValueOrDefault("max_batch_size") is int batch ? Math.Max(1, batch) : 1;
        cluster.ProgressAt = null;
        StartOperation(ctx, cluster, ClusterOperations.Upgrade);
        // Nodes that failed (a node of an earlier attempt that never joined) are replaced too when the upgrade resumes.
        await SaveAsync(ctx, ct);
        // Resuming: nodes of an earlier attempt that failed are replaced too, and a drain that timed out gets its time again.
        await ctx.Db.NodeStates.Where(s => s.ClusterUuid == cluster.Uuid && s.Failed && s.RetireReason == null)
            .ExecuteUpdateAsync(u => u.SetProperty(s => s.RetireReason, "failed during an earlier attempt"), ct);
        await ctx.Db.NodeStates.Where(s => s.ClusterUuid == cluster.Uuid && s.RetireStep == NodeRetireSteps.Drain)
            .ExecuteUpdateAsync(u => u.SetProperty(s => s.RetireStepAt, ctx.Now), ct);
        return Results.Json(new JsonObject { ["uuid"] = cluster.Uuid }, statusCode: 202);
    }

    /// <summary>kubeadm moves a cluster one minor version at a time, and never back.</summary>
    private static void CheckVersionStep(string nodeGroup, string from, string to)
    {
        if (!KubeVersion.TryParse(to, out var t))
            throw MagnumError.BadRequest($"Cluster Template is not valid for upgrade: kube_tag '{to}' is not a Kubernetes version like v1.32.1.");
        if (!KubeVersion.TryParse(from, out var f)) return; // an unknown current version: nothing to compare with
        if (KubeVersion.Compare(to, from) < 0)
            throw MagnumError.BadRequest($"Cluster Template is not valid for upgrade: nodegroup {nodeGroup} runs {from}; {to} would be a downgrade, which Kubernetes does not support.");
        if (t.Major != f.Major || t.Minor > f.Minor + 1)
            throw MagnumError.BadRequest($"Cluster Template is not valid for upgrade: nodegroup {nodeGroup} runs {from}; kubeadm upgrades one minor version at a time, " +
                $"so {to} skips v{f.Major}.{f.Minor + 1}: upgrade to a v{f.Major}.{f.Minor + 1} template first.");
    }

    internal static NodeGroup DefaultWorker(Cluster c)
        => c.NodeGroups.Where(n => n.IsDefault && n.Role != NodeGroupRoles.Master).OrderBy(n => n.Id).FirstOrDefault()
           ?? c.NodeGroups.Where(n => n.Role != NodeGroupRoles.Master).OrderBy(n => n.Id).FirstOrDefault()
           ?? throw MagnumError.NodeGroupNotFound(NodeGroupRoles.DefaultWorkerName);

    /// <summary>Magnum refuses a new operation while one runs, and updates from states other than *_COMPLETE.</summary>
    internal static void EnsureUpdatable(Cluster c)
    {
        if (ClusterStatus.IsInProgress(c.Status))
            throw MagnumError.BadRequest($"Cluster {c.Name} already has an operation in progress.");
        // A node added now would get certificates of a CA that part of the cluster no longer (or not yet) trusts.
        if (c.CaRotationStep is not null)
            throw MagnumError.BadRequest($"Cluster {c.Name} has an unfinished CA rotation (stopped at step {c.CaRotationStep}): " +
                $"rotate its CA again ('openstack coe ca rotate {c.Name}') to finish it before changing the cluster.");
        if (!UpdatableStates.Contains(c.Status))
            throw MagnumError.BadRequest($"Updating a cluster when status is \"{c.Status}\" is not supported.");
    }

    internal static void StartOperation(ApiContext ctx, Cluster c, string operation)
    {
        c.Status = ClusterStatus.UpdateInProgress;
        c.StatusReason = $"{operation} requested";
        c.Operation = operation;
        c.OperationStartedAt = ctx.Now;
        c.NextReconcileAt = ctx.Now;
        c.Generation++;
        c.UpdatedAt = ctx.Now;
    }

    /// <summary>Saves, turning a race with the conductor into a retryable 409 instead of a lost update.</summary>
    internal static async Task SaveAsync(ApiContext ctx, CancellationToken ct)
    {
        try
        {
            await ctx.Db.SaveChangesAsync(ct);
        }
        catch (DbUpdateConcurrencyException)
        {
            throw MagnumError.Conflict("The cluster changed while this request was processed; retry the request.");
        }
        ctx.Poke();
    }
}
