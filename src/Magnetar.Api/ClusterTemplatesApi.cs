using System.Text.Json.Nodes;
using Magnetar.Domain;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;

namespace Magnetar.Api;

/// <summary>/v1/clustertemplates (and the legacy-compatible name lookup).</summary>
public static class ClusterTemplatesApi
{
    private static readonly Dictionary<string, string> SortKeys = new()
    {
        ["id"] = "Id", ["uuid"] = "Uuid", ["name"] = "Name", ["coe"] = "Coe", ["image_id"] = "ImageId",
        ["created_at"] = "CreatedAt", ["updated_at"] = "UpdatedAt", ["project_id"] = "ProjectId",
    };

    public static void Map(RouteGroupBuilder v1)
    {
        var g = v1.MapGroup("/clustertemplates");
        g.MapGet("", (ApiContext ctx, CancellationToken ct) => List(ctx, "clustertemplates", ct)).Magnum("get_all");
        g.MapGet("/detail", (ApiContext ctx, CancellationToken ct) => List(ctx, "clustertemplates/detail", ct)).Magnum("detail");
        g.MapGet("/{ident}", Show).Magnum("get_one");
        g.MapPost("", Create).Magnum("post");
        g.MapPatch("/{ident}", Update).Magnum("patch");
        g.MapDelete("/{ident}", Delete).Magnum("delete");
    }

    private static async Task<IResult> List(ApiContext ctx, string path, CancellationToken ct)
    {
        var caller = Policy.Reader(ctx.Http, "clustertemplate:get_all");
        var page = PageRequest.From(ctx.Http.Request, SortKeys);
        var q = caller.IsAdmin
            ? ctx.Db.ClusterTemplates.AsNoTracking()
            : ctx.Db.ClusterTemplates.AsNoTracking().Where(t => t.ProjectId == caller.ProjectId || (t.Public && !t.Hidden));
        ClusterTemplate? marker = null;
        if (page.Marker is not null)
            marker = await q.FirstOrDefaultAsync(t => t.Uuid == page.Marker, ct) ?? throw MagnumError.ClusterTemplateNotFound(page.Marker);
        var items = await q.Page(page, SortKeys, marker).ToListAsync(ct);
        var baseUrl = ctx.BaseUrl;
        var body = new JsonObject { ["clustertemplates"] = new JsonArray(items.Select(t => (JsonNode?)Views.Template(t, baseUrl)).ToArray()) };
        var next = page.NextLink(baseUrl, path, items.Count, items.LastOrDefault()?.Uuid);
        if (next is not null) body["next"] = next;
        return Results.Json(body);
    }

    private static async Task<IResult> Show(ApiContext ctx, string ident, CancellationToken ct)
    {
        var caller = Policy.Reader(ctx.Http, "clustertemplate:get");
        var t = await ctx.FindTemplateAsync(caller, ident, track: false, ct);
        return Results.Json(Views.Template(t, ctx.BaseUrl));
    }

    private static async Task<IResult> Create(ApiContext ctx, CancellationToken ct)
    {
        var caller = Policy.Member(ctx.Http, "clustertemplate:create");
        var body = await BodyReader.ReadObjectAsync(ctx.Http.Request, ct);
        var v = Schemas.ClusterTemplate.Validate(body);
        var t = new ClusterTemplate
        {
            Uuid = Guid.NewGuid().ToString(),
            ProjectId = caller.ProjectId,
            UserId = caller.UserId,
            CreatedAt = ctx.Now,
        };
        Apply(t, v, creating: true);
        if (string.IsNullOrEmpty(t.Name)) t.Name = ResourceNames.Generate("template");
        if ((t.Public || t.Hidden) && !caller.IsAdmin)
            throw MagnumError.Forbidden("Not authorized to set public or hidden flag for cluster template.");
        ValidateTemplate(t);
        await ctx.ValidateCloudReferencesAsync(t.ImageId, [t.FlavorId, t.MasterFlavorId], t.ExternalNetworkId, t.KeypairId, caller.ProjectId, ct);
        ctx.Db.ClusterTemplates.Add(t);
        await ctx.Db.SaveChangesAsync(ct);
        ctx.Http.Response.Headers.Location = $"{ctx.BaseUrl}/v1/clustertemplates/{t.Uuid}";
        return Results.Json(Views.Template(t, ctx.BaseUrl), statusCode: 201);
    }

