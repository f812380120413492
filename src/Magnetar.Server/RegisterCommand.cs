using System.Net;
using System.Text.Json.Nodes;

namespace Magnetar.Server;

/// <summary>
/// <c>magnetar register</c> (issue #16): puts Magnetar in a Keystone's catalog as the <c>container-infra</c> service —
/// the service, its public/internal/admin endpoints in a region (created if missing), and the service user Magnetar
/// runs as, with its role on the service project. Idempotent: what is already as asked is left alone and said so.
/// A container-infra service whose endpoints in the region point elsewhere (Magnum's) is refused unless
/// <c>--replace</c>, which points those endpoints at Magnetar. Admin credentials come from the options or an openrc's
/// <c>OS_*</c> variables.
/// </summary>
internal static class RegisterCommand
{
    private const string ServiceType = "container-infra";
    private static readonly string[] Interfaces = ["public", "internal", "admin"];

    private sealed class RegisterException(string message) : Exception(message);

    public static async Task<int> RunAsync(string[] args)
    {
        try
        {
            var o = Parse(args);
            // A new connection per request (a few dozen in all): a Keystone under uwsgi's HTTP router with keep-alive sends a
            // chunk terminator after a 204, which breaks the next response on a reused connection.
            using var http = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.Zero }) { Timeout = TimeSpan.FromSeconds(30) };
            var authUrl = o["auth-url"].TrimEnd('/');
            if (authUrl.EndsWith("/v3", StringComparison.Ordinal)) authUrl = authUrl[..^3]; // an openrc's OS_AUTH_URL names the version
            var keystone = new Keystone(http, authUrl);
            await keystone.LoginAsync(o["username"], o["password"], o["project"], o["user-domain"], o["project-domain"]);
            var changes = new List<string>();
            void Say(string what, bool changed) { Console.WriteLine((changed ? "  changed: " : "  as asked: ") + what); if (changed) changes.Add(what); }

            // The region.
            var region = o["region"];
            if (await keystone.GetAsync($"/v3/regions/{Uri.EscapeDataString(region)}", allowMissing: true) is null)
            {
                await keystone.SendAsync(HttpMethod.Post, "/v3/regions", new JsonObject { ["region"] = new JsonObject { ["id"] = region } });
                Say($"region {region} created", true);
            }
            else Say($"region {region} exists", false);

            // The service, and what its endpoints in this region point at.
            var urls = new Dictionary<string, string> { ["public"] = o["public-url"], ["internal"] = o["internal-url"], ["admin"] = o["admin-url"] };
            var services = (await keystone.GetAsync($"/v3/services?type={ServiceType}"))!["services"]!.AsArray().Select(s => s!).ToList();
            var endpoints = new Dictionary<string, List<JsonNode>>();
            foreach (var s in services)
                endpoints[Id(s)] = (await keystone.GetAsync($"/v3/endpoints?service_id={Id(s)}&region_id={Uri.EscapeDataString(region)}"))!["endpoints"]!.AsArray().Select(e => e!).ToList();
            var foreign = services.SelectMany(s => endpoints[Id(s)].Where(e => urls.GetValueOrDefault(Str(e, "interface")) != Str(e, "url")).Select(e => (Service: s, Endpoint: e))).ToList();
            if (foreign.Count > 0 && !o.ContainsKey("replace"))
                throw new RegisterException($"Keystone already has a {ServiceType} service in region {region} that is not this Magnetar: " +
                    string.Join(", ", foreign.Select(f => $"'{Str(f.Service, "name")}' {Str(f.Endpoint, "interface")} {Str(f.Endpoint, "url")}")) +
                    ". That is Magnum's (or another deployment's) endpoint; run again with --replace to point it at Magnetar (clients then reach Magnetar instead).");
            var service = services.FirstOrDefault(s => endpoints[Id(s)].Count > 0) ?? services.FirstOrDefault(s => Str(s, "name") == o["service-name"]);
            if (service is null)
            {
                service = (await keystone.SendAsync(HttpMethod.Post, "/v3/services", new JsonObject
                {
                    ["service"] = new JsonObject { ["type"] = ServiceType, ["name"] = o["service-name"], ["description"] = Description, ["enabled"] = true },
                }))!["service"]!;
                Say($"service {o["service-name"]} ({ServiceType}) created", true);
            }
            else if (Str(service, "name") != o["service-name"] || service["enabled"]?.GetValue<bool>() == false)
            {
                await keystone.SendAsync(HttpMethod.Patch, $"/v3/services/{Id(service)}", new JsonObject
                {
                    ["service"] = new JsonObject { ["name"] = o["service-name"], ["description"] = Description, ["enabled"] = true },
                });
                Say($"service '{Str(service, "name")}' ({ServiceType}) renamed {o["service-name"]} and enabled", true);
            }
            else Say($"service {o["service-name"]} ({ServiceType}) exists", false);

