using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Magnetar.Cloud.Simulated;
using Magnetar.Identity;

namespace Magnetar.Server.Standalone;

/// <summary>
/// Nova v2.1 (read-only, plus keypairs) over the simulated cloud: flavors, availability zones, limits, quotas, usage,
/// the project's servers and the user's keypairs, at microversions 2.1 to <see cref="MaxVersion"/> (Train).
/// </summary>
public static class ComputeEndpoints
{
    public const string MinVersion = "2.1";
    /// <summary>Nova Train's maximum: python-novaclient 18 (Debian bookworm) negotiates down to it; the shapes below follow it.</summary>
    public const string MaxVersion = "2.79";
    private static readonly Version Max = new(2, 79), Min = new(2, 1);

    public static void MapStandaloneCompute(this IEndpointRouteBuilder app)
    {
        app.MapGet("/compute", (HttpContext h) => Results.Json(new JsonObject { ["versions"] = new JsonArray(VersionDoc(h)) }));
        // (routing ignores a trailing slash: /compute/v2.1/ is this too)
        app.MapGet("/compute/v2.1", (HttpContext h) => Results.Json(new JsonObject { ["version"] = VersionDoc(h) }));

        var v = app.MapGroup("/compute/v2.1").AddEndpointFilter(async (ctx, next) =>
        {
            var h = ctx.HttpContext;
            if (h.GetAuthContext() is null) return StandaloneCloud.Unauthorized(h);
            var requested = Requested(h);
            if (requested is null) return Error(400, "badRequest", "Invalid OpenStack-API-Version / X-OpenStack-Nova-API-Version header.");
            if (requested < Min || requested > Max)
                return Error(406, "notAcceptable", $"Version {requested.Major}.{requested.Minor} is not supported by the API. Minimum is {MinVersion} and maximum is {MaxVersion}.");
            h.Items["nova-mv"] = requested;
            var s = $"{requested.Major}.{requested.Minor}";
            h.Response.Headers["OpenStack-API-Version"] = "compute " + s;
            h.Response.Headers["X-OpenStack-Nova-API-Version"] = s;
            h.Response.Headers["Vary"] = "OpenStack-API-Version, X-OpenStack-Nova-API-Version";
            return await next(ctx);
        });

        // ---- flavors
        v.MapGet("/flavors", (HttpContext h, StandaloneCloudView cloud) => Flavors(h, cloud, detail: false));
        v.MapGet("/flavors/detail", (HttpContext h, StandaloneCloudView cloud) => Flavors(h, cloud, detail: true));
        v.MapGet("/flavors/{id}", (HttpContext h, string id, StandaloneCloudView cloud) =>
            SimulatedCatalog.Resolve(cloud.Options.Flavors, SimulatedCatalog.Flavor, id) is { } name
                ? Results.Json(new JsonObject { ["flavor"] = Flavor(h, name, detail: true) })
                : Error(404, "itemNotFound", $"Flavor {id} could not be found."));
        v.MapGet("/flavors/{id}/os-extra_specs", (string id, StandaloneCloudView cloud) =>
            SimulatedCatalog.Resolve(cloud.Options.Flavors, SimulatedCatalog.Flavor, id) is not null
                ? Results.Json(new JsonObject { ["extra_specs"] = new JsonObject() })
                : Error(404, "itemNotFound", $"Flavor {id} could not be found."));
        v.MapGet("/flavors/{id}/os-flavor-access", (string id) =>
            Error(404, "itemNotFound", "Access list not available for public flavors."));

        // ---- availability zones, limits, quotas, usage
        var zones = (HttpContext h) => Results.Json(new JsonObject
        {
            ["availabilityZoneInfo"] = new JsonArray(new JsonObject { ["zoneName"] = "nova", ["zoneState"] = new JsonObject { ["available"] = true }, ["hosts"] = null }),
        });
        v.MapGet("/os-availability-zone", zones);
        v.MapGet("/os-availability-zone/detail", zones);
        v.MapGet("/limits", async (HttpContext h, StandaloneCloudView cloud, CancellationToken ct) =>
        {
            var servers = await cloud.ServersAsync(h.GetAuthContext()!.ProjectId, ct);
            var cores = servers.Sum(s => SimulatedCatalog.FlavorSize(s.Flavor ?? "").Vcpus);
            var ram = servers.Sum(s => SimulatedCatalog.FlavorSize(s.Flavor ?? "").RamMb);
            // The simulated cloud enforces no quota: -1 (unlimited), as Nova reports an unlimited quota.
            return Results.Json(new JsonObject
            {
                ["limits"] = new JsonObject
                {
                    ["rate"] = new JsonArray(),
                    ["absolute"] = new JsonObject
                    {
                        ["maxServerMeta"] = 128, ["maxPersonality"] = 5, ["maxPersonalitySize"] = 10240, ["maxImageMeta"] = 128,
                        ["maxTotalKeypairs"] = -1, ["maxServerGroups"] = -1, ["maxServerGroupMembers"] = -1,
                        ["maxTotalCores"] = -1, ["maxTotalInstances"] = -1, ["maxTotalRAMSize"] = -1,
                        ["maxSecurityGroups"] = -1, ["maxSecurityGroupRules"] = -1, ["maxTotalFloatingIps"] = -1,
                        ["totalCoresUsed"] = cores, ["totalRAMUsed"] = ram, ["totalInstancesUsed"] = servers.Count,
                        ["totalServerGroupsUsed"] = 0, ["totalSecurityGroupsUsed"] = 0, ["totalFloatingIpsUsed"] = 0,
                    },
                },
            });
        });
        v.MapGet("/os-quota-sets/{project}", (HttpContext h, string project) => QuotaSet(h, project));
        v.MapGet("/os-quota-sets/{project}/detail", (HttpContext h, string project) => QuotaSet(h, project));
        v.MapGet("/os-quota-sets/{project}/defaults", (HttpContext h, string project) => QuotaSet(h, project));
        // No usage is accounted for simulated servers: Nova's answer for a project without usage.
        v.MapGet("/os-simple-tenant-usage", () => Results.Json(new JsonObject { ["tenant_usages"] = new JsonArray() }));
        v.MapGet("/os-simple-tenant-usage/{project}", () => Results.Json(new JsonObject { ["tenant_usage"] = new JsonObject() }));

        // ---- servers (the caller's project; all projects for an admin asking all_tenants)
        v.MapGet("/servers", (HttpContext h, StandaloneCloudView cloud, CancellationToken ct) => Servers(h, cloud, detail: false, ct));
        v.MapGet("/servers/detail", (HttpContext h, StandaloneCloudView cloud, CancellationToken ct) => Servers(h, cloud, detail: true, ct));
        v.MapGet("/servers/{id}", async (HttpContext h, string id, StandaloneCloudView cloud, CancellationToken ct) =>
        {
            var caller = h.GetAuthContext()!;
            var s = (await cloud.ServersAsync(caller.IsAdmin ? null : caller.ProjectId, ct)).FirstOrDefault(x => x.Id == id);
            return s is null ? Error(404, "itemNotFound", $"Instance {id} could not be found.") : Results.Json(new JsonObject { ["server"] = Server(h, s, cloud) });
        });

        // ---- keypairs (the caller's own)
        v.MapGet("/os-keypairs", (HttpContext h, KeypairStore store) =>
        {
            var mv = Mv(h);
            var all = store.List(h.GetAuthContext()!.UserId).AsEnumerable();
            var q = h.Request.Query;
            if (mv >= new Version(2, 35))
            {
                if (q.TryGetValue("marker", out var marker) && !string.IsNullOrEmpty(marker))
                {
                    var list = all.ToList();
                    var at = list.FindIndex(k => k.Name == marker.ToString());
                    if (at < 0) return Error(400, "badRequest", $"Marker {marker} could not be found.");
                    all = list.Skip(at + 1);
                }
                if (int.TryParse(q["limit"], out var limit) && limit >= 0) all = all.Take(limit);
            }
            return Results.Json(new JsonObject
            {
                ["keypairs"] = new JsonArray(all.Select(k => (JsonNode?)new JsonObject { ["keypair"] = Keypair(h, k, listing: true) }).ToArray()),
            });
        });
        v.MapGet("/os-keypairs/{name}", (HttpContext h, string name, KeypairStore store) =>
            store.Find(h.GetAuthContext()!.UserId, name) is { } k
                ? Results.Json(new JsonObject { ["keypair"] = Keypair(h, k, listing: false) })
                : Error(404, "itemNotFound", $"Keypair {name} not found for user {h.GetAuthContext()!.UserId}"));
        v.MapDelete("/os-keypairs/{name}", (HttpContext h, string name, KeypairStore store) =>
        {
            if (!store.Remove(h.GetAuthContext()!.UserId, name)) return Error(404, "itemNotFound", $"Keypair {name} not found for user {h.GetAuthContext()!.UserId}");
            return Mv(h) >= new Version(2, 2) ? Results.NoContent() : Results.StatusCode(202);
        });
        v.MapPost("/os-keypairs", async (HttpContext h, KeypairStore store) =>
        {
            var caller = h.GetAuthContext()!;
            if (!caller.IsMember) return Error(403, "forbidden", "Policy doesn't allow os_compute_api:os-keypairs:create to be performed.");
            JsonNode? body;
            try { body = await JsonNode.ParseAsync(h.Request.Body); }
            catch (Exception e) when (e is JsonException or ArgumentException) { return Error(400, "badRequest", "Malformed request body"); }
            if (body?["keypair"] is not JsonObject kp || kp["name"] is not JsonValue nv || !nv.TryGetValue<string>(out var name))
                return Error(400, "badRequest", "Invalid input for field/attribute keypair. Value: None. 'keypair' is a required property");
            if (!KeypairStore.ValidName(name))
                return Error(400, "badRequest", "Keypair data is invalid: Keypair name contains unsafe characters");
            var type = kp["type"] is JsonValue tv && tv.TryGetValue<string>(out var t) ? t : "ssh";
            if (type is not "ssh") return Error(400, "badRequest", $"Keypair data is invalid: only ssh keypairs are supported here, not '{type}'");
            string publicKey, fingerprint;
            string? privateKey = null;
            if (kp["public_key"] is JsonValue pv && pv.TryGetValue<string>(out var given))
            {
                if (KeypairStore.ImportFingerprint(given) is not { } fp) return Error(400, "badRequest", "Keypair data is invalid: failed to generate fingerprint");
                publicKey = given.Trim();
                fingerprint = fp;
            }
            else (publicKey, privateKey, fingerprint) = KeypairStore.Generate();
            var stored = new StoredKeypair { Name = name, Type = type, PublicKey = publicKey, Fingerprint = fingerprint };
            if (!store.TryAdd(caller.UserId, stored)) return Error(409, "conflictingRequest", $"Key pair '{name}' already exists.");
            var o = new JsonObject
            {
                ["name"] = name, ["public_key"] = publicKey, ["fingerprint"] = fingerprint, ["user_id"] = caller.UserId,
            };
            if (privateKey is not null) o["private_key"] = privateKey;
            if (Mv(h) >= new Version(2, 2)) o["type"] = type;
            return Results.Json(new JsonObject { ["keypair"] = o }, statusCode: Mv(h) >= new Version(2, 2) ? 201 : 200);
        });
    }

