using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Magnetar.Identity;

/// <summary>Services the built-in catalog lists besides identity and container-infra (the host's standalone cloud endpoints), for a base URL and project.</summary>
public sealed class BuiltInCatalogEntries(Func<string, string, IEnumerable<(string Type, string Name, string Url)>> entries)
{
    public IEnumerable<(string Type, string Name, string Url)> For(string baseUrl, string projectId) => entries(baseUrl, projectId);
}

/// <summary>
/// The subset of Keystone v3 that keystoneauth, python-openstackclient and tempest use, and Horizon's openstack_auth at login, under <c>/identity</c>.
/// Standalone mode only: production deployments validate tokens against a real Keystone.
/// </summary>
public static class BuiltInIdentityEndpoints
{
    private const string Updated = "2022-09-01T00:00:00Z";

    public static IEndpointRouteBuilder MapBuiltInIdentity(this IEndpointRouteBuilder app)
    {
        var config = app.ServiceProvider.GetRequiredService<IConfiguration>();
        if (!IdentityServiceCollectionExtensions.IsBuiltIn(config)) return app;
        var publicUrl = config["Magnetar:PublicUrl"];
        string Base(HttpContext h) => !string.IsNullOrEmpty(publicUrl) ? publicUrl.TrimEnd('/') : $"{h.Request.Scheme}://{h.Request.Host}{h.Request.PathBase}";

        app.MapGet("/identity", (HttpContext h) => Results.Json(new JsonObject
        {
            ["versions"] = new JsonObject { ["values"] = new JsonArray(Version(Base(h))) },
        }, statusCode: 300));
        app.MapGet("/identity/v3", (HttpContext h) => Results.Json(new JsonObject { ["version"] = Version(Base(h)) }));

        app.MapPost("/identity/v3/auth/tokens", async (HttpContext h, BuiltInIdentityStore store, BuiltInTokenService tokens) =>
        {
            JsonNode? body;
            try { body = await JsonNode.ParseAsync(h.Request.Body, documentOptions: new JsonDocumentOptions { MaxDepth = 16, AllowDuplicateProperties = false }); }
            catch (Exception e) when (e is JsonException or ArgumentException) { return Error(400, "Bad Request", "Malformed request body."); }
            var identity = At(body, "auth", "identity");
            if (At(identity, "methods") is not JsonArray methods || methods.Count == 0)
                return Error(400, "Bad Request", "Expecting to find identity in auth - the server could not comply with the request since it is either malformed or otherwise incorrect.");
            var methodNames = methods.Select(m => Str(m) ?? "").ToArray();

            IdentityUser? user = null;
            DateTimeOffset? expires = null;
            string? parentAuditId = null;
            var issuedMethods = methodNames.ToList();
            if (methodNames.Contains("password"))
            {
                if (At(identity, "password") is not JsonObject) return Validation("password", "identity");
                var u = At(identity, "password", "user");
                var id = Str(At(u, "id"));
                var name = Str(At(u, "name"));
                var password = Str(At(u, "password"));
                if (u is null || password is null || (id is null && name is null)) return Error(400, "Bad Request", "Invalid password credentials.");
                if (id is null)
                {
                    // Keystone: a user named without a domain is a malformed request; an unknown domain is a failed login.
                    if (At(u, "domain") is not JsonObject) return Validation("domain", "user");
                    if (!DomainMatches(At(u, "domain"))) return Unauthorized();
                }
                user = store.FindUser(id, name);
                if (user is null || !store.VerifyPassword(user, password)) return Unauthorized();
            }
            else if (methodNames.Contains("token"))
            {
                var given = Str(At(identity, "token", "id"));
                if (given is null) return Validation("id", "token");
                var p = tokens.Read(given);
                if (p is null) return Unauthorized();
                user = store.FindUser(p.UserId, null);
                if (user is null) return Unauthorized();
                // Keystone's token method: the new token does not outlive its parent, keeps its methods and chains its audit id.
                expires = p.ExpiresAt;
                parentAuditId = p.AuditId;
                foreach (var m in p.Methods) if (!issuedMethods.Contains(m)) issuedMethods.Add(m);
            }
            else return Error(401, "Unauthorized", "The request you have made requires authentication.");

            // Scope, as Keystone's AuthInfo reads it: none or "unscoped" (an unscoped token), or exactly one of project, domain, system.
            IdentityProject? project = null;
            var scope = At(body, "auth", "scope");
            if (scope is JsonValue sv && Str(sv) == "unscoped") { }
            else if (scope is JsonObject so)
            {
                var kinds = new[] { "project", "domain", "system", "OS-TRUST:trust", "unscoped" }.Count(so.ContainsKey);
                if (kinds != 1) return Validation("project, domain, OS-TRUST:trust or unscoped", "scope");
                if (so["project"] is JsonNode spNode)
                {
                    if (spNode is not JsonObject sp) return Validation("id or name", "project");
                    var pid = Str(At(sp, "id"));
                    var pname = Str(At(sp, "name"));
                    if (pid is null && pname is null) return Validation("id or name", "project");
                    if (pid is null)
                    {
                        if (At(sp, "domain") is not JsonObject pd) return Validation("domain", "project");
                        if (Str(At(pd, "id")) is null && Str(At(pd, "name")) is null) return Validation("id or name", "domain");
                        if (!DomainMatches(pd)) return Unauthorized();
                    }
                    project = store.FindProject(pid, pname);
                    // Unknown project and no role on it are both 401, as Keystone (which logs the reason and tells the client nothing).
                    if (project is null || store.RolesOf(user.Id, project.Id).Count == 0) return Unauthorized();
                }
                else if (so["domain"] is JsonNode sdNode)
                {
                    if (sdNode is not JsonObject sd || (Str(At(sd, "id")) is null && Str(At(sd, "name")) is null)) return Validation("id or name", "domain");
                    // The built-in identity assigns roles on projects only: nobody has a role on a domain, so Keystone's answer is 401.
                    return Unauthorized();
                }
                else if (so.ContainsKey("system") || so.ContainsKey("OS-TRUST:trust"))
                {
                    // No system role assignments and no trusts exist here.
                    return Unauthorized();
                }
                // {"unscoped": ...} inside an object: an unscoped token
            }
            else if (scope is not null) return Validation("project, domain, OS-TRUST:trust or unscoped", "scope");

            var (token, payload) = tokens.Issue(user.Id, project?.Id, issuedMethods.ToArray(), expires, parentAuditId);
            h.Response.Headers["X-Subject-Token"] = token;
            var includeCatalog = !h.Request.Query.ContainsKey("nocatalog");
            return Results.Json(new JsonObject { ["token"] = TokenBody(store, payload, Base(h), includeCatalog, h.RequestServices.GetService<BuiltInCatalogEntries>()) }, statusCode: 201);
        });

        app.MapMethods("/identity/v3/auth/tokens", ["GET", "HEAD"], (HttpContext h, BuiltInIdentityStore store, BuiltInTokenService tokens) =>
        {
            if (Caller(h, tokens) is null) return Unauthorized();
            var subject = tokens.Read(h.Request.Headers["X-Subject-Token"].ToString());
            if (subject is null) return Error(404, "Not Found", "Could not find token.");
            h.Response.Headers["X-Subject-Token"] = h.Request.Headers["X-Subject-Token"].ToString();
            if (HttpMethods.IsHead(h.Request.Method)) return Results.Ok();
            return Results.Json(new JsonObject { ["token"] = TokenBody(store, subject, Base(h), !h.Request.Query.ContainsKey("nocatalog"), h.RequestServices.GetService<BuiltInCatalogEntries>()) });
        });

        app.MapDelete("/identity/v3/auth/tokens", (HttpContext h, BuiltInTokenService tokens) =>
        {
            if (Caller(h, tokens) is null) return Unauthorized();
            var subject = tokens.Read(h.Request.Headers["X-Subject-Token"].ToString());
            if (subject is null) return Error(404, "Not Found", "Could not find token.");
            tokens.Revoke(subject);
            return Results.NoContent();
        });

        app.MapGet("/identity/v3/auth/catalog", (HttpContext h, BuiltInTokenService tokens) =>
        {
            var p = Caller(h, tokens);
            if (p is null) return Unauthorized();
            // Keystone: an unscoped token has no catalog (403 "A project-scoped token is required...").
            if (p.ProjectId is null) return Error(403, "Forbidden", "A project-scoped token is required to produce a service catalog.");
            return Results.Json(new JsonObject { ["catalog"] = Catalog(Base(h), p.ProjectId, h.RequestServices.GetService<BuiltInCatalogEntries>()), ["links"] = Self(h) });
        });

        app.MapGet("/identity/v3/auth/projects", (HttpContext h, BuiltInIdentityStore store, BuiltInTokenService tokens) =>
        {
            var p = Caller(h, tokens);
            if (p is null) return Unauthorized();
            return Results.Json(new JsonObject { ["projects"] = ProjectsOf(store, p.UserId), ["links"] = Self(h) });
        });

        // Role assignments here are on projects only: no domain and no system scope is available to anyone (Keystone's
        // answer for a user without domain or system roles). openstack_auth asks for both at login and moves on.
        app.MapGet("/identity/v3/auth/domains", (HttpContext h, BuiltInTokenService tokens) =>
            Caller(h, tokens) is null ? Unauthorized() : Results.Json(new JsonObject { ["domains"] = new JsonArray(), ["links"] = Self(h) }));

        app.MapGet("/identity/v3/auth/system", (HttpContext h, BuiltInTokenService tokens) =>
            Caller(h, tokens) is null ? Unauthorized() : Results.Json(new JsonObject { ["system"] = new JsonArray(), ["links"] = Self(h) }));

        app.MapGet("/identity/v3/users/{id}", (HttpContext h, string id, BuiltInIdentityStore store, BuiltInTokenService tokens) =>
        {
            var p = Caller(h, tokens);
            if (p is null) return Unauthorized();
            // Keystone's default policy: the user themself, or an admin.
            if (p.UserId != id && !IsAdmin(store, p)) return Error(403, "Forbidden", "You are not authorized to perform the requested action: identity:get_user.");
            var user = store.FindUser(id, null);
            if (user is null) return Error(404, "Not Found", $"Could not find user: {id}.");
            return Results.Json(new JsonObject { ["user"] = UserJson(user, Base(h)) });
        });

        app.MapGet("/identity/v3/domains/{id}", (HttpContext h, string id, BuiltInIdentityStore store, BuiltInTokenService tokens) =>
        {
            var p = Caller(h, tokens);
            if (p is null) return Unauthorized();
            // Keystone's default policy: an admin, or a token scoped to a project of that domain (an unscoped token may not).
            var project = p.ProjectId is null ? null : store.FindProject(p.ProjectId, null);
            if (project is null || (project.DomainId != id && !IsAdmin(store, p)))
                return Error(403, "Forbidden", "You are not authorized to perform the requested action: identity:get_domain.");
            if (id != BuiltInIdentityStore.DefaultDomainId) return Error(404, "Not Found", $"Could not find domain: {id}.");
            return Results.Json(new JsonObject { ["domain"] = DomainJson(Base(h)) });
        });

        app.MapGet("/identity/v3/domains", (HttpContext h, BuiltInIdentityStore store, BuiltInTokenService tokens) =>
        {
            var p = Caller(h, tokens);
            if (p is null) return Unauthorized();
            if (!IsAdmin(store, p)) return Error(403, "Forbidden", "You are not authorized to perform the requested action: identity:list_domains.");
            var name = h.Request.Query["name"].ToString();
            var list = string.IsNullOrEmpty(name) || name == BuiltInIdentityStore.DefaultDomainName ? new JsonArray(DomainJson(Base(h))) : new JsonArray();
            return Results.Json(new JsonObject { ["domains"] = list, ["links"] = Self(h) });
        });

        app.MapGet("/identity/v3/users/{id}/projects", (HttpContext h, string id, BuiltInIdentityStore store, BuiltInTokenService tokens) =>
        {
            var p = Caller(h, tokens);
            if (p is null) return Unauthorized();
            if (p.UserId != id && !IsAdmin(store, p)) return Error(403, "Forbidden", "You are not authorized to perform the requested action.");
            return Results.Json(new JsonObject { ["projects"] = ProjectsOf(store, id), ["links"] = Self(h) });
        });

        app.MapGet("/identity/v3/projects", (HttpContext h, BuiltInIdentityStore store, BuiltInTokenService tokens) =>
        {
            var p = Caller(h, tokens);
            if (p is null) return Unauthorized();
            if (!IsAdmin(store, p)) return Error(403, "Forbidden", "You are not authorized to perform the requested action.");
            var name = h.Request.Query["name"].ToString();
            var list = store.Projects().Where(x => string.IsNullOrEmpty(name) || x.Name == name);
            return Results.Json(new JsonObject { ["projects"] = new JsonArray(list.Select(x => (JsonNode?)ProjectJson(x)).ToArray()), ["links"] = Self(h) });
        });

        app.MapGet("/identity/v3/projects/{id}", (HttpContext h, string id, BuiltInIdentityStore store, BuiltInTokenService tokens) =>
        {
            var p = Caller(h, tokens);
            if (p is null) return Unauthorized();
            var project = store.FindProject(id, null);
            if (project is null || (!IsAdmin(store, p) && p.ProjectId != id)) return Error(404, "Not Found", $"Could not find project: {id}.");
            return Results.Json(new JsonObject { ["project"] = ProjectJson(project) });
        });

        app.MapGet("/identity/v3/users", (HttpContext h, BuiltInIdentityStore store, BuiltInTokenService tokens) =>
        {
            var p = Caller(h, tokens);
            if (p is null) return Unauthorized();
            if (!IsAdmin(store, p)) return Error(403, "Forbidden", "You are not authorized to perform the requested action.");
            var name = h.Request.Query["name"].ToString();
            var users = store.Users().Where(u => string.IsNullOrEmpty(name) || u.Name == name)
                .Select(u => (JsonNode?)new JsonObject { ["id"] = u.Id, ["name"] = u.Name, ["domain_id"] = u.DomainId, ["enabled"] = true });
            return Results.Json(new JsonObject { ["users"] = new JsonArray(users.ToArray()), ["links"] = Self(h) });
        });

        app.MapGet("/identity/v3/roles", (HttpContext h, BuiltInTokenService tokens) =>
            Caller(h, tokens) is null ? Unauthorized() : Results.Json(new JsonObject
            {
                ["roles"] = new JsonArray(new[] { "admin", "member", "reader" }.Select(r => (JsonNode?)new JsonObject { ["id"] = r, ["name"] = r }).ToArray()),
            }));
        return app;
    }