            var mine = endpoints.GetValueOrDefault(Id(service)) ?? [];
            foreach (var iface in Interfaces)
            {
                var existing = mine.Where(e => Str(e, "interface") == iface).ToList();
                if (existing.Count == 0)
                {
                    await keystone.SendAsync(HttpMethod.Post, "/v3/endpoints", new JsonObject
                    {
                        ["endpoint"] = new JsonObject { ["service_id"] = Id(service), ["interface"] = iface, ["url"] = urls[iface], ["region_id"] = region, ["enabled"] = true },
                    });
                    Say($"endpoint {iface} {urls[iface]} created", true);
                    continue;
                }
                foreach (var e in existing)
                {
                    if (Str(e, "url") == urls[iface] && e["enabled"]?.GetValue<bool>() != false) { Say($"endpoint {iface} {urls[iface]}", false); continue; }
                    await keystone.SendAsync(HttpMethod.Patch, $"/v3/endpoints/{Id(e)}", new JsonObject { ["endpoint"] = new JsonObject { ["url"] = urls[iface], ["enabled"] = true } });
                    Say($"endpoint {iface} {Str(e, "url")} → {urls[iface]}", true);
                }
            }
            // Other container-infra services with endpoints in this region would put two entries of one type in the catalog.
            foreach (var other in services.Where(s => Id(s) != Id(service)))
                foreach (var e in endpoints[Id(other)])
                {
                    await keystone.SendAsync(HttpMethod.Delete, $"/v3/endpoints/{Id(e)}", null);
                    Say($"endpoint {Str(e, "interface")} {Str(e, "url")} of service '{Str(other, "name")}' removed (replaced)", true);
                }

            // The service user, its project and role.
            var domain = await keystone.DomainIdAsync(o["service-domain"]);
            var project = (await keystone.GetAsync($"/v3/projects?name={Uri.EscapeDataString(o["service-project"])}&domain_id={domain}"))!["projects"]!.AsArray().FirstOrDefault();
            if (project is null)
            {
                project = (await keystone.SendAsync(HttpMethod.Post, "/v3/projects", new JsonObject
                {
                    ["project"] = new JsonObject { ["name"] = o["service-project"], ["domain_id"] = domain, ["description"] = "Service users" },
                }))!["project"]!;
                Say($"project {o["service-project"]} created", true);
            }
            var user = (await keystone.GetAsync($"/v3/users?name={Uri.EscapeDataString(o["service-user"])}&domain_id={domain}"))!["users"]!.AsArray().FirstOrDefault();
            var password = o.GetValueOrDefault("service-password");
            if (user is null)
            {
                if (string.IsNullOrEmpty(password)) throw new RegisterException($"the service user {o["service-user"]} does not exist: --service-password is needed to create it");
                user = (await keystone.SendAsync(HttpMethod.Post, "/v3/users", new JsonObject
                {
                    ["user"] = new JsonObject { ["name"] = o["service-user"], ["domain_id"] = domain, ["password"] = password, ["default_project_id"] = Id(project), ["enabled"] = true },
                }))!["user"]!;
                Say($"user {o["service-user"]} created", true);
            }
            else if (!string.IsNullOrEmpty(password) && !await Keystone.CanLoginAsync(http, keystone.Url, o["service-user"], password, domain))
            {
                await keystone.SendAsync(HttpMethod.Patch, $"/v3/users/{Id(user)}", new JsonObject { ["user"] = new JsonObject { ["password"] = password, ["enabled"] = true } });
                Say($"user {o["service-user"]}'s password set", true);
            }
            else Say($"user {o["service-user"]} exists", false);
            var role = (await keystone.GetAsync($"/v3/roles?name={Uri.EscapeDataString(o["role"])}"))!["roles"]!.AsArray().FirstOrDefault()
                ?? throw new RegisterException($"Keystone has no role named {o["role"]}");
            var assignment = $"/v3/projects/{Id(project)}/users/{Id(user)}/roles/{Id(role)}";
            if (await keystone.GetAsync(assignment, allowMissing: true, head: true) is null)
            {
                await keystone.SendAsync(HttpMethod.Put, assignment, null);
                Say($"role {o["role"]} of {o["service-user"]} on project {o["service-project"]} granted", true);
            }
            else Say($"role {o["role"]} of {o["service-user"]} on project {o["service-project"]}", false);

