using System.Text.Json.Nodes;
using Magnetar.Cloud.Simulated;
using Magnetar.Domain;
using Magnetar.Identity;
using Magnetar.Persistence;
using Microsoft.EntityFrameworkCore;

namespace Magnetar.Server.Standalone;

/// <summary>
/// Read-only views of the simulated cloud in the shapes of Nova, Neutron, Glance and Heat, for standalone mode only
/// (built-in identity and simulated cloud): Horizon's forms (magnum-ui's Create Cluster Template, Create Cluster and
/// Resize) list flavors, images, networks, keypairs, servers and a cluster's stack through those services' clients.
/// Nothing here exists with a real cloud or with Keystone: there the real services answer.
/// </summary>
public static class StandaloneCloud
{
    /// <summary>Whether this process serves the standalone cloud endpoints (and lists them in the built-in catalog).</summary>
    public static bool Enabled(IConfiguration config)
        => Magnetar.Identity.IdentityServiceCollectionExtensions.IsBuiltIn(config)
           && string.Equals(config["Magnetar:Cloud:Provider"] ?? "simulated", "simulated", StringComparison.OrdinalIgnoreCase);

    public static IServiceCollection AddStandaloneCloud(this IServiceCollection services, IConfiguration config)
    {
        if (!Enabled(config)) return services;
        var dataDir = config["Magnetar:DataDir"] ?? ".magnetar";
        services.AddSingleton(sp => new KeypairStore(dataDir, sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<StandaloneCloudView>();
        services.AddSingleton(new Magnetar.Api.ServiceErrorFormats(ErrorFormats));
        return services;
    }

    public static IEndpointRouteBuilder MapStandaloneCloud(this IEndpointRouteBuilder app)
    {
        var config = app.ServiceProvider.GetRequiredService<IConfiguration>();
        if (!Enabled(config)) return app;
        app.MapStandaloneCompute();
        app.MapStandaloneNetwork();
        app.MapStandaloneImage();
        app.MapStandaloneOrchestration();
        return app;
    }

    /// <summary>
    /// Each service's fault body for errors written outside its endpoints (oversize bodies, the rate limit, an
    /// unavailable database, an unexpected exception): Nova's <c>{"computeFault": …}</c> family, Neutron's
    /// <c>NeutronError</c>, Glance's plain text and Heat's JSON, which their clients parse.
    /// </summary>
    private static readonly (PathString, Func<HttpContext, int, string, Task>)[] ErrorFormats =
    [
        ("/compute", (h, code, message) => ComputeEndpoints.Error(code, NovaFaultName(code), message).ExecuteAsync(h)),
        ("/network", (h, code, message) => NetworkImageEndpoints.NeutronError(code, "HTTP" + Reason(code).Replace(" ", ""), message).ExecuteAsync(h)),
        ("/image", (h, code, message) => Results.Text($"{code} {Reason(code)}\n\n{message}\n\n", statusCode: code).ExecuteAsync(h)),
        ("/orchestration", (h, code, message) => OrchestrationEndpoints.HeatError(code, Reason(code), "HTTP" + Reason(code).Replace(" ", ""), message).ExecuteAsync(h)),
    ];

    /// <summary>webob's reason phrases (Neutron, Glance and Heat answer through webob): its 413 keeps RFC 2616's name.</summary>
    private static string Reason(int code) => code == 413 ? "Request Entity Too Large"
        : Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(code) is { Length: > 0 } r ? r : "Error";

    /// <summary>Nova's fault names by status (nova/api/openstack/wsgi.py, <c>Fault._fault_names</c>).</summary>
    internal static string NovaFaultName(int code) => code switch
    {
        400 => "badRequest", 401 => "unauthorized", 403 => "forbidden", 404 => "itemNotFound", 405 => "badMethod",
        409 => "conflictingRequest", 413 or 429 => "overLimit", 415 => "badMediaType", 501 => "notImplemented",
        503 => "serviceUnavailable", _ => "computeFault",
    };

    /// <summary>The catalog entries of these services for a token scoped to <paramref name="projectId"/>.</summary>
    public static IEnumerable<(string Type, string Name, string Url)> CatalogEntries(string baseUrl, string projectId) =>
    [
        ("compute", "nova", $"{baseUrl}/compute/v2.1"),
        ("network", "neutron", $"{baseUrl}/network"),
        ("image", "glance", $"{baseUrl}/image"),
        ("orchestration", "heat", $"{baseUrl}/orchestration/v1/{projectId}"),
    ];

    public static string BaseUrl(HttpContext h)
    {
        var publicUrl = h.RequestServices.GetRequiredService<IConfiguration>()["Magnetar:PublicUrl"];
        return !string.IsNullOrEmpty(publicUrl) ? publicUrl.TrimEnd('/') : $"{h.Request.Scheme}://{h.Request.Host}{h.Request.PathBase}";
    }

    /// <summary>keystonemiddleware's answer to a request without a valid project-scoped token.</summary>
    public static IResult Unauthorized(HttpContext h)
    {
        h.Response.Headers["WWW-Authenticate"] = $"Keystone uri=\"{BaseUrl(h)}/identity/v3\"";
        return Results.Json(new JsonObject { ["error"] = new JsonObject { ["code"] = 401, ["title"] = "Unauthorized", ["message"] = "The request you have made requires authentication." } }, statusCode: 401);
    }

    /// <summary>When the simulated cloud's catalog entries (images, external networks) say they were made: a fixed date, as they are configuration.</summary>
    public static readonly DateTimeOffset CatalogCreated = new(2024, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public static string Time(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>A simulated server as the standalone compute API shows it.</summary>
public sealed record SimServer(
    string Id, string Name, string SimulatedName, string Status, string ClusterUuid, string ClusterName, string StackName,
    string ProjectId, string UserId, string? NodeGroup, string? Role, string? Image, string? Flavor, string? Address, string? FloatingAddress,
    string? Keypair, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt);

/// <summary>A network or subnet of the simulated cloud (the external networks of the options, and clusters' own).</summary>
public sealed record SimNetwork(string Id, string Name, string ProjectId, bool External, string Status, string SubnetId, string SubnetName, string Cidr, string Gateway, DateTimeOffset CreatedAt);

/// <summary>Reads the simulated cloud (its rows in the database and its options) for the standalone endpoints.</summary>
public sealed class StandaloneCloudView(IDbContextFactory<MagnetarDbContext> dbFactory, SimulatedCloudOptions options, BuiltInIdentityStore identity, TimeProvider time)
{
    public SimulatedCloudOptions Options => options;

    /// <summary>The project that owns the shared catalog (images, external networks): admin's, as on a devstack.</summary>
    public string CatalogOwner => identity.FindProject(null, "admin")?.Id ?? "";

    /// <summary>
    /// Magnum names a cluster's Heat stack after the cluster plus a short id; its servers are named after the stack.
    /// Here the stack is the cluster itself (see the orchestration endpoint) and this is its name.
    /// </summary>
    public static string StackName(Cluster c) => $"{c.Name}-{c.Uuid.Replace("-", "")[..12]}";

    /// <summary>
    /// The name a simulated server has in this compute API: the name Magnum's Heat templates give it (after the stack:
    /// <c>-master-N</c>, <c>-node-N</c> for the default worker nodegroup, <c>-NODEGROUP-N</c> for others, <c>-ng-NODEGROUP-N</c>
    /// when that name itself starts with node or minion), which is
    /// how Horizon (magnum-ui's resize form) finds a cluster's workers. The simulated cloud's own name is in the
    /// server's metadata (<c>magnetar_server_name</c>).
    /// </summary>
    public static string ServerName(string stackName, NodeGroup? ng, string simulatedName)
    {
        var dash = simulatedName.LastIndexOf('-');
        var index = dash >= 0 && int.TryParse(simulatedName.AsSpan(dash + 1), out var i) ? i : 0;
        if (ng is null) return $"{stackName}-{simulatedName}";
        if (ng.Role == NodeGroupRoles.Master) return $"{stackName}-master-{index}";
        if (ng.IsDefault) return $"{stackName}-node-{index}";
        // Another nodegroup's servers must not pass for the default workers magnum-ui counts (<stack>-node…, <stack>-minion…).
        var infix = ng.Name.StartsWith("node", StringComparison.Ordinal) || ng.Name.StartsWith("minion", StringComparison.Ordinal) ? "ng-" + ng.Name : ng.Name;
        return $"{stackName}-{infix}-{index}";
    }

    /// <summary>The clusters of a project (all projects when null), with their nodegroups.</summary>
    public async Task<List<Cluster>> ClustersAsync(string? projectId, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var q = db.Clusters.AsNoTracking().Include(c => c.NodeGroups).AsQueryable();
        if (projectId is not null) q = q.Where(c => c.ProjectId == projectId);
        return await q.ToListAsync(ct);
    }

    public async Task<List<SimServer>> ServersAsync(string? projectId, CancellationToken ct)
    {
        var clusters = (await ClustersAsync(projectId, ct)).ToDictionary(c => c.Uuid);
        if (clusters.Count == 0) return [];
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var uuids = clusters.Keys.ToList();
        var rows = await db.SimulatedResources.AsNoTracking()
            .Where(r => r.Kind == "server" && r.DeleteRequestedAt == null && uuids.Contains(r.ClusterUuid)).ToListAsync(ct);
        var now = time.GetUtcNow();
        return rows.Select(r =>
        {
            var c = clusters[r.ClusterUuid];
            var ng = c.NodeGroups.FirstOrDefault(n => n.Name == r.NodeGroup);
            var stack = StackName(c);
            var status = r.Status == "BUILD" && r.ReadyAt <= now ? "ACTIVE" : r.Status;
            var image = ng?.ImageId is { } img ? SimulatedCatalog.Resolve(options.Images, SimulatedCatalog.Image, img) ?? img : null;
            var flavorRef = ng?.FlavorId ?? (ng?.Role == NodeGroupRoles.Master ? c.MasterFlavorId : c.FlavorId);
            var flavor = flavorRef is null ? null : SimulatedCatalog.Resolve(options.Flavors, SimulatedCatalog.Flavor, flavorRef) ?? flavorRef;
            return new SimServer(r.ResourceId, ServerName(stack, ng, r.Name), r.Name, status, c.Uuid, c.Name, stack, c.ProjectId, c.UserId,
                r.NodeGroup, ng?.Role, image, flavor, r.Address, r.FloatingAddress, c.Keypair, r.CreatedAt, status == "ACTIVE" ? r.ReadyAt : r.CreatedAt);
        }).OrderBy(s => s.CreatedAt).ThenBy(s => s.Name, StringComparer.Ordinal).ToList();
    }

    /// <summary>The external networks of the options (everyone sees them) and the project's clusters' networks.</summary>
    public async Task<List<SimNetwork>> NetworksAsync(string projectId, CancellationToken ct)
    {
        var owner = CatalogOwner;
        var list = options.ExternalNetworks.Select((n, i) => new SimNetwork(
            SimulatedCatalog.IdOf(SimulatedCatalog.Network, n), n, owner, true, "ACTIVE",
            SimulatedCatalog.IdOf("subnet", n), $"{n}-subnet", $"172.{24 + i}.0.0/16", $"172.{24 + i}.0.1", StandaloneCloud.CatalogCreated)).ToList();
        var clusters = (await ClustersAsync(projectId, ct)).ToDictionary(c => c.Uuid);
        if (clusters.Count == 0) return list;
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var uuids = clusters.Keys.ToList();
        var rows = await db.SimulatedResources.AsNoTracking()
            .Where(r => (r.Kind == "network" || r.Kind == "subnet") && r.DeleteRequestedAt == null && uuids.Contains(r.ClusterUuid)).ToListAsync(ct);
        var now = time.GetUtcNow();
        foreach (var net in rows.Where(r => r.Kind == "network"))
        {
            var subnet = rows.FirstOrDefault(r => r.Kind == "subnet" && r.ClusterUuid == net.ClusterUuid);
            var status = net.Status == "BUILD" && net.ReadyAt <= now ? "ACTIVE" : net.Status;
            list.Add(new SimNetwork(net.ResourceId, net.Name, clusters[net.ClusterUuid].ProjectId, false, status,
                subnet?.ResourceId ?? "", subnet?.Name ?? "", "10.0.0.0/24", "10.0.0.1", net.CreatedAt));
        }
        return list;
    }
}
