using Magnetar.Domain;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Magnetar.Api;

/// <summary>A container-infra API microversion (major.minor).</summary>
public readonly record struct ApiVersion(int Major, int Minor) : IComparable<ApiVersion>
{
    public static readonly ApiVersion Min = new(1, 1);
    public static readonly ApiVersion Max = new(1, 10);
    public const string Service = "container-infra";
    public const string Header = "OpenStack-API-Version";
    public const string MinHeader = "OpenStack-API-Minimum-Version";
    public const string MaxHeader = "OpenStack-API-Maximum-Version";

    public int CompareTo(ApiVersion other) => Major != other.Major ? Major.CompareTo(other.Major) : Minor.CompareTo(other.Minor);
    public static bool operator <(ApiVersion a, ApiVersion b) => a.CompareTo(b) < 0;
    public static bool operator >(ApiVersion a, ApiVersion b) => a.CompareTo(b) > 0;
    public static bool operator <=(ApiVersion a, ApiVersion b) => a.CompareTo(b) <= 0;
    public static bool operator >=(ApiVersion a, ApiVersion b) => a.CompareTo(b) >= 0;
    public override string ToString() => $"{Major}.{Minor}";

    public static ApiVersion Of(HttpContext http) => http.Items[typeof(ApiVersion)] is ApiVersion v ? v : Min;

    /// <summary>
    /// Refuses a call made in a microversion that Magnum 15 does not serve it in: 406 with the message of Magnum's
    /// versioned-method dispatch (<c>magnum/api/controllers/base.py</c>, <c>version_select</c>), which names the
    /// controller method (<c>get_all</c>, <c>post</c>, <c>resize</c>…).
    /// </summary>
    public static void Require(HttpContext http, ApiVersion minimum, string magnumMethod)
    {
        var v = Of(http);
        if (v < minimum)
            throw new MagnumError(406, $"Version {v} was requested but the requested API {magnumMethod} is not supported for this version.");
    }
}

/// <summary>
/// Endpoint metadata: the oldest microversion in which Magnum 15 serves this call, as its controllers'
/// <c>@base.Controller.api_version</c> decorators say (calls without one are served from 1.1, whatever Magnum's
/// API-version history documents), and the name of Magnum's controller method, which its 406 message carries.
/// </summary>
public sealed record MagnumCall(string Method, ApiVersion Since);

public static class MagnumCallExtensions
{
    /// <summary>
    /// Marks an endpoint with Magnum's method name and, when it was introduced after 1.1, refuses older
    /// microversions before the handler runs (Magnum picks the method by version before any policy check).
    /// Every /v1 endpoint carries this metadata; the route-table test checks it against Magnum's source.
    /// </summary>
    public static RouteHandlerBuilder Magnum(this RouteHandlerBuilder endpoint, string method, ApiVersion? since = null)
    {
        var call = new MagnumCall(method, since ?? ApiVersion.Min);
        endpoint.WithMetadata(call);
        if (call.Since > ApiVersion.Min)
            endpoint.AddEndpointFilter(async (ctx, next) =>
            {
                ApiVersion.Require(ctx.HttpContext, call.Since, call.Method);
                return await next(ctx);
            });
        return endpoint;
    }
}

/// <summary>
/// Microversion negotiation exactly as Magnum's v1 controller does it: the <c>OpenStack-API-Version</c> header
/// (<c>container-infra X.Y</c> or <c>latest</c>; absent = 1.1), the min/max/version headers on every /v1 response,
/// and 406 for a malformed or unsupported version.
/// </summary>
public sealed class MicroversionMiddleware(RequestDelegate next)
{
    public async Task InvokeAsync(HttpContext http)
    {
        if (!http.Request.Path.StartsWithSegments("/v1"))
        {
            await next(http);
            return;
        }
        var headers = http.Response.Headers;
        headers[ApiVersion.MinHeader] = $"{ApiVersion.Service} {ApiVersion.Min}";
        headers[ApiVersion.MaxHeader] = $"{ApiVersion.Service} {ApiVersion.Max}";
        headers["Vary"] = ApiVersion.Header;

        var raw = http.Request.Headers[ApiVersion.Header].ToString();
        if (string.IsNullOrWhiteSpace(raw)) raw = $"{ApiVersion.Service} {ApiVersion.Min}";
        var parts = raw.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length != 2 || parts[0] != ApiVersion.Service)
        {
            await MagnumErrors.WriteAsync(http, 406, $"Invalid service type for {ApiVersion.Header} header");
            return;
        }
        ApiVersion version;
        if (parts[1].Equals("latest", StringComparison.OrdinalIgnoreCase)) version = ApiVersion.Max;
        else
        {
            var nums = parts[1].Split('.');
            if (nums.Length != 2 || !int.TryParse(nums[0], out var major) || !int.TryParse(nums[1], out var minor) || major < 0 || minor < 0)
            {
                await MagnumErrors.WriteAsync(http, 406, $"Invalid value for {ApiVersion.Header} header");
                return;
            }
            version = new ApiVersion(major, minor);
        }
        headers[ApiVersion.Header] = $"{ApiVersion.Service} {version}";
        if (version.Major != 1 || version < ApiVersion.Min || version > ApiVersion.Max)
        {
            var detail = version.Major != 1
                ? $"Mutually exclusive versions requested. Version {version} requested but not supported by this service.The supported version range is: [{ApiVersion.Service} {ApiVersion.Min}, {ApiVersion.Service} {ApiVersion.Max}]."
                : $"Version {version} was requested but the minor version is not supported by this service. The supported version range is: [{ApiVersion.Service} {ApiVersion.Min}, {ApiVersion.Service} {ApiVersion.Max}].";
            await MagnumErrors.WriteAsync(http, 406, detail, extra: w =>
            {
                w.WriteString("max_version", ApiVersion.Max.ToString());
                w.WriteString("min_version", ApiVersion.Min.ToString());
            });
            return;
        }
        http.Items[typeof(ApiVersion)] = version;
        await next(http);
    }
}
