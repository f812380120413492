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
    // The same table keeps the cluster's other secrets, one row per type; only the "kubernetes" CA is rotated
    // through the API.
    private const string EtcdCaType = "etcd";
    private const string FrontProxyCaType = "front-proxy";
    private const string ServiceAccountType = "service-account";
    private const string BootstrapTokenType = "kubeadm-token";
    // The CA a rotation moves to, until the rotation completes and it replaces the "kubernetes" row. Sealed under the
    // cluster CA's purpose, so that completing the rotation is renaming the row.
    private const string NextCaType = "kubernetes-next";
    private static string Purpose(string clusterUuid) => $"cluster-ca-key:{clusterUuid}";
    private static string Purpose(string clusterUuid, string type) => type is CaType or NextCaType ? Purpose(clusterUuid) : $"cluster-secret:{type}:{clusterUuid}";
    public static readonly TimeSpan ClientCertificateValidity = TimeSpan.FromDays(365);

    public async Task<bool> EnsureCaAsync(MagnetarDbContext db, Cluster cluster, CancellationToken ct, bool nodeSecrets = true)
    {
        var existing = await db.CertificateAuthorities.Where(c => c.ClusterUuid == cluster.Uuid).Select(c => c.CaType).ToListAsync(ct);
        existing.AddRange(db.ChangeTracker.Entries<ClusterCertificateAuthority>()
            .Where(e => e.Entity.ClusterUuid == cluster.Uuid && e.State == EntityState.Added).Select(e => e.Entity.CaType));
        var madeNodeSecrets = false;
        foreach (var type in nodeSecrets ? [CaType, EtcdCaType, FrontProxyCaType, ServiceAccountType, BootstrapTokenType] : new[] { CaType })
        {
            if (existing.Contains(type)) continue;
            db.CertificateAuthorities.Add(NewSecret(cluster, type));
            madeNodeSecrets |= type != CaType;
            logger.LogInformation("Created {Type} for cluster {Cluster} ({Uuid})", type, cluster.Name, cluster.Uuid);
        }
        return madeNodeSecrets;
    }

    public async Task<string> GetCaPemAsync(MagnetarDbContext db, Cluster cluster, CancellationToken ct)
    {
        var ca = await LoadOrCreateAsync(db, cluster, ct);
        if (cluster.CaRotationStep is null) return ca.CertificatePem;
        // During a rotation the cluster's API servers serve from either CA: clients are told to trust both.
        var next = await LoadNextAsync(db, cluster, ct);
        return next is null ? ca.CertificatePem : ca.CertificatePem.TrimEnd() + "\n" + next.CertificatePem;
    }

    public async Task<string> SignClientCsrAsync(MagnetarDbContext db, Cluster cluster, string csrPem, string commonName, IReadOnlyList<string> groups, CancellationToken ct)
    {
        // Once every node trusts the new CA (after the rotation's trust step), client certificates come from it: one
        // from the old CA would stop working when the rotation finishes.
        var next = cluster.CaRotationStep is CaRotationSteps.Reissue or CaRotationSteps.Finish ? await LoadNextAsync(db, cluster, ct) : null;
        var ca = next ?? await LoadOrCreateAsync(db, cluster, ct);
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

    private static Task<ClusterCertificateAuthority?> LoadNextAsync(MagnetarDbContext db, Cluster cluster, CancellationToken ct)
        => db.CertificateAuthorities.AsNoTracking().FirstOrDefaultAsync(c => c.ClusterUuid == cluster.Uuid && c.CaType == NextCaType, ct);

    public async Task<bool> BeginRotationAsync(MagnetarDbContext db, Cluster cluster, CancellationToken ct)
    {
        if (await db.CertificateAuthorities.AnyAsync(c => c.ClusterUuid == cluster.Uuid && c.CaType == NextCaType, ct)) return false;
        db.CertificateAuthorities.Add(NewSecret(cluster, NextCaType));
        logger.LogInformation("New certificate authority for the rotation of cluster {Cluster} ({Uuid})", cluster.Name, cluster.Uuid);
        return true;
    }

    public async Task<(CertificateAuthorityMaterial Current, CertificateAuthorityMaterial Next)?> GetRotationAuthoritiesAsync(MagnetarDbContext db, Cluster cluster, CancellationToken ct)
    {
        var rows = await db.CertificateAuthorities.AsNoTracking()
            .Where(c => c.ClusterUuid == cluster.Uuid && (c.CaType == CaType || c.CaType == NextCaType)).ToDictionaryAsync(c => c.CaType, ct);
        if (!rows.TryGetValue(CaType, out var current) || !rows.TryGetValue(NextCaType, out var next)) return null;
        CertificateAuthorityMaterial Ca(ClusterCertificateAuthority row) => new(row.CertificatePem, protector.Unprotect(row.ProtectedPrivateKey, Purpose(cluster.Uuid)));
        return (Ca(current), Ca(next));
    }

    public async Task CompleteRotationAsync(MagnetarDbContext db, Cluster cluster, CancellationToken ct)
    {
        // Tracked, so that the caller's SaveChanges replaces the CA and ends the rotation in one transaction.
        var rows = await db.CertificateAuthorities.Where(c => c.ClusterUuid == cluster.Uuid && (c.CaType == CaType || c.CaType == NextCaType)).ToListAsync(ct);
        var next = rows.FirstOrDefault(r => r.CaType == NextCaType);
        if (next is null) return;
        foreach (var old in rows.Where(r => r.CaType == CaType)) db.CertificateAuthorities.Remove(old);
        next.CaType = CaType;
        next.CreatedAt = time.GetUtcNow();
        logger.LogInformation("Rotated certificate authority of cluster {Cluster} ({Uuid})", cluster.Name, cluster.Uuid);
    }

    public Task DeleteAsync(MagnetarDbContext db, string clusterUuid, CancellationToken ct)
        => db.CertificateAuthorities.Where(c => c.ClusterUuid == clusterUuid).ExecuteDeleteAsync(ct);

    public async Task<ClusterNodeSecrets> GetNodeSecretsAsync(MagnetarDbContext db, Cluster cluster, CancellationToken ct)
    {
        CertificateAuthorityMaterial Ca(ClusterCertificateAuthority row) => new(row.CertificatePem, protector.Unprotect(row.ProtectedPrivateKey, Purpose(cluster.Uuid, row.CaType)));
        // One read for all of them (the conductor made them with the cluster); only a missing one costs more.
        var rows = await db.CertificateAuthorities.AsNoTracking().Where(c => c.ClusterUuid == cluster.Uuid).ToDictionaryAsync(c => c.CaType, ct);
        async Task<ClusterCertificateAuthority> Get(string type) => rows.GetValueOrDefault(type) ?? await LoadOrCreateAsync(db, cluster, ct, type);
        var ca = await Get(CaType);
        var etcd = await Get(EtcdCaType);
        var frontProxy = await Get(FrontProxyCaType);
        var sa = await Get(ServiceAccountType);
        var token = await Get(BootstrapTokenType);
        return new ClusterNodeSecrets(Ca(ca), Ca(etcd), Ca(frontProxy),
            new ServiceAccountKeyPair(protector.Unprotect(sa.ProtectedPrivateKey, Purpose(cluster.Uuid, ServiceAccountType)), sa.CertificatePem),
            protector.Unprotect(token.ProtectedPrivateKey, Purpose(cluster.Uuid, BootstrapTokenType)));
    }

    private async Task<ClusterCertificateAuthority> LoadOrCreateAsync(MagnetarDbContext db, Cluster cluster, CancellationToken ct, string type = CaType)
    {
        var ca = await db.CertificateAuthorities.AsNoTracking().FirstOrDefaultAsync(c => c.ClusterUuid == cluster.Uuid && c.CaType == type, ct);
        if (ca is not null) return ca;
        ca = NewSecret(cluster, type);
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
            return await db.CertificateAuthorities.AsNoTracking().FirstAsync(c => c.ClusterUuid == cluster.Uuid && c.CaType == type, ct);
        }
    }

    /// <summary>A new secret of the given type; public part in CertificatePem, secret part protected.</summary>
    private ClusterCertificateAuthority NewSecret(Cluster cluster, string type)
    {
        var (pub, secret) = type switch
        {
            CaType or NextCaType => Pair(ClusterPki.CreateCertificateAuthority(cluster.Name, cluster.Uuid)),
            EtcdCaType => Pair(ClusterPki.CreateNamedAuthority("etcd-ca", cluster.Uuid)),
            FrontProxyCaType => Pair(ClusterPki.CreateNamedAuthority("front-proxy-ca", cluster.Uuid)),
            ServiceAccountType => ClusterPki.CreateServiceAccountKey() is var sa ? (sa.PublicKeyPem, sa.PrivateKeyPem) : default,
            BootstrapTokenType => NewBootstrapToken(),
            _ => throw new ArgumentOutOfRangeException(nameof(type), type, null),
        };
        return new ClusterCertificateAuthority
        {
            ClusterUuid = cluster.Uuid,
            CaType = type,
            CertificatePem = pub,
            ProtectedPrivateKey = protector.Protect(secret, Purpose(cluster.Uuid, type)),
            CreatedAt = time.GetUtcNow(),
        };

        static (string, string) Pair(CertificateAuthorityMaterial m) => (m.CertificatePem, m.PrivateKeyPem);
    }

    /// <summary>A kubeadm bootstrap token [a-z0-9]{6}.[a-z0-9]{16}: public id, full token secret.</summary>
    private static (string, string) NewBootstrapToken()
    {
        const string alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
        var id = System.Security.Cryptography.RandomNumberGenerator.GetString(alphabet, 6);
        var secret = System.Security.Cryptography.RandomNumberGenerator.GetString(alphabet, 16);
        return (id, $"{id}.{secret}");
    }
}
