using System.Collections.Concurrent;
using Magnetar.Bootstrap.Pki;
using Magnetar.Domain;
using Magnetar.Persistence;

namespace Magnetar.Conductor;

/// <summary>
/// Gives the conductor and the health monitor a way into a cluster's Kubernetes API: the cluster's API address and a
/// client certificate Magnetar issues itself from the cluster CA (CN=magnetar, O=system:masters, one hour, ECDSA),
/// kept in memory and re-issued when half of it is used. Null when Magnetar does not reach cluster APIs here
/// (<see cref="ConductorOptions.ReachClusterApis"/>) or the cluster has no API address yet.
/// </summary>
public sealed class ClusterApiAccessProvider(IClusterCertificates certificates, ConductorOptions options, TimeProvider time)
{
    public static readonly TimeSpan CredentialValidity = TimeSpan.FromHours(1);
    private readonly ConcurrentDictionary<string, (ClusterApiAccess Access, DateTimeOffset RenewAt)> _cache = new();

    public bool Enabled => options.ReachClusterApis ?? false;

    public async Task<ClusterApiAccess?> GetAsync(MagnetarDbContext db, Cluster cluster, CancellationToken ct)
    {
        if (!Enabled) return null;
        var url = options.ClusterApiUrlOverride ?? cluster.ApiAddress;
        if (!Uri.TryCreate(url, UriKind.Absolute, out var server)) return null;
        var now = time.GetUtcNow();
        if (_cache.TryGetValue(cluster.Uuid, out var cached) && cached.RenewAt > now && cached.Access.Server == server) return cached.Access;
        var secrets = await certificates.GetNodeSecretsAsync(db, cluster, ct);
        var client = ClusterPki.IssueCertificate(secrets.ClusterCa, "magnetar", ["system:masters"], CertificatePurpose.Client, null,
            CredentialValidity, LeafKey.EcdsaP256);
        var access = new ClusterApiAccess(cluster.Uuid, server, secrets.ClusterCa.CertificatePem, client.CertificatePem, client.PrivateKeyPem);
        _cache[cluster.Uuid] = (access, now + CredentialValidity / 2);
        return access;
    }

    /// <summary>Forgets a cluster's credential (deleted cluster, rotated CA).</summary>
    public void Forget(string clusterUuid) => _cache.TryRemove(clusterUuid, out _);
}
