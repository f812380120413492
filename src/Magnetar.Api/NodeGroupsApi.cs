using System.Text.Json.Nodes;
using Magnetar.Domain;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Magnetar.Api;

/// <summary>/v1/clusters/{cluster}/nodegroups (microversion 1.9+).</summary>
public static class NodeGroupsApi
{
    public static void Map(RouteGroupBuilder v1)
    {
        var g = v1.MapGroup("/clusters/{cluster}/nodegroups");
        g.MapGet("", List).Magnum("get_all", V1_9);
        g.MapGet("/{ident}", Show).Magnum("get_one", V1_9);
        g.MapPost("", Create).Magnum("post", V1_9);
        g.MapPatch("/{ident}", Update).Magnum("patch", V1_9);
        g.MapDelete("/{ident}", Delete).Magnum("delete", V1_9);
    }

    /// <summary>Magnum 15 serves nodegroups from 1.9 (its controller's api_version decorators).</summary>
    private static readonly ApiVersion V1_9 = new(1, 9);

    public static NodeGroup FindIn(Cluster c, string ident)
    {
        var ng = c.NodeGroups.FirstOrDefault(n => n.Uuid.Equals(ident, StringComparison.OrdinalIgnoreCase))
                 ?? c.NodeGroups.FirstOrDefault(n => n.Name == ident)
                 ?? (long.TryParse(ident, out var id) ? c.NodeGroups.FirstOrDefault(n => n.Id == id) : null);
        return ng ?? throw MagnumError.NodeGroupNotFound(ident);
    }

    private static async Task<IResult> List(ApiContext ctx, string cluster, CancellationToken ct)
    {
        var caller = Policy.Reader(ctx.Http, "nodegroup:get_all");
        var c = await ctx.FindClusterAsync(caller, cluster, track: false, ct);
        var page = PageRequest.From(ctx.Http.Request, new Dictionary<string, string> { ["id"] = "Id", ["name"] = "Name", ["uuid"] = "Uuid", ["node_count"] = "NodeCount", ["role"] = "Role", ["created_at"] = "CreatedAt" });
        IEnumerable<NodeGroup> items = c.NodeGroups;
        var role = ctx.Http.Request.Query["role"].ToString();
        if (!string.IsNullOrEmpty(role)) items = items.Where(n => n.Role == role);
        items = page.SortKey switch
        {
            "name" => page.Descending ? items.OrderByDescending(n => n.Name, StringComparer.Ordinal) : items.OrderBy(n => n.Name, StringComparer.Ordinal),
            "uuid" => page.Descending ? items.OrderByDescending(n => n.Uuid, StringComparer.Ordinal) : items.OrderBy(n => n.Uuid, StringComparer.Ordinal),
            "node_count" => page.Descending ? items.OrderByDescending(n => n.NodeCount) : items.OrderBy(n => n.NodeCount),
            "role" => page.Descending ? items.OrderByDescending(n => n.Role, StringComparer.Ordinal) : items.OrderBy(n => n.Role, StringComparer.Ordinal),
            _ => page.Descending ? items.OrderByDescending(n => n.Id) : items.OrderBy(n => n.Id),
        };
        var list = items.ToList();
        if (page.Marker is not null)
        {
            var idx = list.FindIndex(n => n.Uuid == page.Marker || n.Name == page.Marker);
            if (idx < 0) throw MagnumError.NodeGroupNotFound(page.Marker);
            list = list.Skip(idx + 1).ToList();
        }
        list = list.Take(page.Limit).ToList();
        var body = new JsonObject { ["nodegroups"] = new JsonArray(list.Select(n => (JsonNode?)Views.NodeGroup(n, c, ctx.BaseUrl, expand: false, ctx.Options.ClusterStacks)).ToArray()) };
        var next = page.NextLink(ctx.BaseUrl, $"clusters/{c.Uuid}/nodegroups", list.Count, list.LastOrDefault()?.Uuid);
        if (next is not null) body["next"] = next;
        return Results.Json(body);
    }

    private static async Task<IResult> Show(ApiContext ctx, string cluster, string ident, CancellationToken ct)
    {
        var caller = Policy.Reader(ctx.Http, "nodegroup:get");
        var c = await ctx.FindClusterAsync(caller, cluster, track: false, ct);
        return Results.Json(Views.NodeGroup(FindIn(c, ident), c, ctx.BaseUrl, expand: true, ctx.Options.ClusterStacks));
    }

