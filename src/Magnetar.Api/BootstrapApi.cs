using System.Text;
using Magnetar.Conductor;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Magnetar.Api;

/// <summary>
/// /bootstrap/v1: what booted nodes call (not part of Magnum's API, no Keystone token). <c>POST bundle</c> trades the
/// single-use credential of the user-data for the node's tar.gz bundle; <c>POST report?phase=&amp;status=&amp;exit_code=</c>
/// records progress, the body being the failing command's log tail; <c>POST task</c> is what a node's agent asks
/// (with the report credential) for the work it is to do now — a CA rotation step — answered 204 when there is none; both may carry <c>kubelet_version</c>, the node's own kubelet's, and the poll is the node's heartbeat. Plain HTTP is refused unless
/// Magnetar:Bootstrap:AllowInsecureHttp is set: the bundle of a control-plane node holds the cluster's CA keys.
/// </summary>
public static class BootstrapApi
{
    private const int MaxReportBody = 64 * 1024;

    public static void Map(IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/bootstrap/v1");
        g.AddEndpointFilter(async (context, next) =>
            context.HttpContext.Request.IsHttps || context.HttpContext.RequestServices.GetRequiredService<BootstrapOptions>().AllowInsecureHttp
                ? await next(context)
                : Error(403, "the bootstrap endpoint requires TLS"));
        g.MapPost("/bundle", Bundle);
        g.MapPost("/report", Report);
        g.MapPost("/task", Task);
    }

    private static async Task<IResult> Task(HttpContext http, NodeBootstrapper bootstrapper, CancellationToken ct)
    {
        var r = await bootstrapper.ClaimTaskAsync(http.Request.Headers.Authorization.ToString(), ct, NonEmpty(http.Request.Query["kubelet_version"].FirstOrDefault()));
        if (r.StatusCode == 204) return Results.NoContent();
        if (r.Bundle is null) return Error(r.StatusCode, r.Message ?? "refused", r.StatusCode == 503 ? 10 : null, http);
        return Results.File(r.Bundle, "application/gzip", "task.tar.gz");
    }

    private static async Task<IResult> Bundle(HttpContext http, NodeBootstrapper bootstrapper, CancellationToken ct)
    {
        var r = await bootstrapper.RedeemAsync(http.Request.Headers.Authorization.ToString(), ct);
        if (r.Bundle is null) return Error(r.StatusCode, r.Message ?? "refused", r.StatusCode == 503 ? 10 : null, http);
        return Results.File(r.Bundle, "application/gzip", "bundle.tar.gz");
    }

    private static async Task<IResult> Report(HttpContext http, NodeBootstrapper bootstrapper, CancellationToken ct)
    {
        var buffer = new byte[MaxReportBody];
        var total = 0;
        int n;
        while (total < buffer.Length && (n = await http.Request.Body.ReadAsync(buffer.AsMemory(total), ct)) > 0) total += n;
        if (total == buffer.Length && await http.Request.Body.ReadAsync(new byte[1], ct) > 0)
            return Error(413, $"a report body is at most {MaxReportBody} bytes (send the log's tail)");
        var q = http.Request.Query;
        var r = await bootstrapper.ReportAsync(http.Request.Headers.Authorization.ToString(), q["phase"].FirstOrDefault(),
            q["status"].FirstOrDefault(), q["exit_code"].FirstOrDefault(), Encoding.UTF8.GetString(buffer, 0, total), ct,
            NonEmpty(q["kubelet_version"].FirstOrDefault()), NonEmpty(q["member"].FirstOrDefault()));
        return r.StatusCode == 204 ? Results.NoContent() : Error(r.StatusCode, r.Message ?? "refused");
    }

    private static string? NonEmpty(string? s) => string.IsNullOrEmpty(s) ? null : s;

    private static IResult Error(int status, string message, int? retryAfter = null, HttpContext? http = null)
    {
        if (retryAfter is not null && http is not null) http.Response.Headers.RetryAfter = retryAfter.Value.ToString();
        return Results.Json(new { error = new { code = status, message } }, statusCode: status);
    }
}