    private static JsonObject Version(string baseUrl) => new()
    {
        ["id"] = "v3.14",
        ["status"] = "stable",
        ["updated"] = Updated,
        ["links"] = new JsonArray(new JsonObject { ["rel"] = "self", ["href"] = $"{baseUrl}/identity/v3/" }),
        ["media-types"] = new JsonArray(new JsonObject { ["base"] = "application/json", ["type"] = "application/vnd.openstack.identity-v3+json" }),
    };

    private static JsonObject Self(HttpContext h) => new() { ["self"] = $"{h.Request.Scheme}://{h.Request.Host}{h.Request.Path}", ["previous"] = null, ["next"] = null };

    /// <summary>Follows object keys; null when any step is missing or not an object (hostile bodies are 400/401, not 500).</summary>
    private static JsonNode? At(JsonNode? node, params string[] keys)
    {
        foreach (var k in keys)
        {
            if (node is not JsonObject o || !o.TryGetPropertyValue(k, out node)) return null;
        }
        return node;
    }

    private static string? Str(JsonNode? n) => n is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    private static bool DomainMatches(JsonNode? domain)
    {
        var id = Str(At(domain, "id"));
        var name = Str(At(domain, "name"));
        return id == BuiltInIdentityStore.DefaultDomainId || name == BuiltInIdentityStore.DefaultDomainName;
    }

