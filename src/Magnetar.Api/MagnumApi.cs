using System.Text.Json.Nodes;
using Magnetar.Identity;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Magnetar.Api;

public static class MagnumApi
{
    public static IServiceCollection AddMagnumApi(this IServiceCollection services, ApiOptions options)
    {
        services.AddSingleton(options);
        services.AddHttpContextAccessor();
        services.AddScoped<ApiContext>();
        services.AddSingleton<RenderedCache>();
        return services;
    }

    /// <summary>Error format and microversions; must run before routing to the Magnum endpoints.</summary>
    public static IApplicationBuilder UseMagnumApi(this IApplicationBuilder app)
    {
        app.UseMiddleware<MagnumErrorMiddleware>();
        app.UseMiddleware<MicroversionMiddleware>();
        return app;
    }

    public static IEndpointRouteBuilder MapMagnumApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/", (ApiContext ctx) => Results.Json(Root(ctx.BaseUrl)));
        var v1 = app.MapGroup("/v1");
        v1.MapGet("", (ApiContext ctx) => Results.Json(V1(ctx.BaseUrl))).Magnum("get");
        ClusterTemplatesApi.Map(v1);
        ClustersApi.Map(v1);
        NodeGroupsApi.Map(v1);
        CertificatesApi.Map(v1);
        QuotasApi.Map(v1);
        BootstrapApi.Map(app);
        // Anything else under /v1 is a Magnum-format 404, not an empty ASP.NET one.
        v1.MapFallback((HttpContext http) => MagnumErrors.WriteAsync(http, 404, $"The resource could not be found."));
        return app;
    }

    private static JsonObject Root(string baseUrl) => new()
    {
        ["name"] = "OpenStack Magnum API",
        ["description"] = "Magnum is an OpenStack project which aims to provide container cluster management.",
        ["versions"] = new JsonArray(new JsonObject
        {
            ["id"] = "v1",
            ["links"] = new JsonArray(new JsonObject { ["href"] = $"{baseUrl}/v1/", ["rel"] = "self" }),
            ["status"] = "CURRENT",
            ["max_version"] = ApiVersion.Max.ToString(),
            ["min_version"] = ApiVersion.Min.ToString(),
        }),
    };

    private static JsonObject V1(string baseUrl)
    {
        JsonArray L(string path) => Views.Links(baseUrl, path);
        return new JsonObject
        {
            ["id"] = "v1",
            ["links"] = new JsonArray(
                new JsonObject { ["href"] = $"{baseUrl}/v1/", ["rel"] = "self" },
                new JsonObject { ["href"] = "http://docs.openstack.org/developer/magnum/dev/api-spec-v1.html", ["rel"] = "describedby", ["type"] = "text/html" }),
            ["media_types"] = new JsonArray(new JsonObject { ["base"] = "application/json", ["type"] = "application/vnd.openstack.magnum.v1+json" }),
            ["clustertemplates"] = L("clustertemplates/"),
            ["clusters"] = L("clusters/"),
            ["quotas"] = L("quotas/"),
            ["certificates"] = L("certificates/"),
            ["mservices"] = L("mservices/"),
            ["stats"] = L("stats/"),
            ["nodegroups"] = L("clusters/{cluster_id}/nodegroups"),
        };
    }
}
