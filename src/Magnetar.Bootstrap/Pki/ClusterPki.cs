using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace Magnetar.Bootstrap.Pki;

/// <summary>A CA certificate and its private key (PKCS#8), both PEM.</summary>
public sealed record CertificateAuthorityMaterial(string CertificatePem, string PrivateKeyPem);

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
    {
        using var key = RSA.Create(2048);
        var name = new X500DistinguishedNameBuilder();
        name.AddCommonName(string.IsNullOrWhiteSpace(clusterName) ? clusterUuid : clusterName);
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
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F;
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