    private static TokenPayload? Caller(HttpContext h, BuiltInTokenService tokens) => tokens.Read(h.Request.Headers["X-Auth-Token"].ToString());

    private static bool IsAdmin(BuiltInIdentityStore store, TokenPayload p)
        => p.ProjectId is not null && store.RolesOf(p.UserId, p.ProjectId).Contains("admin");

    private static JsonObject ProjectJson(IdentityProject p) => new()
    {
        ["id"] = p.Id, ["name"] = p.Name, ["domain_id"] = p.DomainId, ["enabled"] = true, ["is_domain"] = false,
        ["parent_id"] = p.DomainId, ["description"] = "", ["tags"] = new JsonArray(),
    };

    private static JsonObject DomainJson(string baseUrl) => new()
    {
        ["id"] = BuiltInIdentityStore.DefaultDomainId, ["name"] = BuiltInIdentityStore.DefaultDomainName, ["description"] = "The default domain",
        ["enabled"] = true, ["tags"] = new JsonArray(), ["options"] = new JsonObject(),
        ["links"] = new JsonObject { ["self"] = $"{baseUrl}/identity/v3/domains/{BuiltInIdentityStore.DefaultDomainId}" },
    };

    private static JsonObject UserJson(IdentityUser u, string baseUrl) => new()
    {
        ["id"] = u.Id, ["name"] = u.Name, ["domain_id"] = u.DomainId, ["enabled"] = true, ["password_expires_at"] = null,
        ["options"] = new JsonObject(), ["links"] = new JsonObject { ["self"] = $"{baseUrl}/identity/v3/users/{u.Id}" },
    };