    private static JsonObject VersionDoc(HttpContext h) => new()
    {
        ["id"] = "v2.1", ["status"] = "CURRENT", ["version"] = MaxVersion, ["min_version"] = MinVersion, ["updated"] = "2013-07-23T11:33:21Z",
        ["links"] = new JsonArray(new JsonObject { ["rel"] = "self", ["href"] = $"{StandaloneCloud.BaseUrl(h)}/compute/v2.1/" }),
        ["media-types"] = new JsonArray(new JsonObject { ["base"] = "application/json", ["type"] = "application/vnd.openstack.compute+json;version=2.1" }),
    };

    /// <summary>The microversion asked for: OpenStack-API-Version (compute X) or X-OpenStack-Nova-API-Version; 2.1 when neither.</summary>
    private static Version? Requested(HttpContext h)
    {
        string? value = null;
        foreach (var header in h.Request.Headers["OpenStack-API-Version"].SelectMany(x => (x ?? "").Split(',')))
        {
            var parts = header.Trim().Split(' ', 2, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 2 && parts[0].Equals("compute", StringComparison.OrdinalIgnoreCase)) value = parts[1];
        }
        value ??= h.Request.Headers["X-OpenStack-Nova-API-Version"].FirstOrDefault();
        if (string.IsNullOrWhiteSpace(value)) return Min;
        if (value.Trim().Equals("latest", StringComparison.OrdinalIgnoreCase)) return Max;
        var m = Regex.Match(value.Trim(), @"^(\d+)\.(\d+)$");
        return m.Success ? new Version(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture)) : null;
    }

    private static Version Mv(HttpContext h) => h.Items["nova-mv"] as Version ?? Min;

    /// <summary>Nova's fault body: {"itemNotFound": {"code": 404, "message": ...}}.</summary>
    public static IResult Error(int code, string kind, string message)
        => Results.Json(new JsonObject { [kind] = new JsonObject { ["code"] = code, ["message"] = message } }, statusCode: code);

    private static JsonArray Links(HttpContext h, string path)
    {
        var b = StandaloneCloud.BaseUrl(h);
        return new JsonArray(
            new JsonObject { ["rel"] = "self", ["href"] = $"{b}/compute/v2.1/{path}" },
            new JsonObject { ["rel"] = "bookmark", ["href"] = $"{b}/compute/{path}" });
    }

    private static IResult Flavors(HttpContext h, StandaloneCloudView cloud, bool detail)
    {
        var q = h.Request.Query;
        var names = cloud.Options.Flavors.AsEnumerable();
        // is_public: None/all lists every flavor; the simulated flavors are all public, so is_public=false lists none.
        if (q.TryGetValue("is_public", out var isPublic) && isPublic.ToString().Equals("false", StringComparison.OrdinalIgnoreCase)) names = [];
        if (int.TryParse(q["minRam"], out var minRam)) names = names.Where(n => SimulatedCatalog.FlavorSize(n).RamMb >= minRam);
        if (int.TryParse(q["minDisk"], out var minDisk)) names = names.Where(n => SimulatedCatalog.FlavorSize(n).DiskGb >= minDisk);
        var list = names.ToList();
        if (q.TryGetValue("marker", out var marker) && !string.IsNullOrEmpty(marker))
        {
            var at = list.FindIndex(n => SimulatedCatalog.IdOf(SimulatedCatalog.Flavor, n) == marker.ToString());
            if (at < 0) return Error(400, "badRequest", $"marker [{marker}] not found");
            list = list.Skip(at + 1).ToList();
        }
        if (int.TryParse(q["limit"], out var limit) && limit >= 0) list = list.Take(limit).ToList();
        return Results.Json(new JsonObject { ["flavors"] = new JsonArray(list.Select(n => (JsonNode?)Flavor(h, n, detail)).ToArray()) });
    }

    private static JsonObject Flavor(HttpContext h, string name, bool detail)
    {
        var mv = Mv(h);
        var id = SimulatedCatalog.IdOf(SimulatedCatalog.Flavor, name);
        var o = new JsonObject { ["id"] = id, ["name"] = name, ["links"] = Links(h, $"flavors/{id}") };
        if (mv >= new Version(2, 55)) o["description"] = null;
        if (!detail) return o;
        var (vcpus, ram, disk) = SimulatedCatalog.FlavorSize(name);
        o["ram"] = ram;
        o["disk"] = disk;
        o["vcpus"] = vcpus;
        o["swap"] = mv >= new Version(2, 75) ? 0 : "";
        o["OS-FLV-EXT-DATA:ephemeral"] = 0;
        o["OS-FLV-DISABLED:disabled"] = false;
        o["os-flavor-access:is_public"] = true;
        o["rxtx_factor"] = 1.0;
        if (mv >= new Version(2, 61)) o["extra_specs"] = new JsonObject();
        return o;
    }

    private static IResult QuotaSet(HttpContext h, string project)
    {
        var caller = h.GetAuthContext()!;
        if (project != caller.ProjectId && !caller.IsAdmin) return Error(403, "forbidden", "Policy doesn't allow os_compute_api:os-quota-sets:show to be performed.");
        var o = new JsonObject { ["id"] = project };
        foreach (var k in new[] { "instances", "cores", "ram", "key_pairs", "server_groups", "server_group_members" }) o[k] = -1;
        o["metadata_items"] = 128;
        if (Mv(h) < new Version(2, 57)) { o["injected_files"] = 5; o["injected_file_content_bytes"] = 10240; o["injected_file_path_bytes"] = 255; }
        return Results.Json(new JsonObject { ["quota_set"] = o });
    }

    private static async Task<IResult> Servers(HttpContext h, StandaloneCloudView cloud, bool detail, CancellationToken ct)
    {
        var caller = h.GetAuthContext()!;
        var q = h.Request.Query;
        var allTenants = caller.IsAdmin && q.TryGetValue("all_tenants", out var at) && at.ToString() is not ("0" or "false" or "False");
        var servers = (await cloud.ServersAsync(allTenants ? null : caller.ProjectId, ct)).AsEnumerable();
        // Nova's filters: name is a regular expression searched in the name; the rest exact.
        if (q.TryGetValue("name", out var name) && !string.IsNullOrEmpty(name))
        {
            Regex? re = null;
            try { re = new Regex(name.ToString(), RegexOptions.None, TimeSpan.FromMilliseconds(100)); }
            catch (ArgumentException) { }
            var n = name.ToString();
            servers = servers.Where(s => re is not null ? re.IsMatch(s.Name) : s.Name.Contains(n, StringComparison.Ordinal));
        }
        if (q.TryGetValue("status", out var status) && !string.IsNullOrEmpty(status)) servers = servers.Where(s => s.Status.Equals(status.ToString(), StringComparison.OrdinalIgnoreCase));
        if (allTenants && q.TryGetValue("project_id", out var pid) && !string.IsNullOrEmpty(pid)) servers = servers.Where(s => s.ProjectId == pid.ToString());
        if (q.TryGetValue("flavor", out var fl) && !string.IsNullOrEmpty(fl)) servers = servers.Where(s => s.Flavor is not null && SimulatedCatalog.IdOf(SimulatedCatalog.Flavor, s.Flavor) == fl.ToString());
        if (q.TryGetValue("image", out var im) && !string.IsNullOrEmpty(im)) servers = servers.Where(s => s.Image is not null && SimulatedCatalog.IdOf(SimulatedCatalog.Image, s.Image) == im.ToString());
        // newest first, as Nova sorts by created_at desc
        var list = servers.OrderByDescending(s => s.CreatedAt).ThenByDescending(s => s.Id, StringComparer.Ordinal).ToList();
        if (q.TryGetValue("marker", out var marker) && !string.IsNullOrEmpty(marker))
        {
            var idx = list.FindIndex(s => s.Id == marker.ToString());
            if (idx < 0) return Error(400, "badRequest", $"marker [{marker}] not found");
            list = list.Skip(idx + 1).ToList();
        }
        JsonNode? next = null;
        if (int.TryParse(q["limit"], out var limit) && limit >= 0 && list.Count > limit)
        {
            list = list.Take(limit).ToList();
            next = new JsonArray(new JsonObject
            {
                ["rel"] = "next",
                ["href"] = $"{StandaloneCloud.BaseUrl(h)}/compute/v2.1/servers{(detail ? "/detail" : "")}?limit={limit}&marker={list[^1].Id}",
            });
        }
        var body = new JsonObject
        {
            ["servers"] = new JsonArray(list.Select(s => (JsonNode?)(detail ? Server(h, s, cloud) : new JsonObject
            {
                ["id"] = s.Id, ["name"] = s.Name, ["links"] = Links(h, $"servers/{s.Id}"),
            })).ToArray()),
        };
        if (next is not null) body["servers_links"] = next;
        return Results.Json(body);
    }

    private static JsonObject Server(HttpContext h, SimServer s, StandaloneCloudView cloud)
    {
        var mv = Mv(h);
        var network = $"{s.ClusterName}-net";
        var addresses = new JsonArray();
        var mac = "fa:16:3e:" + string.Join(':', Convert.FromHexString(s.Id.Replace("-", "")[..6]).Select(b => b.ToString("x2")));
        if (s.Address is not null) addresses.Add(new JsonObject { ["version"] = 4, ["addr"] = s.Address, ["OS-EXT-IPS:type"] = "fixed", ["OS-EXT-IPS-MAC:mac_addr"] = mac });
        if (s.FloatingAddress is not null) addresses.Add(new JsonObject { ["version"] = 4, ["addr"] = s.FloatingAddress, ["OS-EXT-IPS:type"] = "floating", ["OS-EXT-IPS-MAC:mac_addr"] = mac });
        JsonNode flavor;
        if (mv >= new Version(2, 47))
        {
            var (vcpus, ram, disk) = SimulatedCatalog.FlavorSize(s.Flavor ?? "");
            flavor = new JsonObject
            {
                ["vcpus"] = vcpus, ["ram"] = ram, ["disk"] = disk, ["ephemeral"] = 0, ["swap"] = 0,
                ["original_name"] = s.Flavor, ["extra_specs"] = new JsonObject(),
            };
        }
        else
        {
            var fid = SimulatedCatalog.IdOf(SimulatedCatalog.Flavor, s.Flavor ?? "");
            flavor = new JsonObject { ["id"] = fid, ["links"] = new JsonArray(new JsonObject { ["rel"] = "bookmark", ["href"] = $"{StandaloneCloud.BaseUrl(h)}/compute/flavors/{fid}" }) };
        }
        var imageId = s.Image is null ? null : SimulatedCatalog.IdOf(SimulatedCatalog.Image, s.Image);
        var (vmState, power, task) = s.Status switch
        {
            "ACTIVE" => ("active", 1, (string?)null),
            "BUILD" => ("building", 0, "spawning"),
            "ERROR" => ("error", 0, null),
            _ => ("active", 1, "deleting"),
        };
        var o = new JsonObject
        {
            ["id"] = s.Id,
            ["name"] = s.Name,
            ["status"] = s.Status,
            ["tenant_id"] = s.ProjectId,
            ["user_id"] = s.UserId,
            ["metadata"] = new JsonObject
            {
                // what this server is in Magnetar: the simulated cloud's own name for it, its cluster and nodegroup
                ["magnetar_server_name"] = s.SimulatedName, ["magnum_cluster"] = s.ClusterUuid, ["magnum_nodegroup"] = s.NodeGroup,
            },
            ["hostId"] = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(s.ProjectId + "simulated")))[..56],
            ["image"] = imageId is null ? "" : new JsonObject { ["id"] = imageId, ["links"] = new JsonArray(new JsonObject { ["rel"] = "bookmark", ["href"] = $"{StandaloneCloud.BaseUrl(h)}/compute/images/{imageId}" }) },
            ["flavor"] = flavor,
            ["created"] = StandaloneCloud.Time(s.CreatedAt),
            ["updated"] = StandaloneCloud.Time(s.UpdatedAt),
            ["addresses"] = addresses.Count == 0 ? new JsonObject() : new JsonObject { [network] = addresses },
            ["accessIPv4"] = "",
            ["accessIPv6"] = "",
            ["links"] = Links(h, $"servers/{s.Id}"),
            ["OS-DCF:diskConfig"] = "MANUAL",
            ["progress"] = 0,
            ["OS-EXT-AZ:availability_zone"] = "nova",
            ["config_drive"] = "",
            ["key_name"] = s.Keypair,
            ["OS-SRV-USG:launched_at"] = s.Status == "ACTIVE" ? StandaloneCloud.Time(s.UpdatedAt) : null,
            ["OS-SRV-USG:terminated_at"] = null,
            ["security_groups"] = new JsonArray(new JsonObject { ["name"] = $"{s.ClusterName}-secgroup-{(s.Role == "master" ? "master" : "worker")}" }),
            ["OS-EXT-STS:task_state"] = task,
            ["OS-EXT-STS:vm_state"] = vmState,
            ["OS-EXT-STS:power_state"] = power,
            ["os-extended-volumes:volumes_attached"] = new JsonArray(),
        };
        if (mv >= new Version(2, 9)) o["locked"] = false;
        if (mv >= new Version(2, 19)) o["description"] = null;
        if (mv >= new Version(2, 26)) o["tags"] = new JsonArray();
        if (mv >= new Version(2, 63)) o["trusted_image_certificates"] = null;
        if (mv >= new Version(2, 73)) o["locked_reason"] = null;
        return o;
    }

    private static JsonObject Keypair(HttpContext h, StoredKeypair k, bool listing)
    {
        var mv = Mv(h);
        var o = new JsonObject { ["name"] = k.Name, ["public_key"] = k.PublicKey, ["fingerprint"] = k.Fingerprint };
        if (mv >= new Version(2, 2)) o["type"] = k.Type;
        if (listing) return o;
        o["user_id"] = h.GetAuthContext()!.UserId;
        o["deleted"] = false;
        o["created_at"] = k.CreatedAt.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff", CultureInfo.InvariantCulture);
        o["updated_at"] = null;
        o["deleted_at"] = null;
        o["id"] = k.Id;
        return o;
    }
}