    private static async Task<IResult> Create(ApiContext ctx, string cluster, CancellationToken ct)
    {
        var caller = Policy.Member(ctx.Http, "nodegroup:create");
        var c = await ctx.FindClusterAsync(caller, cluster, track: true, ct);
        var v = Schemas.NodeGroup.Validate(await BodyReader.ReadObjectAsync(ctx.Http.Request, ct));
        if (string.IsNullOrEmpty(c.ApiAddress))
            throw MagnumError.Conflict("Cluster API address is not available yet");
        var name = v.GetValueOrDefault("name") as string ?? ResourceNames.Generate("nodegroup");
        if (c.NodeGroups.Any(n => n.Name == name))
            throw MagnumError.Conflict($"A node group with name {name} already exists in the cluster {c.Name}.");
        var role = v.GetValueOrDefault("role") as string ?? NodeGroupRoles.Worker;
        var nodeCount = v.GetValueOrDefault("node_count") as int? ?? 1;
        var min = v.GetValueOrDefault("min_node_count") as int? ?? 0;
        var max = v.GetValueOrDefault("max_node_count") as int?;
        ValidateCounts(name, nodeCount, min, max);
        if (role == NodeGroupRoles.Master)
            throw MagnumError.BadRequest("Creating master nodegroups is currently not supported.");
        if (nodeCount == 0 && ApiVersion.Of(ctx.Http) < new ApiVersion(1, 10))
            throw MagnumError.BadRequest("Resizing a nodegroup to zero is not supported in the provided microversion.");
        ClustersApi.EnsureUpdatable(c);
        var template = await ctx.FindTemplateAsync(caller, c.ClusterTemplateId, track: false, ct);
        await ctx.ValidateCloudReferencesAsync(v.GetValueOrDefault("image_id") as string, [v.GetValueOrDefault("flavor_id") as string ?? c.FlavorId], null, null, caller.ProjectId, ct);
        var labels = Labels.Inherit(c.Labels, v.GetValueOrDefault("labels") as Dictionary<string, string>, v.GetValueOrDefault("merge_labels") as bool? ?? false);
        LabelRules.Validate(labels);
        var ng = ClustersApi.NewNodeGroup(c, name, role, nodeCount,
            v.GetValueOrDefault("flavor_id") as string ?? c.FlavorId,
            v.GetValueOrDefault("image_id") as string ?? template.ImageId, ctx.Now, isDefault: false, min: min, max: max);
        ng.MinNodeCount = min;
        ng.Labels = labels;
        ng.ProjectId = caller.ProjectId;
        ng.DockerVolumeSize = v.GetValueOrDefault("docker_volume_size") as int? ?? c.DockerVolumeSize;
        c.NodeGroups.Add(ng);
        ClustersApi.StartOperation(ctx, c, ClusterOperations.Update);
        await ClustersApi.SaveAsync(ctx, ct);
        return Results.Json(Views.NodeGroup(ng, c, ctx.BaseUrl, expand: true), statusCode: 202);
    }

    private static async Task<IResult> Update(ApiContext ctx, string cluster, string ident, CancellationToken ct)
    {
        var caller = Policy.Member(ctx.Http, "nodegroup:update");
        var patch = await BodyReader.ReadAsync(ctx.Http.Request, ct);
        JsonPatch.EnsureWellFormed(patch);
        var c = await ctx.FindClusterAsync(caller, cluster, track: true, ct);
        var ng = FindIn(c, ident);
        var before = Views.NodeGroup(ng, c, ctx.BaseUrl, expand: true);
        var after = JsonPatch.Apply(before, patch, Schemas.NodeGroupInternal, []);
        var v = Schemas.NodeGroup.Validate(after, enforceMandatory: false);
        var min = v.GetValueOrDefault("min_node_count") as int? ?? 0;
        var max = v.GetValueOrDefault("max_node_count") as int?;
        ValidateCounts(ng.Name, ng.NodeCount, min, max);
        ng.MinNodeCount = min;
        ng.MaxNodeCount = max;
        ng.UpdatedAt = ctx.Now;
        await ClustersApi.SaveAsync(ctx, ct);
        return Results.Json(Views.NodeGroup(ng, c, ctx.BaseUrl, expand: true), statusCode: 202);
    }

    private static async Task<IResult> Delete(ApiContext ctx, string cluster, string ident, CancellationToken ct)
    {
        var caller = Policy.Member(ctx.Http, "nodegroup:delete");
        var c = await ctx.FindClusterAsync(caller, cluster, track: true, ct);
        var ng = FindIn(c, ident);
        if (ng.IsDefault) throw MagnumError.BadRequest("Deleting a default nodegroup is not supported.");
        if (ng.DeleteRequested) return Results.NoContent();
        ClustersApi.EnsureUpdatable(c);
        ng.DeleteRequested = true;
        ng.Status = ClusterStatus.DeleteInProgress;
        ng.UpdatedAt = ctx.Now;
        ClustersApi.StartOperation(ctx, c, ClusterOperations.Update);
        await ClustersApi.SaveAsync(ctx, ct);
        return Results.NoContent();
    }

    /// <summary>Magnum's _validate_node_count (NodeGroupInvalidInput is a 409).</summary>
    private static void ValidateCounts(string name, int nodeCount, int min, int? max)
    {
        if (max is { } mx && mx > 0)
        {
            if (mx < min) throw MagnumError.Conflict($"max_node_count for {name} is invalid (min_node_count ({min}) should be less or equal to max_node_count ({mx})).");
            if (nodeCount > mx) throw MagnumError.Conflict($"max_node_count for {name} is invalid (node_count ({nodeCount}) should be less or equal to max_node_count ({mx})).");
        }
        if (min > nodeCount) throw MagnumError.Conflict($"min_node_count for {name} is invalid (min_node_count ({min}) should be less or equal to node_count ({nodeCount})).");
    }
}