    private static JsonArray ProjectsOf(BuiltInIdentityStore store, string userId)
        => new(store.Projects().Where(x => store.RolesOf(userId, x.Id).Count > 0).Select(x => (JsonNode?)ProjectJson(x)).ToArray());

    private static JsonObject TokenBody(BuiltInIdentityStore store, TokenPayload p, string baseUrl, bool includeCatalog, BuiltInCatalogEntries? extra)
    {
        var user = store.FindUser(p.UserId, null)!;
        string T(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture);
        var token = new JsonObject
        {
            ["methods"] = new JsonArray(p.Methods.Select(m => (JsonNode?)m).ToArray()),
            ["user"] = new JsonObject
            {
                ["id"] = user.Id, ["name"] = user.Name, ["password_expires_at"] = null,
                ["domain"] = new JsonObject { ["id"] = BuiltInIdentityStore.DefaultDomainId, ["name"] = BuiltInIdentityStore.DefaultDomainName },
            },
            ["audit_ids"] = new JsonArray(p.AuditIds.Select(a => (JsonNode?)a).ToArray()),
            ["expires_at"] = T(p.ExpiresAt),
            ["issued_at"] = T(p.IssuedAt),
        };
        if (p.ProjectId is not null && store.FindProject(p.ProjectId, null) is { } project)
        {
            token["project"] = new JsonObject
            {
                ["id"] = project.Id, ["name"] = project.Name,
                ["domain"] = new JsonObject { ["id"] = BuiltInIdentityStore.DefaultDomainId, ["name"] = BuiltInIdentityStore.DefaultDomainName },
            };
            token["is_domain"] = false;
            token["roles"] = new JsonArray(store.RolesOf(user.Id, project.Id).Select(r => (JsonNode?)new JsonObject { ["id"] = r, ["name"] = r }).ToArray());
            if (includeCatalog) token["catalog"] = Catalog(baseUrl, project.Id, extra);
        }
        return token;
    }

