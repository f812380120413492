using System.Text.Json.Nodes;
using Magnetar.Cloud.Simulated;
using Magnetar.Identity;

namespace Magnetar.Server.Standalone;

/// <summary>
/// Neutron v2.0 (networks, subnets, extensions; empty lists for ports, routers, security groups, floating IPs) and
/// Glance v2 (images, schemas) over the simulated cloud, read-only.
/// </summary>
public static class NetworkImageEndpoints
{
    public static void MapStandaloneNetwork(this IEndpointRouteBuilder app)
    {
        app.MapGet("/network", (HttpContext h) => Results.Json(new JsonObject
        {
            ["versions"] = new JsonArray(new JsonObject
            {
                ["id"] = "v2.0", ["status"] = "CURRENT",
                ["links"] = new JsonArray(new JsonObject { ["rel"] = "self", ["href"] = $"{StandaloneCloud.BaseUrl(h)}/network/v2.0/" }),
            }),
        }));
        var n = app.MapGroup("/network/v2.0").AddEndpointFilter(async (ctx, next) =>
            ctx.HttpContext.GetAuthContext() is null ? StandaloneCloud.Unauthorized(ctx.HttpContext) : await next(ctx));

        n.MapGet("/", (HttpContext h) => Results.Json(new JsonObject
        {
            ["resources"] = new JsonArray(new[] { ("network", "networks"), ("subnet", "subnets") }.Select(r => (JsonNode?)new JsonObject
            {
                ["name"] = r.Item1, ["collection"] = r.Item2,
                ["links"] = new JsonArray(new JsonObject { ["rel"] = "self", ["href"] = $"{StandaloneCloud.BaseUrl(h)}/network/v2.0/{r.Item2}" }),
            }).ToArray()),
        }));
        n.MapGet("/extensions", () => Results.Json(new JsonObject
        {
            ["extensions"] = new JsonArray(new[]
            {
                ("external-net", "Neutron external network", "Adds external network attribute to network resource."),
                ("network_availability_zone", "Network Availability Zone", "Availability zone support for network."),
                ("availability_zone", "Availability Zone", "The availability zone extension."),
                ("project-id", "project_id field enabled", "Extension that indicates that project_id field is enabled."),
                ("standard-attr-description", "standard-attr-description", "Extension to add descriptions to standard attributes"),
                ("standard-attr-timestamp", "Resource timestamps", "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes."),
            }.Select(e => (JsonNode?)new JsonObject { ["alias"] = e.Item1, ["name"] = e.Item2, ["description"] = e.Item3, ["updated"] = "2016-01-01T10:00:00-00:00", ["links"] = new JsonArray() }).ToArray()),
        }));
        n.MapGet("/extensions/{alias}", (string alias) => NeutronError(404, "ExtensionNotFound", $"Extension with alias {alias} does not exist"));

        n.MapGet("/networks", async (HttpContext h, StandaloneCloudView cloud, CancellationToken ct) =>
            List(h, "networks", (await cloud.NetworksAsync(h.GetAuthContext()!.ProjectId, ct)).Select(Network)));
        n.MapGet("/networks/{id}", async (HttpContext h, string id, StandaloneCloudView cloud, CancellationToken ct) =>
            (await cloud.NetworksAsync(h.GetAuthContext()!.ProjectId, ct)).FirstOrDefault(x => x.Id == id) is { } net
                ? Results.Json(new JsonObject { ["network"] = Network(net) })
                : NeutronError(404, "NetworkNotFound", $"Network {id} could not be found."));
        n.MapGet("/subnets", async (HttpContext h, StandaloneCloudView cloud, CancellationToken ct) =>
            List(h, "subnets", (await cloud.NetworksAsync(h.GetAuthContext()!.ProjectId, ct)).Where(x => x.SubnetId != "").Select(Subnet)));
        n.MapGet("/subnets/{id}", async (HttpContext h, string id, StandaloneCloudView cloud, CancellationToken ct) =>
            (await cloud.NetworksAsync(h.GetAuthContext()!.ProjectId, ct)).FirstOrDefault(x => x.SubnetId == id) is { } net
                ? Results.Json(new JsonObject { ["subnet"] = Subnet(net) })
                : NeutronError(404, "SubnetNotFound", $"Subnet {id} could not be found."));
        // Nothing of these is simulated for Horizon to show: Neutron's answer for a project that has none.
        foreach (var (path, key) in new[] { ("ports", "ports"), ("routers", "routers"), ("security-groups", "security_groups"), ("floatingips", "floatingips"), ("subnetpools", "subnetpools") })
            n.MapGet("/" + path, () => Results.Json(new JsonObject { [key] = new JsonArray() }));
    }

