using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;

namespace Magnetar.Cloud.OpenStack;

/// <summary>
/// What every typed client shares: the endpoint from the catalog, the token (renewed once on 401), the microversion
/// header, the accepted status codes per call, OpenStack error bodies turned into typed exceptions, request ids in the
/// log, and linked pagination. Retries with backoff for idempotent calls and 5xx/timeouts are done underneath by the
/// HttpClient's resilience pipeline (see <see cref="OpenStackServiceCollectionExtensions"/>). Only the typed clients
/// derive from this; the driver never builds a URL.
/// </summary>
public abstract class OpenStackServiceClient(HttpClient http, KeystoneSession session, string serviceType, string serviceName, ILogger logger)
{
    internal static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        PropertyNameCaseInsensitive = true,
    };

    protected string ServiceName => serviceName;

    /// <summary>The microversion header for this service, e.g. ("OpenStack-API-Version", "compute 2.67").</summary>
    protected virtual IEnumerable<(string Header, string Value)> MicroversionHeaders(string microversion) => [];

    protected async Task<JsonNode?> SendAsync(HttpMethod method, string path, object? body, string operation, CancellationToken ct,
        string? microversion = null, params HttpStatusCode[] ok)
    {
        for (var attempt = 0; ; attempt++)
        {
            var baseUrl = await session.EndpointAsync(serviceType, ct);
            var token = await session.TokenAsync(ct);
            using var request = new HttpRequestMessage(method, baseUrl + path);
            request.Headers.Add("X-Auth-Token", token);
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
            if (microversion is not null)
                foreach (var (h, v) in MicroversionHeaders(microversion)) request.Headers.TryAddWithoutValidation(h, v);
            if (body is not null)
            {
                var text = body is JsonNode node ? node.ToJsonString() : JsonSerializer.Serialize(body, body.GetType(), Json);
                // Content-Length, not chunked: services behind uwsgi's http-socket reject chunked request bodies.
                request.Content = new StringContent(text, Encoding.UTF8, "application/json");
            }

            HttpResponseMessage response;
            var started = Stopwatch.GetTimestamp();
            try { response = await http.SendAsync(request, ct); }
            catch (Exception e) when (e is HttpRequestException || (e is OperationCanceledException && !ct.IsCancellationRequested))
            {
                OpenStackMetrics.Record(serviceName, method, 0, Stopwatch.GetElapsedTime(started));
                throw new OpenStackUnavailableException(serviceName, operation, e);
            }
            OpenStackMetrics.Record(serviceName, method, (int)response.StatusCode, Stopwatch.GetElapsedTime(started));
            using (response)
            {
                var requestId = KeystoneSession.RequestIdOf(response);
                var content = await response.Content.ReadAsStringAsync(ct);
                logger.LogDebug("{Service} {Method} {Path} → {Status} (request {RequestId})", serviceName, method, path, (int)response.StatusCode, requestId);
                if (response.StatusCode == HttpStatusCode.Unauthorized && attempt == 0 && session.Credential is not OpenStackCredential.Token)
                {
                    session.Invalidate();
                    continue;
                }
                var accepted = ok.Length == 0 ? response.IsSuccessStatusCode : ok.Contains(response.StatusCode);
                if (!accepted) throw OpenStackApiException.Create(serviceName, operation, response.StatusCode, content, requestId);
                return string.IsNullOrWhiteSpace(content) ? null : JsonNode.Parse(content);
            }
        }
    }

    protected Task<JsonNode?> GetAsync(string path, string operation, CancellationToken ct, string? microversion = null)
        => SendAsync(HttpMethod.Get, path, null, operation, ct, microversion, HttpStatusCode.OK);

    /// <summary>GET that answers null for 404.</summary>
    protected async Task<T?> FindAsync<T>(string path, string key, string operation, CancellationToken ct, string? microversion = null) where T : class
    {
        try { return Read<T>((await GetAsync(path, operation, ct, microversion))?[key]); }
        catch (OpenStackNotFoundException) { return null; }
    }

    /// <summary>DELETE that counts 404 as done (deleted out of band, or by an earlier pass). True when a delete was sent.</summary>
    protected async Task<bool> DeleteAsync(string path, string operation, CancellationToken ct, string? microversion = null)
    {
        try
        {
            await SendAsync(HttpMethod.Delete, path, null, operation, ct, microversion, HttpStatusCode.NoContent, HttpStatusCode.Accepted, HttpStatusCode.OK);
            return true;
        }
        catch (OpenStackNotFoundException) { return false; }
    }

    /// <summary>Every item of a collection, following <c>{collection}_links</c> rel=next (Nova, Neutron, Octavia, Cinder) or <c>next</c> (Glance).</summary>
    protected async Task<List<T>> ListAsync<T>(string path, string collection, string operation, CancellationToken ct, string? microversion = null)
    {
        var items = new List<T>();
        var next = path;
        for (var page = 0; next is not null && page < 1000; page++)
        {
            var body = await GetAsync(next, operation, ct, microversion);
            foreach (var item in body?[collection] as JsonArray ?? [])
                if (Read<T>(item) is { } t) items.Add(t);
            next = NextPath(body, collection, path);
        }
        return items;
    }

    private static string? NextPath(JsonNode? body, string collection, string firstPath)
    {
        string? href = null;
        if (body?[collection + "_links"] is JsonArray links)
            href = links.OfType<JsonObject>().FirstOrDefault(l => (string?)l["rel"] == "next")?["href"]?.GetValue<string>();
        else if (body?["next"] is JsonValue glanceNext)
            href = glanceNext.GetValue<string>();
        if (string.IsNullOrEmpty(href)) return null;
        // Links are absolute (their host may not be the catalog's) or relative, and include the endpoint's own path
        // prefix (Nova's /v2.1): continue from where the first request's resource path appears in them.
        if (Uri.TryCreate(href, UriKind.Absolute, out var abs)) href = abs.PathAndQuery;
        var at = href.IndexOf(firstPath.Split('?')[0], StringComparison.Ordinal);
        return at < 0 ? null : href[at..];
    }

    internal static T? Read<T>(JsonNode? node) => node is null ? default : node.Deserialize<T>(Json);

    protected static string Q(string value) => Uri.EscapeDataString(value);
}
