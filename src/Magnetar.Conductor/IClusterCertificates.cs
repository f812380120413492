using Magnetar.Domain;
using Magnetar.Persistence;

namespace Magnetar.Conductor;

/// <summary>A cluster's certificate authority: created with the cluster, served, used to sign CSRs, rotated, deleted.</summary>
public interface IClusterCertificates
{
    /// <summary>Creates the cluster CA if it does not exist yet (idempotent). Changes are saved by the caller.</summary>
    Task EnsureCaAsync(MagnetarDbContext db, Cluster cluster, CancellationToken ct);
    /// <summary>The CA certificate (PEM), creating the CA first if the conductor has not done so yet.</summary>
    Task<string> GetCaPemAsync(MagnetarDbContext db, Cluster cluster, CancellationToken ct);
    /// <summary>Signs a client CSR with the cluster CA. The subject is chosen by the caller (policy), never taken from the CSR.</summary>
    Task<string> SignClientCsrAsync(MagnetarDbContext db, Cluster cluster, string csrPem, string commonName, IReadOnlyList<string> groups, CancellationToken ct);
    /// <summary>Replaces the cluster CA with a new one (CA rotation).</summary>
    Task RotateCaAsync(MagnetarDbContext db, Cluster cluster, CancellationToken ct);
    Task DeleteAsync(MagnetarDbContext db, string clusterUuid, CancellationToken ct);
}
