using System.Globalization;
using System.Threading.RateLimiting;
using Magnetar.Identity;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.DependencyInjection;

namespace Magnetar.Api;

/// <summary>
/// Per-project rate limiting of the Magnum API (ASP.NET Core's rate limiter, a token bucket per project; callers
/// without a valid token share one bucket per client address). Over the limit: 429 in Magnum's error format with
/// Retry-After. Node bootstrap, identity and health endpoints are not limited. Runs after token authentication, which
/// names the project.
/// </summary>
public static class RateLimits
{
    public static IServiceCollection AddMagnumRateLimits(this IServiceCollection services, ApiOptions options)
    {
        if (options.RateLimitPerSecond <= 0) return services;
        services.AddRateLimiter(o =>
        {
            o.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(http =>
            {
                if (!http.Request.Path.StartsWithSegments("/v1")) return RateLimitPartition.GetNoLimiter("unlimited");
                var key = http.GetAuthContext() is { } caller ? "project:" + caller.ProjectId : "address:" + http.Connection.RemoteIpAddress;
                return RateLimitPartition.GetTokenBucketLimiter(key, _ => new TokenBucketRateLimiterOptions
                {
                    TokenLimit = Math.Max(1, options.RateLimitBurst),
                    TokensPerPeriod = options.RateLimitPerSecond,
                    ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                    QueueLimit = 0,
                    AutoReplenishment = true,
                });
            });
            o.OnRejected = async (context, ct) =>
            {
                var retry = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? Math.Max(1, (int)Math.Ceiling(after.TotalSeconds)) : 1;
                context.HttpContext.Response.Headers.RetryAfter = retry.ToString(CultureInfo.InvariantCulture);
                await MagnumErrors.WriteAsync(context.HttpContext, 429,
                    $"Too many requests from this project: at most {options.RateLimitPerSecond} per second (bursts of {options.RateLimitBurst}). Retry after {retry} s.");
            };
        });
        return services;
    }

    public static IApplicationBuilder UseMagnumRateLimits(this IApplicationBuilder app, ApiOptions options)
        => options.RateLimitPerSecond > 0 ? app.UseRateLimiter() : app;
}