    private static async Task<IResult> Update(ApiContext ctx, string ident, CancellationToken ct)
    {
        var caller = Policy.Member(ctx.Http, "clustertemplate:update");
        var patch = await BodyReader.ReadAsync(ctx.Http.Request, ct);
        JsonPatch.EnsureWellFormed(patch);
        var t = await ctx.FindTemplateAsync(caller, ident, track: true, ct);
        if (!Policy.CanSee(caller, t.ProjectId))
            throw MagnumError.PolicyNotAuthorized("clustertemplate:update"); // a public template of another project: visible, not editable
        var before = Views.Template(t, ctx.BaseUrl);
        var after = JsonPatch.Apply(before, patch, [], Schemas.TemplateNonRemovable);
        var changed = after.Where(kv => !JsonNode.DeepEquals(kv.Value, before[kv.Key])).Select(kv => kv.Key).ToList();
        var v = Schemas.ClusterTemplate.Validate(after);
        var wasPublic = t.Public;
        var wasHidden = t.Hidden;
        Apply(t, v, creating: false);
        if ((t.Public != wasPublic || t.Hidden != wasHidden) && !caller.IsAdmin)
            throw MagnumError.Forbidden("Not authorized to set public or hidden flag for cluster template.");
        ValidateTemplate(t);
        if (changed.Count > 0)
        {
            if (changed.Any(c => c is "image_id" or "flavor_id" or "master_flavor_id" or "external_network_id" or "keypair_id"))
                await ctx.ValidateCloudReferencesAsync(t.ImageId, [t.FlavorId, t.MasterFlavorId], t.ExternalNetworkId, t.KeypairId, caller.ProjectId, ct);
            // Magnum: a template in use may only be renamed, published or hidden.
            var onlyAllowed = changed.All(c => c is "public" or "hidden") || (changed.Count == 1 && changed[0] == "name");
            if (!onlyAllowed && await ctx.Db.Clusters.AnyAsync(c => c.ClusterTemplateId == t.Uuid, ct))
                throw MagnumError.BadRequest($"ClusterTemplate {t.Uuid} is referenced by one or multiple clusters.");
            t.UpdatedAt = ctx.Now;
            await ctx.Db.SaveChangesAsync(ct);
        }
        return Results.Json(Views.Template(t, ctx.BaseUrl));
    }

    private static async Task<IResult> Delete(ApiContext ctx, string ident, CancellationToken ct)
    {
        var caller = Policy.Member(ctx.Http, "clustertemplate:delete");
        var t = await ctx.FindTemplateAsync(caller, ident, track: true, ct);
        if (!Policy.CanSee(caller, t.ProjectId))
            throw MagnumError.PolicyNotAuthorized("clustertemplate:delete");
        if (await ctx.Db.Clusters.AnyAsync(c => c.ClusterTemplateId == t.Uuid || c.UpgradeToTemplateId == t.Uuid, ct))
            throw MagnumError.BadRequest($"ClusterTemplate {ident} is referenced by one or multiple clusters.");
        ctx.Db.ClusterTemplates.Remove(t);
        await ctx.Db.SaveChangesAsync(ct);
        return Results.NoContent();
    }