    public static void MapStandaloneImage(this IEndpointRouteBuilder app)
    {
        app.MapGet("/image", (HttpContext h) => Results.Json(new JsonObject
        {
            ["versions"] = new JsonArray(new[] { ("v2.9", "CURRENT"), ("v2.0", "SUPPORTED") }.Select(v => (JsonNode?)new JsonObject
            {
                ["id"] = v.Item1, ["status"] = v.Item2,
                ["links"] = new JsonArray(new JsonObject { ["rel"] = "self", ["href"] = $"{StandaloneCloud.BaseUrl(h)}/image/v2/" }),
            }).ToArray()),
        }, statusCode: 300));
        var g = app.MapGroup("/image/v2").AddEndpointFilter(async (ctx, next) =>
            ctx.HttpContext.GetAuthContext() is null ? StandaloneCloud.Unauthorized(ctx.HttpContext) : await next(ctx));

        g.MapGet("/schemas/image", () => Results.Json(ImageSchema()));
        g.MapGet("/schemas/images", () => Results.Json(new JsonObject
        {
            ["name"] = "images",
            ["properties"] = new JsonObject
            {
                ["images"] = new JsonObject { ["type"] = "array", ["items"] = ImageSchema() },
                ["schema"] = new JsonObject { ["type"] = "string" },
                ["first"] = new JsonObject { ["type"] = "string" },
                ["next"] = new JsonObject { ["type"] = "string" },
            },
            ["links"] = new JsonArray(
                new JsonObject { ["rel"] = "first", ["href"] = "{first}" },
                new JsonObject { ["rel"] = "next", ["href"] = "{next}" },
                new JsonObject { ["rel"] = "describedby", ["href"] = "{schema}" }),
        }));
        g.MapGet("/images", (HttpContext h, StandaloneCloudView cloud) =>
        {
            var q = h.Request.Query;
            var images = cloud.Options.Images.Select(name => Image(name, cloud.CatalogOwner)).ToList();
            IEnumerable<JsonObject> list = images;
            // Glance's filters: every simulated image is public, active and not hidden.
            if (q.TryGetValue("visibility", out var vis) && !string.IsNullOrEmpty(vis) && vis.ToString() is not ("public" or "all")) list = [];
            if (q.TryGetValue("name", out var name) && !string.IsNullOrEmpty(name)) list = list.Where(i => (string?)i["name"] == name.ToString());
            if (q.TryGetValue("status", out var st) && !string.IsNullOrEmpty(st)) list = list.Where(i => (string?)i["status"] == st.ToString());
            if (q.TryGetValue("os_hidden", out var hidden) && hidden.ToString().Equals("true", StringComparison.OrdinalIgnoreCase)) list = [];
            if (q.TryGetValue("id", out var idf) && !string.IsNullOrEmpty(idf))
            {
                var ids = idf.ToString().StartsWith("in:", StringComparison.Ordinal) ? idf.ToString()[3..].Split(',') : [idf.ToString()];
                list = list.Where(i => ids.Contains((string?)i["id"]));
            }
            var sortKey = q["sort_key"].FirstOrDefault() ?? "created_at";
            var desc = !string.Equals(q["sort_dir"].FirstOrDefault() ?? "desc", "asc", StringComparison.OrdinalIgnoreCase);
            Func<JsonObject, string> key = sortKey == "name" ? i => (string?)i["name"] ?? "" : i => (string?)i["id"] ?? "";
            var sorted = (desc ? list.OrderByDescending(key, StringComparer.Ordinal) : list.OrderBy(key, StringComparer.Ordinal)).ToList();
            if (q.TryGetValue("marker", out var marker) && !string.IsNullOrEmpty(marker))
            {
                var at = sorted.FindIndex(i => (string?)i["id"] == marker.ToString());
                if (at < 0) return Results.Text($"400 Bad Request\n\nmarker {marker} could not be found.\n\n", statusCode: 400);
                sorted = sorted.Skip(at + 1).ToList();
            }
            var body = new JsonObject { ["schema"] = "/v2/schemas/images", ["first"] = "/v2/images" };
            var limit = int.TryParse(q["limit"], out var l) && l >= 0 ? l : 25;
            if (sorted.Count > limit)
            {
                sorted = sorted.Take(limit).ToList();
                var rest = string.Join("&", q.Where(p => p.Key is not ("marker" or "limit")).SelectMany(p => p.Value.Select(v => $"{Uri.EscapeDataString(p.Key)}={Uri.EscapeDataString(v ?? "")}")));
                body["next"] = $"/v2/images?{(rest.Length > 0 ? rest + "&" : "")}limit={limit}&marker={sorted[^1]["id"]}";
            }
            body["images"] = new JsonArray(sorted.Select(i => (JsonNode?)i).ToArray());
            return Results.Json(body);
        });
        g.MapGet("/images/{id}", (string id, StandaloneCloudView cloud) =>
            SimulatedCatalog.Resolve(cloud.Options.Images, SimulatedCatalog.Image, id) is { } name && SimulatedCatalog.IdOf(SimulatedCatalog.Image, name) == id
                ? Results.Json(Image(name, cloud.CatalogOwner))
                : Results.Text($"404 Not Found\n\nNo image found with ID {id}\n\n", statusCode: 404));
    }

