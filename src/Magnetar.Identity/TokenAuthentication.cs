using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Magnetar.Identity;

/// <summary>Why a request carries no <see cref="AuthContext"/>: no token, a refused one, or an unreachable identity service.</summary>
public sealed record AuthFailure(string Reason, bool Unavailable);

/// <summary>Raised by a validator when the identity service cannot answer (the API reports 503, not 401).</summary>
public sealed class IdentityUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

public static class HttpContextAuthExtensions
{
    public static AuthContext? GetAuthContext(this HttpContext http) => http.Features.Get<AuthContext>();
    public static AuthFailure? GetAuthFailure(this HttpContext http) => http.Features.Get<AuthFailure>();
}

/// <summary>
/// Validates <c>X-Auth-Token</c> and records the caller (or the failure) on the request. It writes no response:
/// the API decides what a missing caller means (401/503, in Magnum's error format).
/// </summary>
public sealed class TokenAuthenticationMiddleware(RequestDelegate next, ITokenValidator validator)
{
    public async Task InvokeAsync(HttpContext http)
    {
        if (!http.Request.Path.StartsWithSegments("/identity"))
        {
            var token = http.Request.Headers["X-Auth-Token"].ToString();
            if (string.IsNullOrEmpty(token))
            {
                http.Features.Set(new AuthFailure("No X-Auth-Token header.", false));
            }
            else
            {
                try
                {
                    var result = await validator.ValidateAsync(token, http.RequestAborted);
                    if (result.Context is not null) http.Features.Set(result.Context);
                    else http.Features.Set(new AuthFailure(result.FailureReason ?? "invalid token", false));
                }
                catch (IdentityUnavailableException e)
                {
                    http.Features.Set(new AuthFailure(e.Message, true));
                }
            }
        }
        await next(http);
    }
}

public static class IdentityServiceCollectionExtensions
{
    public static bool IsBuiltIn(IConfiguration config)
        => string.Equals(config["Magnetar:Identity:Mode"] ?? "builtin", "builtin", StringComparison.OrdinalIgnoreCase);

    /// <summary>Registers the token validator chosen by <c>Magnetar:Identity:Mode</c> (builtin | keystone).</summary>
    public static IServiceCollection AddMagnetarIdentity(this IServiceCollection services, IConfiguration config)
    {
        var mode = config["Magnetar:Identity:Mode"] ?? "builtin";
        if (IsBuiltIn(config))
        {
            var dataDir = config["Magnetar:DataDir"] ?? ".magnetar";
            var lifetime = TimeSpan.TryParse(config["Magnetar:Identity:BuiltIn:TokenLifetime"], out var l) ? l : TimeSpan.FromHours(1);
            services.AddSingleton(_ => new BuiltInIdentityStore(dataDir));
            services.AddSingleton(sp => new BuiltInTokenService(dataDir, sp.GetRequiredService<TimeProvider>(), lifetime));
            services.AddSingleton<BuiltInTokenValidator>();
            services.AddSingleton<ITokenValidator>(sp => sp.GetRequiredService<BuiltInTokenValidator>());
        }
        else if (string.Equals(mode, "keystone", StringComparison.OrdinalIgnoreCase))
        {
            var options = config.GetSection("Magnetar:Identity:Keystone").Get<KeystoneOptions>() ?? new KeystoneOptions();
            if (string.IsNullOrEmpty(options.AuthUrl)) throw new InvalidOperationException("Magnetar:Identity:Keystone:AuthUrl is required in keystone mode.");
            services.AddSingleton(options);
            services.AddHttpClient<KeystoneTokenValidator>(c => c.Timeout = TimeSpan.FromSeconds(options.TimeoutSeconds))
                .AddStandardResilienceHandler(r =>
                {
                    r.AttemptTimeout.Timeout = TimeSpan.FromSeconds(options.TimeoutSeconds);
                    r.TotalRequestTimeout.Timeout = TimeSpan.FromSeconds(options.TimeoutSeconds * 4);
                    r.CircuitBreaker.SamplingDuration = TimeSpan.FromSeconds(Math.Max(10, options.TimeoutSeconds * 2 + 1));
                });
            services.AddSingleton<ITokenValidator>(sp => sp.GetRequiredService<KeystoneTokenValidator>());
        }
        else throw new InvalidOperationException($"Unknown identity mode '{mode}': use builtin or keystone.");
        return services;
    }

    public static IApplicationBuilder UseTokenAuthentication(this IApplicationBuilder app)
        => app.UseMiddleware<TokenAuthenticationMiddleware>();
}
