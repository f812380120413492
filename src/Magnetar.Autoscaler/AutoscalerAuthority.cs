using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Magnetar.Bootstrap.Addons;
using Magnetar.Bootstrap.Pki;
using Magnetar.Conductor;
using Magnetar.Bootstrap.Secrets;
using Magnetar.Domain;
using Magnetar.Persistence;
using Microsoft.EntityFrameworkCore;

namespace Magnetar.Autoscaler;

/// <summary>
/// Magnetar's autoscaler CA: one per deployment, made on first use, its key sealed in the database like the cluster
/// CAs' (so that every replica and a restored backup have it). It signs the endpoint's server certificate and one
/// client certificate per cluster, whose subject names the cluster (<c>CN=cluster-autoscaler:&lt;uuid&gt;</c>): a
/// certificate lets its holder see and scale that one cluster, and only while the cluster exists.
/// </summary>
public sealed class AutoscalerAuthority(IDbContextFactory<MagnetarDbContext> dbFactory, ISecretProtector protector, AutoscalerOptions options,
    BootstrapOptions bootstrap, TimeProvider time) : IAutoscalerCredentials
{
    /// <summary>The row's owner in the CA table: not a cluster uuid, so no cluster's deletion takes it.</summary>
    public const string Owner = "magnetar";
    public const string CaType = "autoscaler-ca";
    public const string SubjectPrefix = "cluster-autoscaler:";
    private const string Purpose = "autoscaler-ca-key";
    private static readonly TimeSpan ServerValidity = TimeSpan.FromDays(90);
    private readonly SemaphoreSlim _lock = new(1, 1);
    private CertificateAuthorityMaterial? _ca;
    private X509Certificate2? _caCert;
    private X509Certificate2? _server;

    public async Task<CertificateAuthorityMaterial> GetAuthorityAsync(CancellationToken ct)
    {
        if (_ca is not null) return _ca;
        await _lock.WaitAsync(ct);
        try
        {
            if (_ca is not null) return _ca;
            await using var db = await dbFactory.CreateDbContextAsync(ct);
            var row = await db.CertificateAuthorities.AsNoTracking().FirstOrDefaultAsync(c => c.ClusterUuid == Owner && c.CaType == CaType, ct);
            if (row is null)
            {
                var made = ClusterPki.CreateNamedAuthority("magnetar-autoscaler-ca", Owner);
                var added = new ClusterCertificateAuthority
                {
                    ClusterUuid = Owner, CaType = CaType, CertificatePem = made.CertificatePem,
                    ProtectedPrivateKey = protector.Protect(made.PrivateKeyPem, Purpose), CreatedAt = time.GetUtcNow(),
                };
                db.CertificateAuthorities.Add(added);
                try { await db.SaveChangesAsync(ct); row = added; }
                catch (DbUpdateException)
                {
                    // Another replica made it at the same moment: use that one.
                    db.Entry(added).State = EntityState.Detached;
                    row = await db.CertificateAuthorities.AsNoTracking().FirstAsync(c => c.ClusterUuid == Owner && c.CaType == CaType, ct);
                }
            }
            _caCert = X509Certificate2.CreateFromPem(row.CertificatePem);
            return _ca = new CertificateAuthorityMaterial(row.CertificatePem, protector.Unprotect(row.ProtectedPrivateKey, Purpose));
        }
        finally { _lock.Release(); }
    }

    /// <summary>The address clusters dial: configured, else the bootstrap URL's host with the endpoint's port.</summary>
    public string Address()
    {
        var bootstrapUrl = bootstrap.Url;
        if (!string.IsNullOrEmpty(options.Address)) return options.Address;
        var host = Uri.TryCreate(bootstrapUrl, UriKind.Absolute, out var u) ? u.Host : "127.0.0.1";
        return $"{(host.Contains(':') && !host.StartsWith('[') ? $"[{host}]" : host)}:{options.Port}";
    }

    /// <summary>A new client certificate for one cluster's autoscaler, with the CA and the address to dial.</summary>
    public async Task<AutoscalerCloudConfig> IssueAsync(string clusterUuid, CancellationToken ct)
    {
        var ca = await GetAuthorityAsync(ct);
        var issued = ClusterPki.IssueCertificate(ca, SubjectPrefix + clusterUuid, [], CertificatePurpose.Client, null,
            TimeSpan.FromDays(options.ClientCertificateDays), LeafKey.EcdsaP256);
        return new AutoscalerCloudConfig(Address(), ca.CertificatePem, issued.CertificatePem, issued.PrivateKeyPem);
    }

    /// <summary>
    /// The listener's certificate (issued by this CA for the address's host, the configured names and localhost),
    /// made again when less than a third of its validity is left. Kestrel asks for it at every handshake.
    /// </summary>
    public X509Certificate2 ServerCertificate()
    {
        var current = _server;
        var now = time.GetUtcNow();
        if (current is not null && current.NotAfter.ToUniversalTime() - now.UtcDateTime > ServerValidity / 3) return current;
        var ca = GetAuthorityAsync(CancellationToken.None).GetAwaiter().GetResult();
        var hosts = new List<string> { HostOf(Address()), "localhost", "127.0.0.1", "::1" };
        hosts.AddRange(options.ServerNames);
        var dns = new List<string>();
        var ips = new List<IPAddress>();
        foreach (var h in hosts.Distinct(StringComparer.OrdinalIgnoreCase))
            if (IPAddress.TryParse(h.Trim('[', ']'), out var ip)) { if (!ips.Contains(ip)) ips.Add(ip); }
            else dns.Add(h);
        var issued = ClusterPki.IssueCertificate(ca, "magnetar-autoscaler-endpoint", [], CertificatePurpose.Server,
            new SubjectAlternativeNames(dns, ips), ServerValidity, LeafKey.EcdsaP256);
        using var leaf = X509Certificate2.CreateFromPem(issued.CertificatePem, issued.PrivateKeyPem);
        // Exported and loaded again: SslStream needs a key it can use as a persisted one.
        var server = X509CertificateLoader.LoadPkcs12(leaf.Export(X509ContentType.Pkcs12), null);
        return _server = server;
    }

    private static string HostOf(string address)
    {
        if (address.StartsWith('[')) return address[1..address.IndexOf(']')];
        var colon = address.LastIndexOf(':');
        return colon > 0 ? address[..colon] : address;
    }

    /// <summary>
    /// The cluster a client certificate speaks for, or why it is refused: not issued by this CA, expired or not yet
    /// valid, not a client certificate, or not an autoscaler's.
    /// </summary>
    public async Task<(string? ClusterUuid, string? Refusal)> AuthenticateAsync(X509Certificate2? certificate, CancellationToken ct)
    {
        if (certificate is null) return (null, "no client certificate: the autoscaler must present the certificate Magnetar issued for its cluster (cloud-config cert/key)");
        await GetAuthorityAsync(ct);
        var now = time.GetUtcNow().UtcDateTime;
        if (certificate.NotAfter.ToUniversalTime() < now) return (null, $"the client certificate expired at {certificate.NotAfter.ToUniversalTime():u}");
        if (certificate.NotBefore.ToUniversalTime() > now) return (null, $"the client certificate is not valid before {certificate.NotBefore.ToUniversalTime():u}");
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(_caCert!);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationTime = now;
        chain.ChainPolicy.ApplicationPolicy.Add(new Oid("1.3.6.1.5.5.7.3.2")); // clientAuth
        if (!chain.Build(certificate))
            return (null, "the client certificate was not issued by this Magnetar's autoscaler CA (" +
                string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Where(s => s.Length > 0).Distinct()) + ")");
        var cn = certificate.GetNameInfo(X509NameType.SimpleName, false);
        if (cn is null || !cn.StartsWith(SubjectPrefix, StringComparison.Ordinal) || cn.Length == SubjectPrefix.Length)
            return (null, $"the client certificate ({cn}) is not a cluster autoscaler's");
        return (cn[SubjectPrefix.Length..], null);
    }
}
