using System.Text.Json.Nodes;

namespace Magnetar.Identity;

/// <summary>Keystone v3 request bodies, written once.</summary>
public static class KeystoneRequests
{
    /// <summary><c>POST /v3/auth/tokens</c> body: password method, user by name, project scope by name.</summary>
    public static JsonObject PasswordAuth(string user, string password, string project, string userDomain = "Default", string projectDomain = "Default") => new()
    {
        ["auth"] = new JsonObject
        {
            ["identity"] = new JsonObject
            {
                ["methods"] = new JsonArray("password"),
                ["password"] = new JsonObject
                {
                    ["user"] = new JsonObject { ["name"] = user, ["password"] = password, ["domain"] = new JsonObject { ["name"] = userDomain } },
                },
            },
            ["scope"] = new JsonObject { ["project"] = new JsonObject { ["name"] = project, ["domain"] = new JsonObject { ["name"] = projectDomain } } },
        },
    };
}
