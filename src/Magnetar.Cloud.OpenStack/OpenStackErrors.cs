using System.Net;
using System.Text.Json.Nodes;

namespace Magnetar.Cloud.OpenStack;

/// <summary>
/// An OpenStack API answered with an error. <see cref="Message"/> says which service, which call and what the
/// service said, so it can go straight into a cluster's status_reason.
/// </summary>
public class OpenStackApiException(string service, string operation, HttpStatusCode status, string serviceMessage, string? requestId)
    : Exception($"{service}: {operation} failed with {(int)status} {status}: {serviceMessage}" + (requestId is null ? "" : $" (request {requestId})"))
{
    public string Service { get; } = service;
    public string Operation { get; } = operation;
    public HttpStatusCode StatusCode { get; } = status;
    public string ServiceMessage { get; } = serviceMessage;
    public string? RequestId { get; } = requestId;

    internal static OpenStackApiException Create(string service, string operation, HttpStatusCode status, string body, string? requestId)
    {
        var message = ExtractMessage(body);
        return status switch
        {
            HttpStatusCode.NotFound => new OpenStackNotFoundException(service, operation, status, message, requestId),
            HttpStatusCode.RequestEntityTooLarge => new OpenStackQuotaException(service, operation, status, message, requestId),
            HttpStatusCode.Forbidden or HttpStatusCode.Conflict when message.Contains("quota", StringComparison.OrdinalIgnoreCase)
                => new OpenStackQuotaException(service, operation, status, message, requestId),
            HttpStatusCode.Conflict => new OpenStackConflictException(service, operation, status, message, requestId),
            >= HttpStatusCode.InternalServerError => new OpenStackServerException(service, operation, status, message, requestId),
            _ => new OpenStackApiException(service, operation, status, message, requestId),
        };
    }

    /// <summary>
    /// The human message of an OpenStack error body, whichever service wrote it: Nova/Cinder
    /// <c>{"itemNotFound": {"message": …}}</c>, Neutron <c>{"NeutronError": {"message": …}}</c>, Octavia
    /// <c>{"faultstring": …}</c>, Keystone <c>{"error": {"message": …}}</c>, or plain text (Glance).
    /// </summary>
    internal static string ExtractMessage(string body)
    {
        if (string.IsNullOrWhiteSpace(body)) return "(no message)";
        try
        {
            if (JsonNode.Parse(body) is JsonObject o)
            {
                if (o["faultstring"] is JsonValue fs) return fs.ToString();
                if (o["message"] is JsonValue m) return m.ToString();
                foreach (var (_, value) in o)
                    if (value is JsonObject inner && inner["message"] is JsonValue im) return im.ToString();
            }
        }
        catch (System.Text.Json.JsonException) { }
        var text = System.Text.RegularExpressions.Regex.Replace(body, "<[^>]+>", " ");
        text = System.Text.RegularExpressions.Regex.Replace(text, @"\s+", " ").Trim();
        return text.Length > 300 ? text[..300] + "…" : text;
    }
}

public sealed class OpenStackNotFoundException(string service, string operation, HttpStatusCode status, string message, string? requestId)
    : OpenStackApiException(service, operation, status, message, requestId);

public sealed class OpenStackConflictException(string service, string operation, HttpStatusCode status, string message, string? requestId)
    : OpenStackApiException(service, operation, status, message, requestId);

/// <summary>413, or 403/409 that names a quota: the project is out of something.</summary>
public sealed class OpenStackQuotaException(string service, string operation, HttpStatusCode status, string message, string? requestId)
    : OpenStackApiException(service, operation, status, message, requestId);

public sealed class OpenStackServerException(string service, string operation, HttpStatusCode status, string message, string? requestId)
    : OpenStackApiException(service, operation, status, message, requestId);

/// <summary>The service could not be reached at all (connection refused, reset, timeout after retries).</summary>
public sealed class OpenStackUnavailableException(string service, string operation, Exception inner)
    : Exception($"{service}: {operation} failed: {inner.Message}", inner)
{
    public string Service { get; } = service;
}
