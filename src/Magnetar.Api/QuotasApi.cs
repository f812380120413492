using System.Text.Json.Nodes;
using Magnetar.Domain;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;

namespace Magnetar.Api;

/// <summary>
/// /v1/quotas, /v1/stats and /v1/mservices, served from 1.1 as Magnum 15 serves them (its quota and stats controllers
/// carry no api_version decorator, though its API-version history documents quotas at 1.6 and stats at 1.4).
/// </summary>
public static class QuotasApi
{
    public static void Map(RouteGroupBuilder v1)
    {
        var g = v1.MapGroup("/quotas");
        g.MapGet("", List).Magnum("get_all");
        g.MapGet("/detail", List).Magnum("get_all");
        g.MapGet("/{projectId}/{resource}", Show).Magnum("get_one");
        g.MapPost("", Create).Magnum("post");
        g.MapPatch("/{projectId}/{resource}", Update).Magnum("patch");
        g.MapDelete("/{projectId}/{resource}", Delete).Magnum("delete");
        v1.MapGet("/stats", Stats).Magnum("get_all");
        v1.MapGet("/mservices", Services).Magnum("get_all");
    }

    private static async Task<IResult> List(ApiContext ctx, CancellationToken ct)
    {
        var caller = Policy.Admin(ctx.Http, "quota:get_all");
        var page = PageRequest.From(ctx.Http.Request, new Dictionary<string, string> { ["id"] = "Id", ["project_id"] = "ProjectId", ["hard_limit"] = "HardLimit", ["resource"] = "Resource" });
        var allTenants = Schema.ParseBool(JsonValue.Create(ctx.Http.Request.Query["all_tenants"].ToString())) ?? false;
        var q = ctx.Db.Quotas.AsNoTracking();
        if (!allTenants) q = q.Where(x => x.ProjectId == caller.ProjectId);
        Quota? marker = null;
        if (page.Marker is not null)
        {
            if (!long.TryParse(page.Marker, out var markerId)) throw MagnumError.BadRequest($"Invalid input for field/attribute marker. Value: '{page.Marker}'. unable to convert to int");
            marker = await q.FirstOrDefaultAsync(x => x.Id == markerId, ct) ?? throw MagnumError.NotFound($"Quota could not be found: id {markerId}");
        }
        var items = await q.Page(page, new Dictionary<string, string> { ["id"] = "Id", ["project_id"] = "ProjectId", ["hard_limit"] = "HardLimit", ["resource"] = "Resource" }, marker).ToListAsync(ct);
        var body = new JsonObject { ["quotas"] = new JsonArray(items.Select(x => (JsonNode?)Views.Quota(x)).ToArray()) };
        var next = page.NextLink(ctx.BaseUrl, "quotas", items.Count, items.LastOrDefault()?.Id.ToString());
        if (next is not null) body["next"] = next;
        return Results.Json(body);
    }

    private static async Task<IResult> Show(ApiContext ctx, string projectId, string resource, CancellationToken ct)
    {
        var caller = Policy.Reader(ctx.Http, "quota:get");
        if (!caller.IsAdmin && projectId != caller.ProjectId) throw MagnumError.NotAuthorized();
        var quota = await ctx.Db.Quotas.AsNoTracking().FirstOrDefaultAsync(x => x.ProjectId == projectId && x.Resource == resource, ct);
        if (quota is not null) return Results.Json(Views.Quota(quota));
        // Magnum answers with the configured default when no explicit quota exists.
        return Results.Json(new JsonObject { ["project_id"] = projectId, ["hard_limit"] = ctx.Options.DefaultMaxClustersPerProject, ["resource"] = "Cluster" });
    }

    private static async Task<IResult> Create(ApiContext ctx, CancellationToken ct)
    {
        Policy.Admin(ctx.Http, "quota:create");
        var v = Schemas.Quota.Validate(await BodyReader.ReadObjectAsync(ctx.Http.Request, ct));
        var projectId = v.GetValueOrDefault("project_id") as string;
        if (string.IsNullOrEmpty(projectId)) throw MagnumError.BadRequest("Must provide a valid project ID.");
        var resource = v.GetValueOrDefault("resource") as string ?? "Cluster";
        if (await ctx.Db.Quotas.AnyAsync(x => x.ProjectId == projectId && x.Resource == resource, ct))
            throw MagnumError.Conflict($"Quota for project {projectId} already exists for resource {resource}.");
        var quota = new Quota { ProjectId = projectId, Resource = resource, HardLimit = v.GetValueOrDefault("hard_limit") as int? ?? 1, CreatedAt = ctx.Now };
        ctx.Db.Quotas.Add(quota);
        try { await ctx.Db.SaveChangesAsync(ct); }
        catch (DbUpdateException) { throw MagnumError.Conflict($"Quota for project {projectId} already exists for resource {resource}."); }
        return Results.Json(Views.Quota(quota), statusCode: 201);
    }

