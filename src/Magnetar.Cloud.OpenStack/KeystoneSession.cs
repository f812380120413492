using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;

namespace Magnetar.Cloud.OpenStack;

/// <summary>How a session authenticates to Keystone.</summary>
public abstract record OpenStackCredential
{
    /// <summary>A user's password, scoped to a project (Magnetar's service user).</summary>
    public sealed record Password(string User, string Secret, string Project, string UserDomain = "Default", string ProjectDomain = "Default") : OpenStackCredential
    {
        public override string ToString() => $"password of {User} on {Project}";
    }

    /// <summary>An application credential (a cluster's): scoped to the project it was created in.</summary>
    public sealed record ApplicationCredential(string Id, string Secret) : OpenStackCredential
    {
        public override string ToString() => $"application credential {Id}";
    }

    /// <summary>A caller's project-scoped token, used as is until it expires (cannot be renewed).</summary>
    public sealed record Token(string Value) : OpenStackCredential
    {
        public override string ToString() => "a caller's token";
    }
}

/// <summary>
/// A Keystone v3 session: obtains a token for one credential, keeps the service catalog that came with it, renews
/// the token a few minutes before it expires (or when a service answers 401), and resolves service endpoints by
/// type, interface and region. Thread-safe; one per credential.
/// </summary>
/// <param name="catalogSource">
/// For a caller's token: where the service catalog comes from instead of validating the token with Keystone (the
/// service user's catalog, the same endpoints; the services the token is sent to validate it themselves). Null: validate.
/// </param>
public sealed class KeystoneSession(HttpClient http, string authUrl, OpenStackCredential credential, string region, string endpointInterface,
    TimeProvider time, ILogger logger, Func<CancellationToken, Task<JsonArray?>>? catalogSource = null)
{
    private readonly SemaphoreSlim _lock = new(1, 1);
    private string? _token;
    private DateTimeOffset _expires;
    private JsonArray? _catalog;

    public OpenStackCredential Credential => credential;
    public string? UserId { get; private set; }
    public string? ProjectId { get; private set; }

    public async Task<string> TokenAsync(CancellationToken ct)
    {
        if (_token is not null && _expires > time.GetUtcNow().AddMinutes(3)) return _token;
        await _lock.WaitAsync(ct);
        try
        {
            if (_token is not null && _expires > time.GetUtcNow().AddMinutes(3)) return _token;
            await AuthenticateAsync(ct);
            return _token!;
        }
        finally { _lock.Release(); }
    }

    /// <summary>The service catalog this session's token came with (authenticating first if needed).</summary>
    public async Task<JsonArray?> CatalogAsync(CancellationToken ct)
    {
        await TokenAsync(ct);
        return _catalog;
    }

    /// <summary>Forgets the token (a service answered 401): the next call authenticates again.</summary>
    public void Invalidate()
    {
        if (credential is not OpenStackCredential.Token) _token = null;
    }

    /// <summary>The base URL of a service from the catalog, without a trailing slash.</summary>
    private static readonly Dictionary<string, string[]> TypeAliases = new() { ["block-storage"] = ["volumev3", "volume"] };

    public async Task<string> EndpointAsync(string serviceType, CancellationToken ct)
    {
        await TokenAsync(ct);
        var catalog = _catalog ?? throw new InvalidOperationException("Keystone returned no service catalog");
        // The service-types authority's name first, then the older names clouds still register (Cinder: volumev3).
        foreach (var type in (string[])[serviceType, .. TypeAliases.GetValueOrDefault(serviceType, [])])
            foreach (var service in catalog.OfType<JsonObject>())
            {
                if ((string?)service["type"] != type) continue;
                foreach (var ep in (service["endpoints"] as JsonArray ?? []).OfType<JsonObject>())
                {
                    var epRegion = (string?)ep["region_id"] ?? (string?)ep["region"];
                    if ((string?)ep["interface"] == endpointInterface && (string.IsNullOrEmpty(region) || epRegion == region))
                        return ((string)ep["url"]!).TrimEnd('/');
                }
            }
        throw new OpenStackApiException("keystone", $"find the {serviceType} endpoint", HttpStatusCode.NotFound,
            $"the service catalog has no {endpointInterface} endpoint of type {serviceType} in region {region}", null);
    }

    private async Task AuthenticateAsync(CancellationToken ct)
    {
        var url = authUrl.TrimEnd('/');
        if (credential is OpenStackCredential.Token known && catalogSource is not null)
        {
            // Magnetar's API has just validated this token (keystone mode): no second round trip to Keystone for it.
            _catalog = await catalogSource(ct);
            _expires = time.GetUtcNow().AddMinutes(30); // only ever used within the request that brought it
            _token = known.Value;
            return;
        }
        if (credential is OpenStackCredential.Token t)
        {
            // A caller's token: validate it once and fetch the catalog it may see.
            using var req = new HttpRequestMessage(HttpMethod.Get, url + "/auth/tokens");
            req.Headers.Add("X-Auth-Token", t.Value);
            req.Headers.Add("X-Subject-Token", t.Value);
            using var resp = await SendAsync(req, "validate the caller's token", ct);
            ReadToken(await ParseAsync(resp, ct), t.Value);
            return;
        }

        JsonObject identity = credential switch
        {
            OpenStackCredential.Password p => new JsonObject
            {
                ["methods"] = new JsonArray("password"),
                ["password"] = new JsonObject
                {
                    ["user"] = new JsonObject { ["name"] = p.User, ["domain"] = new JsonObject { ["name"] = p.UserDomain }, ["password"] = p.Secret },
                },
            },
            OpenStackCredential.ApplicationCredential a => new JsonObject
            {
                ["methods"] = new JsonArray("application_credential"),
                ["application_credential"] = new JsonObject { ["id"] = a.Id, ["secret"] = a.Secret },
            },
            _ => throw new InvalidOperationException("unknown credential"),
        };
        var auth = new JsonObject { ["identity"] = identity };
        if (credential is OpenStackCredential.Password pw)
            auth["scope"] = new JsonObject { ["project"] = new JsonObject { ["name"] = pw.Project, ["domain"] = new JsonObject { ["name"] = pw.ProjectDomain } } };

        using var request = new HttpRequestMessage(HttpMethod.Post, url + "/auth/tokens")
        {
            // Content-Length, not chunked: Keystone behind uwsgi rejects chunked request bodies.
            Content = new StringContent(new JsonObject { ["auth"] = auth }.ToJsonString(), Encoding.UTF8, "application/json"),
        };
        using var response = await SendAsync(request, $"authenticate with {credential}", ct);
        var token = response.Headers.TryGetValues("X-Subject-Token", out var values) ? values.First() : null;
        ReadToken(await ParseAsync(response, ct), token ?? throw new OpenStackApiException("keystone", "authenticate", response.StatusCode, "no X-Subject-Token in the answer", null));
        logger.LogDebug("Keystone token obtained with {Credential}, expires {Expires}", credential, _expires);
    }

    private void ReadToken(JsonNode? body, string token)
    {
        var t = body?["token"] ?? throw new OpenStackApiException("keystone", "authenticate", HttpStatusCode.OK, "no token in the answer", null);
        _catalog = t["catalog"] as JsonArray;
        _expires = DateTimeOffset.TryParse((string?)t["expires_at"], out var e) ? e : time.GetUtcNow().AddHours(1);
        UserId = (string?)t["user"]?["id"];
        ProjectId = (string?)t["project"]?["id"];
        _token = token;
    }

    private async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, string operation, CancellationToken ct)
    {
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        HttpResponseMessage response;
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        try { response = await http.SendAsync(request, ct); }
        catch (Exception e) when (e is HttpRequestException || (e is OperationCanceledException && !ct.IsCancellationRequested))
        {
            OpenStackMetrics.Record("keystone", request.Method, 0, System.Diagnostics.Stopwatch.GetElapsedTime(started));
            throw new OpenStackUnavailableException("keystone", operation, e);
        }
        OpenStackMetrics.Record("keystone", request.Method, (int)response.StatusCode, System.Diagnostics.Stopwatch.GetElapsedTime(started));
        if (response.IsSuccessStatusCode) return response;
        using (response)
        {
            var body = await response.Content.ReadAsStringAsync(ct);
            throw OpenStackApiException.Create("keystone", operation, response.StatusCode, body, RequestIdOf(response));
        }
    }

    private static async Task<JsonNode?> ParseAsync(HttpResponseMessage response, CancellationToken ct)
        => JsonNode.Parse(await response.Content.ReadAsStringAsync(ct));

    internal static string? RequestIdOf(HttpResponseMessage r)
        => r.Headers.TryGetValues("x-openstack-request-id", out var v) ? v.FirstOrDefault()
         : r.Headers.TryGetValues("x-compute-request-id", out var c) ? c.FirstOrDefault() : null;
}
