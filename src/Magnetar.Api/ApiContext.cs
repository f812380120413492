using Magnetar.Conductor;
using Magnetar.Domain;
using Magnetar.Identity;
using Magnetar.Persistence;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace Magnetar.Api;

/// <summary>Per-request services every Magnum endpoint needs: the database, the caller, the clock, links.</summary>
public sealed class ApiContext(MagnetarDbContext db, ApiOptions options, TimeProvider time, ReconcileSignal signal, IHttpContextAccessor accessor,
    Magnetar.Cloud.ICloudProvider cloud, Magnetar.Bootstrap.Secrets.ISecretProtector secrets, ILogger<ApiContext> logger)
{
    /// <summary>The token the caller authenticated this request with.</summary>
    private string? CallerToken => Http.Request.Headers["X-Auth-Token"].FirstOrDefault();

    /// <summary>
    /// Asks the cloud for the new cluster's own credential (made from the caller's token, which only exists during
    /// this request) and stages it, sealed, with the cluster. A cloud that needs none stages nothing.
    /// </summary>
    public async Task IssueCloudCredentialAsync(Cluster cluster, AuthContext caller, CancellationToken ct)
    {
        var token = CallerToken;
        if (token is null) return;
        Magnetar.Cloud.CloudCredential? credential;
        try
        {
            credential = await cloud.IssueCredentialAsync(new Magnetar.Cloud.CredentialRequest(cluster.Uuid, cluster.Name, caller.UserId, caller.ProjectId, token, caller.Roles), ct);
        }
        catch (Exception e) when (e is not OperationCanceledException and not MagnumError)
        {
            throw new MagnumError(503, $"The cloud refused to create the cluster's credential: {e.Message}");
        }
        if (credential is null) return;
        Db.CloudCredentials.Add(new ClusterCloudCredential
        {
            ClusterUuid = cluster.Uuid,
            CredentialId = credential.Id,
            UserId = credential.UserId,
            ProtectedSecret = secrets.Protect(credential.Secret, ClusterReconciler.CloudCredentialPurpose(cluster.Uuid)),
            CreatedAt = Now,
        });
    }

    /// <summary>
    /// After a failed <see cref="IssueCloudCredentialAsync"/>: the cloud may have made the credential and lost its answer;
    /// revoke whatever carries the cluster's credential name (best effort, logged by the provider).
    /// </summary>
    public async Task RevokeUnrecordedCloudCredentialAsync(Cluster cluster, CancellationToken ct)
    {
        try { await cloud.DeleteAsync(new Magnetar.Cloud.ClusterRef(cluster.Uuid, cluster.Name, cluster.ProjectId, null) { UserId = cluster.UserId }, ct); }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            logger.LogWarning(e, "Cluster {Uuid}: could not check for an unrecorded cloud credential", cluster.Uuid);
        }
    }

    /// <summary>Refuses references to images, flavors, networks or keypairs the cloud does not have (Magnum's validate_os_resources).</summary>
    public async Task ValidateCloudReferencesAsync(string? image, IEnumerable<string?> flavors, string? externalNetwork, string? keypair, string projectId, CancellationToken ct,
        string? forCluster = null)
    {
        var error = await cloud.ValidateReferencesAsync(new Magnetar.Cloud.CloudReferences(image,
            flavors.Where(f => !string.IsNullOrEmpty(f)).Select(f => f!).Distinct().ToList(), externalNetwork, keypair) { CallerToken = CallerToken, ForCluster = forCluster }, projectId, ct);
        if (error is not null) throw new MagnumError(error.StatusCode, error.Message);
    }

    public MagnetarDbContext Db { get; } = db;
    public ApiOptions Options { get; } = options;
    public TimeProvider Time { get; } = time;
    public ReconcileSignal Signal { get; } = signal;
    public HttpContext Http => accessor.HttpContext!;
    public string BaseUrl => Views.BaseUrl(Http, Options.PublicUrl);
    public DateTimeOffset Now => Time.GetUtcNow();

    public IQueryable<ClusterTemplate> VisibleTemplates(AuthContext c)
        => c.IsAdmin ? Db.ClusterTemplates : Db.ClusterTemplates.Where(t => t.ProjectId == c.ProjectId || t.Public);

    public IQueryable<Cluster> VisibleClusters(AuthContext c)
        => c.IsAdmin ? Db.Clusters : Db.Clusters.Where(x => x.ProjectId == c.ProjectId);

    /// <summary>Finds a template by uuid or name among those the caller may see (404 otherwise, 409 if the name is ambiguous).</summary>
    public async Task<ClusterTemplate> FindTemplateAsync(AuthContext c, string ident, bool track, CancellationToken ct)
    {
        var q = track ? VisibleTemplates(c) : VisibleTemplates(c).AsNoTracking();
        if (ResourceNames.LooksLikeUuid(ident))
        {
            var byUuid = await q.FirstOrDefaultAsync(t => t.Uuid == ident.ToLowerInvariant(), ct);
            if (byUuid is not null) return byUuid;
        }
        var byName = await q.Where(t => t.Name == ident).OrderBy(t => t.Id).Take(2).ToListAsync(ct);
        return byName.Count switch
        {
            1 => byName[0],
            0 => throw MagnumError.ClusterTemplateNotFound(ident),
            _ => throw MagnumError.Conflict("Multiple clustertemplates exist with same name. Please use the clustertemplate uuid instead."),
        };
    }

    public async Task<Cluster> FindClusterAsync(AuthContext c, string ident, bool track, CancellationToken ct)
    {
        var q = VisibleClusters(c).Include(x => x.NodeGroups).AsSplitQuery();
        if (!track) q = q.AsNoTracking();
        if (ResourceNames.LooksLikeUuid(ident))
        {
            var byUuid = await q.FirstOrDefaultAsync(x => x.Uuid == ident.ToLowerInvariant(), ct);
            if (byUuid is not null) return byUuid;
        }
        var byName = await q.Where(x => x.Name == ident).OrderBy(x => x.Id).Take(2).ToListAsync(ct);
        return byName.Count switch
        {
            1 => byName[0],
            0 => throw MagnumError.ClusterNotFound(ident),
            _ => throw MagnumError.Conflict("Multiple clusters exist with same name. Please use the cluster uuid instead."),
        };
    }

    /// <summary>Wakes the in-process conductor after new desired state was committed.</summary>
    public void Poke() => Signal.Poke();
}