    /// <summary>Neutron's error body.</summary>
    internal static IResult NeutronError(int code, string type, string message)
        => Results.Json(new JsonObject { ["NeutronError"] = new JsonObject { ["type"] = type, ["message"] = message, ["detail"] = "" } }, statusCode: code);

    /// <summary>
    /// A Neutron list: any attribute is a filter (repeated values: any of them; booleans compared case-insensitively),
    /// <c>fields</c> selects attributes, <c>sort_key</c>/<c>sort_dir</c>, <c>limit</c> and <c>marker</c> page it.
    /// </summary>
    private static IResult List(HttpContext h, string collection, IEnumerable<JsonObject> items)
    {
        var q = h.Request.Query;
        var reserved = new HashSet<string> { "fields", "limit", "marker", "sort_key", "sort_dir", "page_reverse", "retrieve_all" };
        foreach (var (key, values) in q)
        {
            if (reserved.Contains(key)) continue;
            var wanted = values.Select(v => v ?? "").ToList();
            items = items.Where(i => i[key] is JsonNode node && wanted.Any(w => Matches(node, w))).ToList();
        }
        var list = items.ToList();
        var sortKey = q["sort_key"].FirstOrDefault() ?? "id";
        var desc = string.Equals(q["sort_dir"].FirstOrDefault(), "desc", StringComparison.OrdinalIgnoreCase);
        list = (desc ? list.OrderByDescending(i => i[sortKey]?.ToString() ?? "", StringComparer.Ordinal) : list.OrderBy(i => i[sortKey]?.ToString() ?? "", StringComparer.Ordinal)).ToList();
        if (q.TryGetValue("marker", out var marker) && !string.IsNullOrEmpty(marker))
        {
            var at = list.FindIndex(i => (string?)i["id"] == marker.ToString());
            list = at < 0 ? [] : list.Skip(at + 1).ToList();
        }
        JsonArray? links = null;
        if (int.TryParse(q["limit"], out var limit) && limit > 0 && list.Count > limit)
        {
            list = list.Take(limit).ToList();
            var rest = string.Join("&", q.Where(p => p.Key is not ("marker" or "limit")).SelectMany(p => p.Value.Select(v => $"{Uri.EscapeDataString(p.Key)}={Uri.EscapeDataString(v ?? "")}")));
            links = new JsonArray(new JsonObject
            {
                ["rel"] = "next",
                ["href"] = $"{StandaloneCloud.BaseUrl(h)}/network/v2.0/{collection}?{(rest.Length > 0 ? rest + "&" : "")}limit={limit}&marker={list[^1]["id"]}",
            });
        }
        var fields = q["fields"].Where(f => !string.IsNullOrEmpty(f)).Select(f => f!).ToList();
        var body = new JsonObject
        {
            [collection] = new JsonArray(list.Select(i =>
            {
                if (fields.Count == 0) return (JsonNode?)i;
                var o = new JsonObject();
                foreach (var f in fields) if (i.TryGetPropertyValue(f, out var v)) o[f] = v?.DeepClone();
                return o;
            }).ToArray()),
        };
        if (links is not null) body[collection + "_links"] = links;
        return Results.Json(body);
    }

    private static bool Matches(JsonNode node, string wanted) => node switch
    {
        JsonValue v when v.TryGetValue<bool>(out var b) => string.Equals(b ? "true" : "false", wanted, StringComparison.OrdinalIgnoreCase),
        JsonValue v => v.ToString() == wanted,
        JsonArray a => a.Any(x => x?.ToString() == wanted),
        _ => false,
    };

    private static JsonObject Network(SimNetwork n) => new()
    {
        ["id"] = n.Id, ["name"] = n.Name, ["tenant_id"] = n.ProjectId, ["project_id"] = n.ProjectId,
        ["status"] = n.Status, ["admin_state_up"] = true, ["shared"] = false, ["router:external"] = n.External,
        ["subnets"] = n.SubnetId == "" ? new JsonArray() : new JsonArray(n.SubnetId),
        ["mtu"] = 1450, ["availability_zones"] = new JsonArray("nova"), ["availability_zone_hints"] = new JsonArray(),
        ["ipv4_address_scope"] = null, ["ipv6_address_scope"] = null, ["port_security_enabled"] = true, ["l2_adjacency"] = true,
        ["description"] = n.External ? "External network of the simulated cloud" : "", ["tags"] = new JsonArray(),
        ["created_at"] = StandaloneCloud.Time(n.CreatedAt), ["updated_at"] = StandaloneCloud.Time(n.CreatedAt), ["revision_number"] = 1,
    };

