using Magnetar.Domain;
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

    /// <summary>Refuses a call made with a microversion older than the one that introduced it (Magnum answers 406 too).</summary>
    public static void Require(HttpContext http, ApiVersion minimum)
    {
        var v = Of(http);
        if (v < minimum)
            throw new MagnumError(406, $"The requested version {v} does not support this call: it needs {Service} {minimum} or later.");
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
