using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;

namespace Magnetar.Identity;

/// <summary>Service credentials used to validate tenant tokens (<c>Magnetar:Identity:Keystone</c>).</summary>
public sealed class KeystoneOptions
{
    public string AuthUrl { get; set; } = "";
    public string Username { get; set; } = "magnetar";
    public string Password { get; set; } = "";
    public string ProjectName { get; set; } = "service";
    public string UserDomainName { get; set; } = "Default";
    public string ProjectDomainName { get; set; } = "Default";
    /// <summary>How long a validated token is trusted without asking Keystone again (capped by its expiry).</summary>
    public int CacheSeconds { get; set; } = 300;
    public int TimeoutSeconds { get; set; } = 5;
}

/// <summary>
/// Validates tenant tokens against Keystone v3 (GET /v3/auth/tokens) with the service's own token, caching
/// results by SHA-256 of the token. Keystone errors other than "invalid token" surface as
/// <see cref="IdentityUnavailableException"/> so the API can answer 503 instead of wrongly refusing the tenant.
/// </summary>
public sealed class KeystoneTokenValidator(HttpClient http, KeystoneOptions options, TimeProvider time, ILogger<KeystoneTokenValidator> logger) : ITokenValidator
{
    private readonly ConcurrentDictionary<string, (TokenValidationResult Result, DateTimeOffset Until)> _cache = new();
    private readonly SemaphoreSlim _serviceTokenLock = new(1, 1);
    private string? _serviceToken;
    private DateTimeOffset _serviceTokenExpires;

    private string Url(string path) => options.AuthUrl.TrimEnd('/') + path;

    public async Task<TokenValidationResult> ValidateAsync(string token, CancellationToken ct)
    {
        var key = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(token)));
        var now = time.GetUtcNow();
        if (_cache.TryGetValue(key, out var cached) && cached.Until > now) return cached.Result;

        for (var attempt = 0; attempt < 2; attempt++)
        {
            var serviceToken = await ServiceTokenAsync(forceRenew: attempt > 0, ct);
            HttpResponseMessage response;
            try
            {
                response = await SendWithReconnectAsync(() =>
                {
                    var request = new HttpRequestMessage(HttpMethod.Get, Url("/auth/tokens?nocatalog"));
                    request.Headers.Add("X-Auth-Token", serviceToken);
                    request.Headers.Add("X-Subject-Token", token);
                    return request;
                }, ct);
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
            {
                throw new IdentityUnavailableException($"Keystone at {options.AuthUrl} did not answer: {e.Message}", e);
            }
            using (response)
            {
                if (response.StatusCode == HttpStatusCode.Unauthorized && attempt == 0) continue; // our service token expired: renew once
                if (response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
                {
                    var invalid = TokenValidationResult.Invalid("Keystone rejected the token.");
                    _cache[key] = (invalid, now.AddSeconds(Math.Min(30, options.CacheSeconds)));
                    return invalid;
                }
                if (!response.IsSuccessStatusCode)
                    throw new IdentityUnavailableException($"Keystone answered {(int)response.StatusCode} validating a token.");
                var body = await response.Content.ReadFromJsonAsync<JsonObject>(ct);
                var result = Parse(body?["token"]);
                var until = now.AddSeconds(options.CacheSeconds);
                if (result.Context is not null && result.Context.ExpiresAt < until) until = result.Context.ExpiresAt;
                _cache[key] = (result, until);
                return result;
            }
        }
        throw new IdentityUnavailableException("Keystone refused the service credentials.");
    }

    /// <summary>
    /// Keystone behind uwsgi closes idle keep-alive connections; a request sent on such a connection fails with a
    /// reset before Keystone saw it. Those (and only those transport failures) are retried on a fresh connection.
    /// </summary>
    private async Task<HttpResponseMessage> SendWithReconnectAsync(Func<HttpRequestMessage> make, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            using var request = make();
            try { return await http.SendAsync(request, ct); }
            catch (HttpRequestException e) when (attempt < 3 && e.InnerException is IOException)
            {
                logger.LogDebug("Keystone connection was reset (attempt {Attempt}); retrying", attempt);
            }
        }
    }

    private static TokenValidationResult Parse(JsonNode? t)
    {
        var project = t?["project"];
        if (t is null || project is null) return TokenValidationResult.Invalid("The token is not scoped to a project.");
        var roles = (t["roles"] as JsonArray ?? new JsonArray()).Select(r => r?["name"]?.GetValue<string>() ?? "").Where(r => r.Length > 0).ToList();
        var expires = DateTimeOffset.TryParse(t["expires_at"]?.GetValue<string>(), out var e) ? e : DateTimeOffset.MaxValue;
        return TokenValidationResult.Valid(new AuthContext(
            t["user"]?["id"]?.GetValue<string>() ?? "",
            t["user"]?["name"]?.GetValue<string>() ?? "",
            project["id"]?.GetValue<string>() ?? "",
            project["name"]?.GetValue<string>() ?? "",
            project["domain"]?["id"]?.GetValue<string>() ?? "default",
            roles, expires,
            (t["audit_ids"] as JsonArray)?.FirstOrDefault()?.GetValue<string>()));
    }

    private async Task<string> ServiceTokenAsync(bool forceRenew, CancellationToken ct)
    {
        await _serviceTokenLock.WaitAsync(ct);
        try
        {
            if (!forceRenew && _serviceToken is not null && _serviceTokenExpires > time.GetUtcNow().AddMinutes(1)) return _serviceToken;
            var body = KeystoneRequests.PasswordAuth(options.Username, options.Password, options.ProjectName, options.UserDomainName, options.ProjectDomainName);
            HttpResponseMessage response;
            try
            {
                // A StringContent (with Content-Length): Keystone under uwsgi's http-socket rejects chunked request bodies.
                response = await SendWithReconnectAsync(() => new HttpRequestMessage(HttpMethod.Post, Url("/auth/tokens?nocatalog"))
                {
                    Content = new StringContent(body.ToJsonString(), System.Text.Encoding.UTF8, "application/json"),
                }, ct);
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
            {
                throw new IdentityUnavailableException($"Keystone at {options.AuthUrl} did not answer: {e.Message}", e);
            }
            using (response)
            {
                if (!response.IsSuccessStatusCode)
                {
                    logger.LogError("Keystone refused Magnetar's service credentials (user {User}): {Status}", options.Username, (int)response.StatusCode);
                    throw new IdentityUnavailableException($"Keystone refused the service credentials ({(int)response.StatusCode}).");
                }
                _serviceToken = response.Headers.GetValues("X-Subject-Token").First();
                var json = await response.Content.ReadFromJsonAsync<JsonObject>(ct);
                _serviceTokenExpires = DateTimeOffset.TryParse(json?["token"]?["expires_at"]?.GetValue<string>(), out var e) ? e : time.GetUtcNow().AddMinutes(30);
                return _serviceToken;
            }
        }
        finally { _serviceTokenLock.Release(); }
    }
}
