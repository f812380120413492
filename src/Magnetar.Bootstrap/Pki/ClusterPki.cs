using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace Magnetar.Bootstrap.Pki;

/// <summary>A CA certificate and its private key (PKCS#8), both PEM.</summary>
public sealed record CertificateAuthorityMaterial(string CertificatePem, string PrivateKeyPem);

/// <summary>A certificate and its new private key (PKCS#8), both PEM.</summary>
public sealed record IssuedCertificate(string CertificatePem, string PrivateKeyPem);

/// <summary>The key type of an issued (leaf) certificate.</summary>
public enum LeafKey { Rsa2048, EcdsaP256 }

/// <summary>The service-account token signing key pair (kubeadm's sa.key / sa.pub).</summary>
public sealed record ServiceAccountKeyPair(string PrivateKeyPem, string PublicKeyPem);

public enum CertificatePurpose { Server, Client, ServerAndClient }

public sealed record SubjectAlternativeNames(IReadOnlyList<string> DnsNames, IReadOnlyList<IPAddress> IpAddresses)
{
    public bool IsEmpty => DnsNames.Count == 0 && IpAddresses.Count == 0;
}

/// <summary>The subject Magnetar puts in an issued client certificate: user name and Kubernetes groups (O=).</summary>
public sealed record IssuedSubject(string CommonName, IReadOnlyList<string> Groups);

/// <summary>A certificate signing request that cannot be signed: malformed, badly signed, or with a weak key.</summary>
public sealed class CsrRejectedException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Per-cluster PKI with System.Security.Cryptography only.</summary>
public static class ClusterPki
{
    public const int MaxCsrLength = 64 * 1024;

    /// <summary>
    /// A cluster CA as kubeadm makes one: RSA 2048, CN=&lt;cluster&gt; (OU = cluster uuid), CA:true pathlen 0,
    /// keyCertSign|cRLSign|digitalSignature, 10 years by default.
    /// </summary>
    public static CertificateAuthorityMaterial CreateCertificateAuthority(string clusterName, string clusterUuid, TimeSpan? validity = null)
        => CreateNamedAuthority(string.IsNullOrWhiteSpace(clusterName) ? clusterUuid : clusterName, clusterUuid, validity);