    /// <summary>Copies validated attributes onto the template. On update every API attribute is present (the patched document).</summary>
    private static void Apply(ClusterTemplate t, Dictionary<string, object?> v, bool creating)
    {
        string? S(string k) => v.TryGetValue(k, out var x) ? (string?)x : null;
        int? I(string k) => v.TryGetValue(k, out var x) ? (int?)x : null;
        bool B(string k, bool dflt) => v.TryGetValue(k, out var x) && x is bool b ? b : dflt;

        t.Name = S("name") ?? (creating ? "" : t.Name);
        t.Coe = S("coe") ?? t.Coe;
        t.ImageId = S("image_id") ?? t.ImageId;
        t.FlavorId = S("flavor_id");
        t.MasterFlavorId = S("master_flavor_id");
        t.DnsNameserver = S("dns_nameserver");
        t.KeypairId = S("keypair_id");
        t.ExternalNetworkId = S("external_network_id");
        t.FixedNetwork = S("fixed_network");
        t.FixedSubnet = S("fixed_subnet");
        t.NetworkDriver = S("network_driver") ?? ClusterDefaults.NetworkDriver; // Magnum: _enforce_network_driver_types
        t.ApiserverPort = I("apiserver_port");
        t.DockerVolumeSize = I("docker_volume_size");
        t.ClusterDistro = S("cluster_distro");
        t.HttpProxy = S("http_proxy");
        t.HttpsProxy = S("https_proxy");
        t.NoProxy = S("no_proxy");
        t.VolumeDriver = S("volume_driver");
        t.RegistryEnabled = B("registry_enabled", false);
        t.Labels = v.TryGetValue("labels", out var l) && l is Dictionary<string, string> labels ? labels : new Dictionary<string, string>();
        t.TlsDisabled = B("tls_disabled", false);
        t.Public = B("public", false);
        t.ServerType = S("server_type") ?? "vm";
        t.InsecureRegistry = S("insecure_registry");
        t.DockerStorageDriver = S("docker_storage_driver");
        t.MasterLbEnabled = B("master_lb_enabled", false);
        t.FloatingIpEnabled = B("floating_ip_enabled", true);
        t.Hidden = B("hidden", false);
        t.Tags = S("tags");
        t.Driver = S("driver");
        if (creating && t.ClusterDistro is null) t.ClusterDistro = GuessDistro(t.ImageId);
    }

    /// <summary>
    /// Magnum reads cluster_distro from the Glance image's os_distro property. Without an image service to ask
    /// (simulated cloud), the distribution is taken from the image name when the template does not state it.
    /// </summary>
    private static string GuessDistro(string image)
    {
        var i = image.ToLowerInvariant();
        if (i.Contains("ubuntu")) return "ubuntu";
        if (i.Contains("flatcar")) return "flatcar";
        return "fedora-coreos";
    }

    /// <summary>The checks a template must pass to be stored (also applied by <c>magnetar import-magnum</c>).</summary>
    public static void ValidateTemplate(ClusterTemplate t)
    {
        if (t.Coe != "kubernetes")
            throw MagnumError.BadRequest($"Cluster type ({t.ServerType}, {t.ClusterDistro}, {t.Coe}) not supported.");
        if (t.NetworkDriver is not null && !Schemas.NetworkDrivers.Contains(t.NetworkDriver))
            throw MagnumError.BadRequest($"Network driver type {t.NetworkDriver} is not supported, expecting a {string.Join(", ", Schemas.NetworkDrivers)} network driver.");
        if (t.VolumeDriver is not null && !Schemas.VolumeDrivers.Contains(t.VolumeDriver))
            throw MagnumError.BadRequest($"Volume driver type {t.VolumeDriver} is not supported, expecting a {string.Join(", ", Schemas.VolumeDrivers)} volume driver.");
        if (t.DockerStorageDriver == "devicemapper" && t.DockerVolumeSize is < 3)
            throw MagnumError.BadRequest($"docker volume size {t.DockerVolumeSize} GB is not valid, expecting minimum value 3GB for devicemapper storage driver.");
        LabelRules.Validate(t.Labels);
    }
}

/// <summary>Checks on labels Magnetar interprets itself (the rest pass through, as in Magnum).</summary>
public static class LabelRules
{
    public static void Validate(IReadOnlyDictionary<string, string> labels)
    {
        foreach (var (k, v) in labels)
        {
            if (k.Length == 0 || k.Length > 255 || k.Any(char.IsControl))
                throw MagnumError.BadRequest($"Invalid label key '{k}': keys are 1 to 255 printable characters.");
            if (v.Any(c => c == '\0'))
                throw MagnumError.BadRequest($"Invalid value for label {k}.");
        }
        if (labels.TryGetValue("kube_tag", out var tag) && !System.Text.RegularExpressions.Regex.IsMatch(tag, @"^v?\d+\.\d+(\.\d+)?([-+][0-9A-Za-z.-]+)?$"))
            throw MagnumError.BadRequest($"Invalid kube_tag label '{tag}': expected a Kubernetes version such as v1.31.1.");
    }
}