    private static JsonArray Catalog(string baseUrl, string projectId, BuiltInCatalogEntries? extra)
    {
        JsonArray Endpoints(string url) => new(new[] { "public", "internal", "admin" }.Select(i => (JsonNode?)new JsonObject
        {
            ["id"] = $"{i}-{url.GetHashCode():x}", ["interface"] = i, ["region"] = "RegionOne", ["region_id"] = "RegionOne", ["url"] = url,
        }).ToArray());
        JsonArray catalog =
        [
            new JsonObject { ["id"] = "identity", ["type"] = "identity", ["name"] = "keystone", ["endpoints"] = Endpoints($"{baseUrl}/identity/v3") },
            new JsonObject { ["id"] = "container-infra", ["type"] = "container-infra", ["name"] = "magnum", ["endpoints"] = Endpoints($"{baseUrl}/v1") },
        ];
        foreach (var (type, name, url) in extra?.For(baseUrl, projectId) ?? [])
            catalog.Add(new JsonObject { ["id"] = type, ["type"] = type, ["name"] = name, ["endpoints"] = Endpoints(url) });
        return catalog;
    }

    /// <summary>Keystone's ValidationError (400) for a missing attribute.</summary>
    private static IResult Validation(string attribute, string target) => Error(400, "Bad Request",
        $"Expecting to find {attribute} in {target}. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.");

    private static IResult Unauthorized() => Error(401, "Unauthorized", "The request you have made requires authentication.");

    private static IResult Error(int code, string title, string message)
        => Results.Json(new JsonObject { ["error"] = new JsonObject { ["code"] = code, ["title"] = title, ["message"] = message } }, statusCode: code);
}
