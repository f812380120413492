using System.Text.Json.Nodes;
using Magnetar.Conductor;
using Magnetar.Domain;
using Magnetar.Identity;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;

namespace Magnetar.Api;

/// <summary>
/// /v1/certificates: the cluster CA, CSR signing and CA rotation (served from 1.1, as Magnum 15 does, though its
/// API-version history documents rotation at 1.5).
/// Unlike Magnum, the issued certificate's subject is decided here, not copied from the CSR: the cluster's
/// creator and project admins get <c>O=system:masters</c> (cluster-admin); other project members get a
/// certificate naming them and their project (<c>O=magnetar:project:&lt;id&gt;</c>) with no rights until an RBAC
/// binding grants some; readers cannot obtain certificates.
/// </summary>
public static class CertificatesApi
{
    public static void Map(RouteGroupBuilder v1)
    {
        var g = v1.MapGroup("/certificates");
        g.MapGet("/{cluster}", Show).Magnum("get_one");
        g.MapPost("", Sign).Magnum("post");
        g.MapPatch("/{cluster}", Rotate).Magnum("patch");
    }

    public static IReadOnlyList<string> GroupsFor(AuthContext caller, Cluster cluster)
        => caller.IsAdmin || caller.UserId == cluster.UserId ? ["system:masters"] : [$"magnetar:project:{cluster.ProjectId}"];

    private static JsonObject View(string baseUrl, string clusterUuid) => new()
    {
        ["cluster_uuid"] = clusterUuid,
        ["bay_uuid"] = clusterUuid,
        ["links"] = Views.Links(baseUrl, $"certificates/{clusterUuid}"),
    };

    private static async Task<IResult> Show(ApiContext ctx, IClusterCertificates certs, string cluster, CancellationToken ct)
    {
        var caller = Policy.Reader(ctx.Http, "certificate:get");
        var caType = ctx.Http.Request.Query["ca_cert_type"].ToString();
        if (!string.IsNullOrEmpty(caType) && caType != "kubernetes")
            throw MagnumError.BadRequest($"Invalid ca_cert_type '{caType}': this cluster serves the 'kubernetes' CA.");
        var c = await ctx.FindClusterAsync(caller, cluster, track: false, ct);
        var pem = await certs.GetCaPemAsync(ctx.Db, c, ct);
        var body = View(ctx.BaseUrl, c.Uuid);
        body["pem"] = pem;
        return Results.Json(body);
    }

    private static async Task<IResult> Sign(ApiContext ctx, IClusterCertificates certs, CancellationToken ct)
    {
        var caller = Policy.Member(ctx.Http, "certificate:create");
        var v = Schemas.Certificate.Validate(await BodyReader.ReadObjectAsync(ctx.Http.Request, ct), enforceMandatory: false);
        var ident = v.GetValueOrDefault("cluster_uuid") as string ?? v.GetValueOrDefault("bay_uuid") as string;
        if (string.IsNullOrEmpty(ident)) throw MagnumError.BadRequest("Invalid input for field/attribute cluster_uuid. Value: None. Mandatory field missing.");
        var csr = v.GetValueOrDefault("csr") as string;
        if (string.IsNullOrEmpty(csr)) throw MagnumError.BadRequest("Invalid input for field/attribute csr. Value: None. Mandatory field missing.");
        Cluster c;
        try { c = await ctx.FindClusterAsync(caller, ident, track: false, ct); }
        catch (MagnumError e) when (e.StatusCode == 404) { throw MagnumError.BadRequest(e.Message); } // Magnum: 400 for a POST
        var pem = await certs.SignClientCsrAsync(ctx.Db, c, csr, caller.UserName, GroupsFor(caller, c), ct);
        var body = View(ctx.BaseUrl, c.Uuid);
        body["csr"] = csr;
        body["pem"] = pem;
        return Results.Json(body, statusCode: 201);
    }

    /// <summary>
    /// Starts a CA rotation (Magnum: UPDATE_IN_PROGRESS, then UPDATE_COMPLETE/UPDATE_FAILED). The conductor drives it
    /// through the nodes' agents in three steps (trust both CAs, re-issue from the new one, drop the old one); until
    /// it completes the old CA stays in force. Rotating a cluster whose rotation failed resumes it at the failed step.
    /// </summary>
    private static async Task<IResult> Rotate(ApiContext ctx, IClusterCertificates certs, string cluster, CancellationToken ct)
    {
        var caller = Policy.Member(ctx.Http, "certificate:rotate_ca");
        var c = await ctx.FindClusterAsync(caller, cluster, track: true, ct);
        var tlsDisabled = await ctx.Db.ClusterTemplates.Where(t => t.Uuid == c.ClusterTemplateId).Select(t => t.TlsDisabled).FirstOrDefaultAsync(ct);
        if (tlsDisabled) throw MagnumError.BadRequest("Rotating the CA certificate on a non-TLS cluster is not supported.");
        if (ClusterStatus.IsInProgress(c.Status)) throw MagnumError.BadRequest($"Cluster {c.Name} already has an operation in progress.");
        var resume = c.CaRotationStep is not null;
        if (!resume && !ClusterStatus.CaRotationAllowed.Contains(c.Status))
            throw MagnumError.BadRequest($"Can not rotate certificate for cluster {c.Name} with status {c.Status}");

        await certs.BeginRotationAsync(ctx.Db, c, ct);
        var nodes = await ctx.Db.NodeStates.Where(s => s.ClusterUuid == c.Uuid).ToListAsync(ct);
        foreach (var node in nodes)
        {
            node.RotationFailure = null; // a failed step is tried again
            if (!resume) node.RotationStep = null;
        }
        c.CaRotationStep ??= CaRotationSteps.Trust;
        c.CaRotationProgressAt = ctx.Now;
        c.Status = ClusterStatus.UpdateInProgress;
        c.StatusReason = resume ? $"CA rotation resumed at step {c.CaRotationStep}" : "CA rotation requested";
        c.Operation = ClusterOperations.RotateCa;
        c.OperationStartedAt = ctx.Now;
        c.NextReconcileAt = ctx.Now;
        c.UpdatedAt = ctx.Now;
        ctx.Db.ClusterEvents.Add(new ClusterEvent
        {
            ClusterUuid = c.Uuid, At = ctx.Now, Type = "Normal", Reason = "CaRotation",
            Message = resume ? $"CA rotation resumed at step {c.CaRotationStep} by {caller.UserName}" : $"CA rotation requested by {caller.UserName}",
        });
        await ClustersApi.SaveAsync(ctx, ct);
        return Results.Json(new JsonObject { ["uuid"] = c.Uuid }, statusCode: 202);
    }
}