    private static async Task<IResult> Update(ApiContext ctx, string projectId, string resource, CancellationToken ct)
    {
        Policy.Admin(ctx.Http, "quota:update");
        var v = Schemas.Quota.Validate(await BodyReader.ReadObjectAsync(ctx.Http.Request, ct));
        var quota = await ctx.Db.Quotas.FirstOrDefaultAsync(x => x.ProjectId == projectId && x.Resource == resource, ct)
                    ?? throw MagnumError.NotFound($"Quota could not be found: project_id {projectId}, resource {resource}");
        if (v.GetValueOrDefault("hard_limit") is int limit) quota.HardLimit = limit;
        quota.UpdatedAt = ctx.Now;
        await ctx.Db.SaveChangesAsync(ct);
        return Results.Json(Views.Quota(quota), statusCode: 202);
    }

    private static async Task<IResult> Delete(ApiContext ctx, string projectId, string resource, CancellationToken ct)
    {
        Policy.Admin(ctx.Http, "quota:delete");
        var deleted = await ctx.Db.Quotas.Where(x => x.ProjectId == projectId && x.Resource == resource).ExecuteDeleteAsync(ct);
        if (deleted == 0) throw MagnumError.NotFound($"Quota could not be found: project_id {projectId}, resource {resource}");
        return Results.NoContent();
    }

    private static async Task<IResult> Stats(ApiContext ctx, CancellationToken ct)
    {
        var caller = Policy.Reader(ctx.Http, "stats:get_all");
        var type = ctx.Http.Request.Query["type"].ToString();
        if (!string.IsNullOrEmpty(type) && !type.Equals("cluster", StringComparison.OrdinalIgnoreCase))
            throw MagnumError.BadRequest("Invalid stats type. Allowed values are 'cluster'");
        string? projectId = ctx.Http.Request.Query["project_id"].ToString();
        if (string.IsNullOrEmpty(projectId)) projectId = null;
        if (!caller.IsAdmin)
        {
            projectId ??= caller.ProjectId;
            if (projectId != caller.ProjectId) throw MagnumError.NotAuthorized();
        }
        var clusters = ctx.Db.Clusters.AsNoTracking();
        if (projectId is not null) clusters = clusters.Where(c => c.ProjectId == projectId);
        var count = await clusters.CountAsync(ct);
        var nodes = await ctx.Db.NodeGroups.AsNoTracking()
            .Where(n => clusters.Select(c => c.Id).Contains(n.ClusterDbId) && !n.DeleteRequested)
            .SumAsync(n => (int?)n.NodeCount, ct) ?? 0;
        return Results.Json(new JsonObject { ["clusters"] = count, ["nodes"] = nodes });
    }

    private static async Task<IResult> Services(ApiContext ctx, CancellationToken ct)
    {
        Policy.Admin(ctx.Http, "magnum-service:get_all");
        var now = ctx.Now;
        var rows = await ctx.Db.Services.AsNoTracking().OrderBy(s => s.Id).ToListAsync(ct);
        var list = new JsonArray(rows.Select(s => (JsonNode?)new JsonObject
        {
            ["id"] = s.Id,
            ["host"] = s.Host,
            ["binary"] = s.Binary,
            // Magnum's servicegroup: up when the last report is recent (service_down_time 180 s).
            ["state"] = !s.ForcedDown && s.LastSeenUp is { } seen && now - seen < TimeSpan.FromSeconds(180) ? "up" : "down",
            ["disabled"] = s.Disabled,
            ["disabled_reason"] = s.DisabledReason,
            ["report_count"] = s.ReportCount,
            ["forced_down"] = s.ForcedDown,
            ["last_seen_up"] = Views.Time(s.LastSeenUp),
            ["created_at"] = Views.Time(s.CreatedAt),
            ["updated_at"] = Views.Time(s.UpdatedAt),
        }).ToArray());
        return Results.Json(new JsonObject { ["mservices"] = list });
    }
}