            Console.WriteLine(changes.Count == 0 ? "magnetar register: Keystone already had everything as asked; nothing changed"
                : $"magnetar register: {changes.Count} change(s) made in Keystone at {keystone.Url}");
            return 0;
        }
        catch (RegisterException e)
        {
            Console.Error.WriteLine("magnetar register: " + e.Message);
            return 1;
        }
        catch (HttpRequestException e)
        {
            Console.Error.WriteLine("magnetar register: Keystone could not be reached: " + e.Message);
            return 1;
        }
    }

    private const string Description = "Magnetar: Kubernetes clusters (OpenStack Magnum API)";

    private static string Id(JsonNode n) => n["id"]!.GetValue<string>();
    private static string Str(JsonNode n, string key) => n[key]?.GetValue<string>() ?? "";

    /// <summary>Options, with the admin's credentials from the OS_* environment (an openrc) where not given.</summary>
    private static Dictionary<string, string> Parse(string[] args)
    {
        var o = new Dictionary<string, string>();
        for (var i = 0; i < args.Length; i++)
        {
            var a = args[i];
            if (!a.StartsWith("--")) throw new RegisterException($"unexpected argument {a}");
            var eq = a.IndexOf('=');
            if (eq > 0) o[a[2..eq]] = a[(eq + 1)..];
            else if (a == "--replace") o["replace"] = "true";
            else if (i + 1 < args.Length) o[a[2..]] = args[++i];
            else throw new RegisterException($"{a} needs a value");
        }
        void Default(string key, string? env, string? fallback = null)
        {
            if (o.ContainsKey(key)) return;
            var value = env is null ? null : Environment.GetEnvironmentVariable(env);
            if (string.IsNullOrEmpty(value)) value = fallback;
            if (value is not null) o[key] = value;
        }
        Default("auth-url", "OS_AUTH_URL");
        Default("username", "OS_USERNAME");
        Default("password", "OS_PASSWORD");
        Default("project", "OS_PROJECT_NAME");
        Default("user-domain", "OS_USER_DOMAIN_NAME", "Default");
        Default("project-domain", "OS_PROJECT_DOMAIN_NAME", "Default");
        Default("region", "OS_REGION_NAME", "RegionOne");
        Default("service-name", null, "magnetar");
        Default("service-user", null, "magnetar");
        Default("service-project", null, "service");
        Default("service-domain", null, "Default");
        Default("role", null, "admin");
        var missing = new[] { "auth-url", "username", "password", "project", "public-url" }.Where(k => !o.ContainsKey(k)).ToList();
        if (missing.Count > 0)
            throw new RegisterException($"missing {string.Join(", ", missing.Select(m => "--" + m))} (admin credentials may come from an openrc's OS_* variables)");
        foreach (var key in new[] { "public-url", "internal-url", "admin-url" }.Where(o.ContainsKey))
            if (!Uri.TryCreate(o[key], UriKind.Absolute, out var u) || (u.Scheme != "http" && u.Scheme != "https"))
                throw new RegisterException($"--{key} {o[key]} is not an http(s) URL");
        Default("internal-url", null, o["public-url"]);
        Default("admin-url", null, o["internal-url"]);
        return o;
    }

    /// <summary>The few Keystone v3 calls registration makes, with an admin's project-scoped token.</summary>
    private sealed class Keystone(HttpClient http, string url)
    {
        private string _token = "";
        public string Url => url;

        public async Task LoginAsync(string user, string password, string project, string userDomain, string projectDomain)
        {
            using var response = await http.PostAsync(url + "/v3/auth/tokens", Body(Auth(user, password, new JsonObject { ["name"] = userDomain },
                new JsonObject { ["project"] = new JsonObject { ["name"] = project, ["domain"] = new JsonObject { ["name"] = projectDomain } } })));
            if (response.StatusCode == HttpStatusCode.Unauthorized) throw new RegisterException($"Keystone at {url} refused {user}'s credentials for project {project}");
            await Check(response, "POST", "/v3/auth/tokens");
            _token = response.Headers.GetValues("X-Subject-Token").First();
        }

        public static async Task<bool> CanLoginAsync(HttpClient http, string url, string user, string password, string domainId)
        {
            using var response = await http.PostAsync(url + "/v3/auth/tokens", Body(Auth(user, password, new JsonObject { ["id"] = domainId }, null)));
            return response.IsSuccessStatusCode;
        }

        /// <summary>A JSON body with its length: Keystone under uwsgi's HTTP mode does not read chunked request bodies.</summary>
        private static StringContent Body(JsonObject body) => new(body.ToJsonString(), System.Text.Encoding.UTF8, "application/json");

        private static JsonObject Auth(string user, string password, JsonObject domain, JsonObject? scope)
        {
            var auth = new JsonObject
            {
                ["identity"] = new JsonObject
                {
                    ["methods"] = new JsonArray("password"),
                    ["password"] = new JsonObject { ["user"] = new JsonObject { ["name"] = user, ["domain"] = domain, ["password"] = password } },
                },
            };
            if (scope is not null) auth["scope"] = scope;
            return new JsonObject { ["auth"] = auth };
        }

        public async Task<string> DomainIdAsync(string name)
            => (await GetAsync($"/v3/domains?name={Uri.EscapeDataString(name)}"))!["domains"]!.AsArray().FirstOrDefault()?["id"]!.GetValue<string>()
               ?? throw new RegisterException($"Keystone has no domain named {name}");

        /// <summary>
        /// Sends a request; one that changes nothing or the same thing twice (all but POST) is sent again, up to 3 times,
        /// when the connection fails (Keystone under uwsgi resets some).
        /// </summary>
        private async Task<HttpResponseMessage> Send(HttpMethod method, string path, JsonObject? body)
        {
            for (var attempt = 1; ; attempt++)
            {
                using var request = new HttpRequestMessage(method, url + path);
                request.Headers.Add("X-Auth-Token", _token);
                if (body is not null) request.Content = Body(body);
                try { return await http.SendAsync(request); }
                catch (HttpRequestException) when (method != HttpMethod.Post && attempt < 3) { await Task.Delay(200 * attempt); }
            }
        }

        public async Task<JsonNode?> GetAsync(string path, bool allowMissing = false, bool head = false)
        {
            using var response = await Send(head ? HttpMethod.Head : HttpMethod.Get, path, null);
            if (allowMissing && response.StatusCode == HttpStatusCode.NotFound) return null;
            await Check(response, head ? "HEAD" : "GET", path);
            return head ? new JsonObject() : JsonNode.Parse(await response.Content.ReadAsStringAsync());
        }

        public async Task<JsonNode?> SendAsync(HttpMethod method, string path, JsonObject? body)
        {
            using var response = await Send(method, path, body);
            await Check(response, method.Method, path);
            var text = await response.Content.ReadAsStringAsync();
            return string.IsNullOrWhiteSpace(text) ? null : JsonNode.Parse(text);
        }

        private static async Task Check(HttpResponseMessage response, string method, string path)
        {
            if (response.IsSuccessStatusCode) return;
            var text = await response.Content.ReadAsStringAsync();
            string? message = null;
            try { message = JsonNode.Parse(text)?["error"]?["message"]?.GetValue<string>(); } catch (System.Text.Json.JsonException) { }
            throw new RegisterException($"Keystone answered {(int)response.StatusCode} to {method} {path}: {message ?? text}");
        }
    }
}