    private static JsonObject Subnet(SimNetwork n)
    {
        var prefix = n.Cidr[..n.Cidr.LastIndexOf('.')];
        return new JsonObject
        {
            ["id"] = n.SubnetId, ["name"] = n.SubnetName, ["network_id"] = n.Id, ["tenant_id"] = n.ProjectId, ["project_id"] = n.ProjectId,
            ["ip_version"] = 4, ["cidr"] = n.Cidr, ["gateway_ip"] = n.Gateway, ["enable_dhcp"] = !n.External,
            ["allocation_pools"] = new JsonArray(new JsonObject { ["start"] = n.External ? n.Gateway[..n.Gateway.LastIndexOf('.')] + ".2" : prefix + ".2", ["end"] = n.External ? n.Cidr.Split('.')[0] + "." + n.Cidr.Split('.')[1] + ".255.254" : prefix + ".254" }),
            ["dns_nameservers"] = new JsonArray(), ["host_routes"] = new JsonArray(), ["service_types"] = new JsonArray(),
            ["ipv6_ra_mode"] = null, ["ipv6_address_mode"] = null, ["subnetpool_id"] = null, ["description"] = "", ["tags"] = new JsonArray(),
            ["created_at"] = StandaloneCloud.Time(n.CreatedAt), ["updated_at"] = StandaloneCloud.Time(n.CreatedAt), ["revision_number"] = 0,
        };
    }

    private static JsonObject Image(string name, string owner)
    {
        var id = SimulatedCatalog.IdOf(SimulatedCatalog.Image, name);
        var created = StandaloneCloud.Time(StandaloneCloud.CatalogCreated);
        return new JsonObject
        {
            ["id"] = id, ["name"] = name, ["status"] = "active", ["visibility"] = "public", ["protected"] = false, ["os_hidden"] = false,
            ["checksum"] = null, ["os_hash_algo"] = null, ["os_hash_value"] = null, ["owner"] = owner,
            ["size"] = null, ["virtual_size"] = null, ["min_ram"] = 0, ["min_disk"] = 0,
            ["container_format"] = "bare", ["disk_format"] = "qcow2", ["tags"] = new JsonArray(),
            ["os_distro"] = SimulatedCatalog.OsDistro(name),
            ["created_at"] = created, ["updated_at"] = created,
            ["self"] = $"/v2/images/{id}", ["file"] = $"/v2/images/{id}/file", ["schema"] = "/v2/schemas/image",
        };
    }

    /// <summary>The part of Glance's image schema these images use; other properties are strings, as Glance's own.</summary>
    private static JsonObject ImageSchema()
    {
        JsonObject T(params string[] types) => new() { ["type"] = types.Length == 1 ? types[0] : new JsonArray(types.Select(t => (JsonNode?)t).ToArray()) };
        return new JsonObject
        {
            ["name"] = "image",
            ["properties"] = new JsonObject
            {
                ["id"] = T("string"), ["name"] = T("null", "string"), ["status"] = T("string"), ["visibility"] = T("string"),
                ["protected"] = T("boolean"), ["os_hidden"] = T("boolean"), ["checksum"] = T("null", "string"),
                ["os_hash_algo"] = T("null", "string"), ["os_hash_value"] = T("null", "string"), ["owner"] = T("null", "string"),
                ["size"] = T("null", "integer"), ["virtual_size"] = T("null", "integer"), ["min_ram"] = T("integer"), ["min_disk"] = T("integer"),
                ["container_format"] = T("null", "string"), ["disk_format"] = T("null", "string"),
                ["tags"] = new JsonObject { ["type"] = "array", ["items"] = T("string") },
                ["created_at"] = T("string"), ["updated_at"] = T("string"),
                ["self"] = T("string"), ["file"] = T("string"), ["schema"] = T("string"),
                ["direct_url"] = T("string"), ["locations"] = new JsonObject { ["type"] = "array" },
                ["os_distro"] = T("string"),
            },
            ["additionalProperties"] = T("string"),
            ["links"] = new JsonArray(
                new JsonObject { ["rel"] = "self", ["href"] = "{self}" },
                new JsonObject { ["rel"] = "enclosure", ["href"] = "{file}" },
                new JsonObject { ["rel"] = "describedby", ["href"] = "{schema}" }),
        };
    }
}
