using Magnetar.Bootstrap.Pki;
using Magnetar.Bootstrap.Secrets;
using Magnetar.Domain;
using Magnetar.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace Magnetar.Conductor;

/// <summary>
/// Cluster CAs stored in the database: certificate in clear, private key only in protected form
/// (<see cref="ISecretProtector"/>, AES-GCM with a key from configuration). Keys never leave this class.
/// </summary>
public sealed class ClusterCertificates(ISecretProtector protector, TimeProvider time, ILogger<ClusterCertificates> logger) : IClusterCertificates
{
    private const string CaType = "kubernetes";
    private static string Purpose(string clusterUuid) => $"cluster-ca-key:{clusterUuid}";
    public static readonly TimeSpan ClientCertificateValidity = TimeSpan.FromDays(365);

    public async Task EnsureCaAsync(MagnetarDbContext db, Cluster cluster, CancellationToken ct)
    {
        if (await db.CertificateAuthorities.AnyAsync(c => c.ClusterUuid == cluster.Uuid && c.CaType == CaType, ct)) return;
        if (db.ChangeTracker.Entries<ClusterCertificateAuthority>().Any(e => e.Entity.ClusterUuid == cluster.Uuid && e.State == EntityState.Added)) return;
        db.CertificateAuthorities.Add(NewCa(cluster));
        logger.LogInformation("Created certificate authority for cluster {Cluster} ({Uuid})", cluster.Name, cluster.Uuid);
    }

    public async Task<string> GetCaPemAsync(MagnetarDbContext db, Cluster cluster, CancellationToken ct)
    {
        var ca = await LoadOrCreateAsync(db, cluster, ct);
        return ca.CertificatePem;
    }

    public async Task<string> SignClientCsrAsync(MagnetarDbContext db, Cluster cluster, string csrPem, string commonName, IReadOnlyList<string> groups, CancellationToken ct)
    {
        var ca = await LoadOrCreateAsync(db, cluster, ct);
        var key = protector.Unprotect(ca.ProtectedPrivateKey, Purpose(cluster.Uuid));
        try
        {
            return ClusterPki.SignCsr(ca.CertificatePem, key, csrPem, new IssuedSubject(commonName, groups), ClientCertificateValidity);
        }
        catch (CsrRejectedException e)
        {
            throw MagnumError.BadRequest($"Received invalid csr: {e.Message}");
        }
    }

    public async Task RotateCaAsync(MagnetarDbContext db, Cluster cluster, CancellationToken ct)
    {
        await db.CertificateAuthorities.Where(c => c.ClusterUuid == cluster.Uuid && c.CaType == CaType).ExecuteDeleteAsync(ct);
        db.CertificateAuthorities.Add(NewCa(cluster));
        await db.SaveChangesAsync(ct);
        logger.LogInformation("Rotated certificate authority of cluster {Cluster} ({Uuid})", cluster.Name, cluster.Uuid);
    }

    public Task DeleteAsync(MagnetarDbContext db, string clusterUuid, CancellationToken ct)
        => db.CertificateAuthorities.Where(c => c.ClusterUuid == clusterUuid).ExecuteDeleteAsync(ct);

    private async Task<ClusterCertificateAuthority> LoadOrCreateAsync(MagnetarDbContext db, Cluster cluster, CancellationToken ct)
    {
        var ca = await db.CertificateAuthorities.AsNoTracking().FirstOrDefaultAsync(c => c.ClusterUuid == cluster.Uuid && c.CaType == CaType, ct);
        if (ca is not null) return ca;
        ca = NewCa(cluster);
        db.CertificateAuthorities.Add(ca);
        try
        {
            await db.SaveChangesAsync(ct);
            return ca;
        }
        catch (DbUpdateException)
        {
            // The conductor created it at the same moment: use that one.
            db.Entry(ca).State = EntityState.Detached;
            return await db.CertificateAuthorities.AsNoTracking().FirstAsync(c => c.ClusterUuid == cluster.Uuid && c.CaType == CaType, ct);
        }
    }

    private ClusterCertificateAuthority NewCa(Cluster cluster)
    {
        var ca = ClusterPki.CreateCertificateAuthority(cluster.Name, cluster.Uuid);
        return new ClusterCertificateAuthority
        {
            ClusterUuid = cluster.Uuid,
            CaType = CaType,
            CertificatePem = ca.CertificatePem,
            ProtectedPrivateKey = protector.Protect(ca.PrivateKeyPem, Purpose(cluster.Uuid)),
            CreatedAt = time.GetUtcNow(),
        };
    }
}
