using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;

namespace Magnetar.Cloud.OpenStack;

public sealed record ApplicationCredentialInfo(string Id, string Name, string? Secret, string? ProjectId, bool Unrestricted);

/// <summary>Keystone v3: application credentials.</summary>
public sealed class IdentityClient(HttpClient http, KeystoneSession session, ILogger logger)
    : OpenStackServiceClient(http, session, "identity", "keystone", logger)
{
    /// <summary>Creates a restricted application credential for the session's user (only a user can create their own).</summary>
    public async Task<ApplicationCredentialInfo> CreateApplicationCredentialAsync(string userId, string name, string description, IEnumerable<string> roles, CancellationToken ct)
    {
        var body = new JsonObject
        {
            ["application_credential"] = new JsonObject
            {
                ["name"] = name,
                ["description"] = description,
                ["unrestricted"] = false,
                ["roles"] = new JsonArray(roles.Select(r => (JsonNode)new JsonObject { ["name"] = r }).ToArray()),
            },
        };
        var answer = await SendAsync(HttpMethod.Post, $"/users/{Q(userId)}/application_credentials", body, $"create application credential {name}", ct, null, HttpStatusCode.Created);
        return Read<ApplicationCredentialInfo>(answer?["application_credential"])!;
    }

    public Task<List<ApplicationCredentialInfo>> ListApplicationCredentialsAsync(string userId, string? name, CancellationToken ct)
        => ListAsync<ApplicationCredentialInfo>($"/users/{Q(userId)}/application_credentials" + (name is null ? "" : $"?name={Q(name)}"),
            "application_credentials", "list application credentials", ct);

    public Task<bool> DeleteApplicationCredentialAsync(string userId, string id, CancellationToken ct)
        => DeleteAsync($"/users/{Q(userId)}/application_credentials/{Q(id)}", $"delete application credential {id}", ct);
}
