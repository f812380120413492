using Magnetar.Domain;
using Magnetar.Identity;
using Microsoft.AspNetCore.Http;

namespace Magnetar.Api;

/// <summary>
/// Policy, following Magnum's defaults (magnum/common/policies) with Keystone's reader role added:
/// admin acts on every project; member reads and writes its own project; reader only reads its own project;
/// public templates, quotas and the service list are admin-only to change. Objects of other projects are
/// reported as not found, never as forbidden.
/// </summary>
public static class Policy
{
    /// <summary>The authenticated caller, or 401 (503 when the identity service cannot be reached).</summary>
    public static AuthContext Caller(HttpContext http)
    {
        var ctx = http.GetAuthContext();
        if (ctx is not null) return ctx;
        var failure = http.GetAuthFailure();
        if (failure is { Unavailable: true })
            throw new MagnumError(503, "The identity service is unavailable; try again later.");
        if (http.RequestServices.GetService(typeof(ApiOptions)) is ApiOptions { AuthUrl: { Length: > 0 } authUrl })
            http.Response.Headers.WWWAuthenticate = $"Keystone uri=\"{authUrl}\"";
        throw new MagnumError(401, "The request you have made requires authentication.");
    }

    public static AuthContext Reader(HttpContext http, string action)
    {
        var c = Caller(http);
        if (!c.IsReader) throw MagnumError.PolicyNotAuthorized(action);
        return c;
    }

    public static AuthContext Member(HttpContext http, string action)
    {
        var c = Caller(http);
        if (!c.IsMember) throw MagnumError.PolicyNotAuthorized(action);
        return c;
    }

    public static AuthContext Admin(HttpContext http, string action)
    {
        var c = Caller(http);
        if (!c.IsAdmin) throw MagnumError.PolicyNotAuthorized(action);
        return c;
    }

    /// <summary>Whether the caller may see objects of <paramref name="projectId"/>.</summary>
    public static bool CanSee(AuthContext c, string projectId) => c.IsAdmin || c.ProjectId == projectId;
}