    /// <summary>
    /// A CA for one of kubeadm's other trust domains (etcd-ca, front-proxy-ca): RSA 2048 (from <see cref="RsaKeyPool"/>),
    /// CA:true pathlen 0, OU = cluster uuid, 10 years by default.
    /// </summary>
    public static CertificateAuthorityMaterial CreateNamedAuthority(string commonName, string clusterUuid, TimeSpan? validity = null)
    {
        using var key = RsaKeyPool.Shared.Take();
        var name = new X500DistinguishedNameBuilder();
        name.AddCommonName(commonName);
        name.AddOrganizationalUnitName(clusterUuid);
        var request = new CertificateRequest(name.Build(), key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(
            X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var now = DateTimeOffset.UtcNow;
        using var cert = request.CreateSelfSigned(now.AddMinutes(-5), now + (validity ?? TimeSpan.FromDays(3650)));
        return new CertificateAuthorityMaterial(cert.ExportCertificatePem(), key.ExportPkcs8PrivateKeyPem());
    }

    /// <summary>The service-account signing key pair kubeadm calls sa.key / sa.pub: RSA 2048, PKCS#8 and SubjectPublicKeyInfo PEM.</summary>
    public static ServiceAccountKeyPair CreateServiceAccountKey()
    {
        using var key = RsaKeyPool.Shared.Take();
        return new ServiceAccountKeyPair(key.ExportPkcs8PrivateKeyPem(), key.ExportSubjectPublicKeyInfoPem());
    }

    /// <summary>
    /// Issues a certificate with a new key (RSA 2048, or ECDSA P-256 where many are made — a node's: its generation takes
    /// well under a millisecond against ≈ 130 ms, see bench/results-pki.md), signed by <paramref name="ca"/>: a serving
    /// certificate (serverAuth, with SANs), a client certificate (clientAuth; O= carries Kubernetes groups) or both.
    /// </summary>
    public static IssuedCertificate IssueCertificate(CertificateAuthorityMaterial ca, string commonName, IReadOnlyList<string> organizations,
        CertificatePurpose purpose, SubjectAlternativeNames? names, TimeSpan validity, LeafKey keyType = LeafKey.Rsa2048)
    {
        if (purpose != CertificatePurpose.Client && (names is null || names.IsEmpty))
            throw new ArgumentException("a serving certificate needs at least one subject alternative name", nameof(names));
        using AsymmetricAlgorithm key = keyType == LeafKey.EcdsaP256 ? ECDsa.Create(ECCurve.NamedCurves.nistP256) : RSA.Create(2048);
        using var caCert = X509Certificate2.CreateFromPem(ca.CertificatePem, ca.PrivateKeyPem);
        var subject = new X500DistinguishedNameBuilder();
        foreach (var o in organizations) subject.AddOrganizationName(o);
        subject.AddCommonName(commonName);
        var request = key is ECDsa ec
            ? new CertificateRequest(subject.Build(), ec, HashAlgorithmName.SHA256)
            : new CertificateRequest(subject.Build(), (RSA)key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        // keyEncipherment is RSA key transport; an ECDSA key only signs.
        request.CertificateExtensions.Add(new X509KeyUsageExtension(
            key is ECDsa ? X509KeyUsageFlags.DigitalSignature : X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, true));
        var usages = new OidCollection();
        if (purpose is CertificatePurpose.Server or CertificatePurpose.ServerAndClient) usages.Add(new Oid("1.3.6.1.5.5.7.3.1", "Server Authentication"));
        if (purpose is CertificatePurpose.Client or CertificatePurpose.ServerAndClient) usages.Add(new Oid("1.3.6.1.5.5.7.3.2", "Client Authentication"));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(usages, false));
        if (names is not null && !names.IsEmpty)
        {
            var san = new SubjectAlternativeNameBuilder();
            foreach (var d in names.DnsNames) san.AddDnsName(d);
            foreach (var ip in names.IpAddresses) san.AddIpAddress(ip);
            request.CertificateExtensions.Add(san.Build(critical: false));
        }
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(caCert, true, false));
        var now = DateTimeOffset.UtcNow;
        var notAfter = now + validity;
        if (notAfter > caCert.NotAfter) notAfter = caCert.NotAfter;
        using var caKey = caCert.GetRSAPrivateKey()!;
        using var cert = request.Create(caCert.SubjectName, X509SignatureGenerator.CreateForRSA(caKey, RSASignaturePadding.Pkcs1),
            now.AddMinutes(-5), notAfter, NewSerial());
        return new IssuedCertificate(cert.ExportCertificatePem(), key.ExportPkcs8PrivateKeyPem());
    }

    /// <summary>
    /// The names an API server certificate must carry for this cluster, as kubeadm computes them plus the cluster's
    /// public addresses: kubernetes, kubernetes.default, kubernetes.default.svc, kubernetes.default.svc.&lt;domain&gt;,
    /// the first address of the service CIDR, and every load balancer / floating / control-plane address given.
    /// </summary>
    public static SubjectAlternativeNames ApiServerNames(string serviceCidr, string dnsDomain, IEnumerable<string> addresses)
    {
        var dns = new List<string> { "kubernetes", "kubernetes.default", "kubernetes.default.svc", $"kubernetes.default.svc.{dnsDomain}" };
        var ips = new List<IPAddress> { FirstHost(serviceCidr) };
        foreach (var a in addresses)
        {
            if (string.IsNullOrWhiteSpace(a)) continue;
            if (IPAddress.TryParse(a, out var ip)) { if (!ips.Contains(ip)) ips.Add(ip); }
            else if (!dns.Contains(a, StringComparer.OrdinalIgnoreCase)) dns.Add(a);
        }
        return new SubjectAlternativeNames(dns, ips);
    }

    /// <summary>The first host address of a CIDR (the Kubernetes service IP of the API server: 10.254.0.1 for 10.254.0.0/16).</summary>
    public static IPAddress FirstHost(string cidr)
    {
        if (!IPNetwork.TryParse(cidr, out var network))
            throw new ArgumentException($"'{cidr}' is not a CIDR", nameof(cidr));
        var bytes = network.BaseAddress.GetAddressBytes();
        for (var i = bytes.Length - 1; i >= 0; i--)
        {
            if (++bytes[i] != 0) break;
        }
        return new IPAddress(bytes);
    }

    /// <summary>kubeadm's discovery hash of a CA: "sha256:" + hex SHA-256 of the certificate's SubjectPublicKeyInfo.</summary>
    public static string CaCertHash(string caCertPem)
    {
        using var cert = X509Certificate2.CreateFromPem(caCertPem);
        return "sha256:" + Convert.ToHexStringLower(SHA256.HashData(cert.PublicKey.ExportSubjectPublicKeyInfo()));
    }

    private static byte[] NewSerial()
    {
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F;
        return serial;
    }

    /// <summary>
    /// Signs a client certificate for the public key of <paramref name="csrPem"/>, after verifying the CSR's
    /// self-signature. The subject comes from <paramref name="subject"/>: whatever the CSR asks for is ignored.
    /// </summary>
    public static string SignCsr(string caCertPem, string caKeyPem, string csrPem, IssuedSubject subject, TimeSpan validity)
    {
        var request = LoadCsr(csrPem);
        using var caCert = X509Certificate2.CreateFromPem(caCertPem, caKeyPem);

        var name = new X500DistinguishedNameBuilder();
        foreach (var group in subject.Groups) name.AddOrganizationName(group);
        name.AddCommonName(subject.CommonName);
        var issued = new CertificateRequest(name.Build(), request.PublicKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        issued.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        issued.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, true));
        issued.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2", "Client Authentication")], false));
        issued.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(issued.PublicKey, false));
        issued.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(caCert, true, false));

        var now = DateTimeOffset.UtcNow;
        var notAfter = now + validity;
        if (notAfter > caCert.NotAfter) notAfter = caCert.NotAfter;
        var serial = NewSerial();
        var generator = caCert.GetRSAPrivateKey() is { } rsa
            ? X509SignatureGenerator.CreateForRSA(rsa, RSASignaturePadding.Pkcs1)
            : X509SignatureGenerator.CreateForECDsa(caCert.GetECDsaPrivateKey()!);
        using var cert = issued.Create(caCert.SubjectName, generator, now.AddMinutes(-5), notAfter, serial);
        return cert.ExportCertificatePem();
    }

    /// <summary>Parses a PEM CSR and verifies its signature. RSA ≥ 1024 bits (SHA-1 signatures accepted, as Magnum does) or EC.</summary>
    public static CertificateRequest LoadCsr(string csrPem)
    {
        if (string.IsNullOrWhiteSpace(csrPem)) throw new CsrRejectedException("the CSR is empty");
        if (csrPem.Length > MaxCsrLength) throw new CsrRejectedException($"the CSR is larger than {MaxCsrLength} characters");
        if (!csrPem.Contains("-----BEGIN CERTIFICATE REQUEST-----", StringComparison.Ordinal) &&
            !csrPem.Contains("-----BEGIN NEW CERTIFICATE REQUEST-----", StringComparison.Ordinal))
            throw new CsrRejectedException("the CSR is not PEM (expected -----BEGIN CERTIFICATE REQUEST-----)");
        CertificateRequest request;
        try
        {
            // LoadSigningRequestPem verifies the self-signature with the algorithm the CSR names (incl. sha1WithRSA).
            request = CertificateRequest.LoadSigningRequestPem(csrPem, HashAlgorithmName.SHA256,
                CertificateRequestLoadOptions.Default, RSASignaturePadding.Pkcs1);
        }
        catch (CryptographicException e)
        {
            throw new CsrRejectedException("the CSR could not be parsed or its signature does not verify: " + e.Message, e);
        }
        catch (ArgumentException e)
        {
            throw new CsrRejectedException("the CSR could not be parsed: " + e.Message, e);
        }
        using var rsa = request.PublicKey.GetRSAPublicKey();
        if (rsa is not null)
        {
            if (rsa.KeySize < 1024) throw new CsrRejectedException($"the CSR's RSA key has {rsa.KeySize} bits; at least 1024 are required");
            return request;
        }
        using var ec = request.PublicKey.GetECDsaPublicKey();
        if (ec is not null) return request;
        throw new CsrRejectedException("the CSR's key type is not supported (RSA or ECDSA expected)");
    }
}
