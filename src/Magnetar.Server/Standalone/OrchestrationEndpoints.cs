using System.Text.Json.Nodes;
using Magnetar.Domain;
using Magnetar.Identity;

namespace Magnetar.Server.Standalone;

/// <summary>
/// Heat v1, read-only: each cluster of the project described as the stack Magnum would have made for it, so that
/// magnum-ui's Resize form (which reads the cluster's stack, then lists the stack's servers by name) works on the
/// simulated cloud. The stack's id is the cluster's uuid (the cluster's stack_id in the Magnum API, in standalone
/// mode only); its status is the cluster's, which Magnum copies from its stack anyway.
/// </summary>
public static class OrchestrationEndpoints
{
    public static void MapStandaloneOrchestration(this IEndpointRouteBuilder app)
    {
        var o = app.MapGroup("/orchestration/v1/{project}").AddEndpointFilter(async (ctx, next) =>
        {
            var h = ctx.HttpContext;
            var caller = h.GetAuthContext();
            if (caller is null) return StandaloneCloud.Unauthorized(h);
            // Heat's tenant-in-URL check
            if (h.Request.RouteValues["project"] as string != caller.ProjectId && !caller.IsAdmin)
                return HeatError(403, "Forbidden", "Forbidden", "You are not authorized to use this project's stacks.");
            return await next(ctx);
        });

        o.MapGet("/stacks", async (HttpContext h, string project, StandaloneCloudView cloud, CancellationToken ct) =>
        {
            var clusters = await cloud.ClustersAsync(project, ct);
            return Results.Json(new JsonObject
            {
                ["stacks"] = new JsonArray(clusters.OrderByDescending(c => c.CreatedAt).Select(c => (JsonNode?)Stack(h, c, summary: true)).ToArray()),
            });
        });
        // Heat answers a stack named by id or by name alone with a redirect to its canonical URL, /stacks/NAME/ID.
        o.MapGet("/stacks/{ident}", async (HttpContext h, string project, string ident, StandaloneCloudView cloud, CancellationToken ct) =>
        {
            var c = (await cloud.ClustersAsync(project, ct)).FirstOrDefault(x => x.Uuid == ident || StandaloneCloudView.StackName(x) == ident);
            if (c is null) return NotFound(ident);
            return Results.Redirect($"{StandaloneCloud.BaseUrl(h)}/orchestration/v1/{project}/stacks/{StandaloneCloudView.StackName(c)}/{c.Uuid}{h.Request.QueryString}");
        });
        o.MapGet("/stacks/{name}/{id}", async (HttpContext h, string project, string name, string id, StandaloneCloudView cloud, CancellationToken ct) =>
        {
            var c = (await cloud.ClustersAsync(project, ct)).FirstOrDefault(x => x.Uuid == id && StandaloneCloudView.StackName(x) == name);
            return c is null ? NotFound(id) : Results.Json(new JsonObject { ["stack"] = Stack(h, c, summary: false) });
        });
    }

    private static IResult NotFound(string ident) => HeatError(404, "Not Found", "EntityNotFound", $"The Stack ({ident}) could not be found.");

    /// <summary>Heat's fault body.</summary>
    internal static IResult HeatError(int code, string title, string type, string message) => Results.Json(new JsonObject
    {
        ["explanation"] = code switch
        {
            404 => "The resource could not be found.",
            403 => "Access was denied to this resource.",
            >= 500 => "The server has either erred or is incapable of performing the requested operation.",
            _ => "The server could not comply with the request since it is either malformed or otherwise incorrect.",
        },
        ["code"] = code, ["title"] = title,
        ["error"] = new JsonObject { ["message"] = message, ["traceback"] = null, ["type"] = type },
    }, statusCode: code);

    private static JsonObject Stack(HttpContext h, Cluster c, bool summary)
    {
        var name = StandaloneCloudView.StackName(c);
        var o = new JsonObject
        {
            ["id"] = c.Uuid,
            ["stack_name"] = name,
            ["description"] = $"Magnetar cluster {c.Name} on the simulated cloud (no Heat stack exists; this describes the cluster).",
            ["creation_time"] = StandaloneCloud.Time(c.CreatedAt),
            ["updated_time"] = c.UpdatedAt is { } u ? StandaloneCloud.Time(u) : null,
            ["deletion_time"] = null,
            ["stack_status"] = c.Status,
            ["stack_status_reason"] = c.StatusReason ?? "",
            ["stack_owner"] = null,
            ["stack_user_project_id"] = c.ProjectId,
            ["project"] = c.ProjectId,
            ["parent"] = null,
            ["tags"] = null,
            ["links"] = new JsonArray(new JsonObject { ["href"] = $"{StandaloneCloud.BaseUrl(h)}/orchestration/v1/{c.ProjectId}/stacks/{name}/{c.Uuid}", ["rel"] = "self" }),
        };
        if (summary) return o;
        o["disable_rollback"] = true;
        o["timeout_mins"] = c.CreateTimeout;
        o["capabilities"] = new JsonArray();
        o["notification_topics"] = new JsonArray();
        o["outputs"] = new JsonArray();
        o["parameters"] = new JsonObject
        {
            ["OS::stack_id"] = c.Uuid, ["OS::stack_name"] = name, ["OS::project_id"] = c.ProjectId,
            ["number_of_masters"] = c.NodeGroups.Where(n => n.Role == NodeGroupRoles.Master).Sum(n => n.NodeCount).ToString(),
            ["number_of_minions"] = c.NodeGroups.Where(n => n.Role != NodeGroupRoles.Master && n.IsDefault).Sum(n => n.NodeCount).ToString(),
        };
        o["template_description"] = "Magnetar cluster";
        return o;
    }
}
