using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Magnetar.Bootstrap.Pki;
using Magnetar.Bootstrap.Secrets;

namespace Magnetar.Tests;

public sealed class PkiTests
{
    private static readonly CertificateAuthorityMaterial Ca = ClusterPki.CreateCertificateAuthority("demo", "0b1e4a59-7d1c-4a53-9a2b-4a2d6c9e2f10");

    [Fact]
    public async Task The_key_pool_hands_out_distinct_keys_made_ahead_and_refills()
    {
        var pool = new RsaKeyPool();
        // Never started: every key is made in the caller's time.
        using (var k = pool.Take()) Assert.Equal(2048, k.KeySize);
        Assert.Equal((0L, 1L, 0L), pool.Counters);

        pool.Start(3, TimeSpan.Zero);
        await WaitFor(() => pool.Available == 3);
        var keys = Enumerable.Range(0, 3).Select(_ => pool.Take()).ToList();
        Assert.Equal((3L, 1L, 3L), pool.Counters);
        Assert.All(keys, k => Assert.Equal(2048, k.KeySize));
        Assert.Equal(3, keys.Select(k => Convert.ToHexString(k.ExportParameters(false).Modulus!)).Distinct().Count());
        // Taken keys are replaced in the background; a key works as a CA's.
        await WaitFor(() => pool.Available == 3);
        Assert.Equal(6L, pool.Counters.Made);
        var request = new CertificateRequest("CN=pooled", keys[0], HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddDays(1));
        Assert.True(cert.HasPrivateKey);
        keys.ForEach(k => k.Dispose());

        static async Task WaitFor(Func<bool> condition)
        {
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (!condition())
            {
                if (DateTime.UtcNow > deadline) throw new Xunit.Sdk.XunitException("the pool did not fill");
                await Task.Delay(20);
            }
        }
    }

    [Fact]
    public void Cluster_ca_is_a_proper_ca()
    {
        using var cert = X509Certificate2.CreateFromPem(Ca.CertificatePem);
        Assert.Contains("CN=demo", cert.Subject);
        Assert.Contains("OU=0b1e4a59-7d1c-4a53-9a2b-4a2d6c9e2f10", cert.Subject);
        var bc = cert.Extensions.OfType<X509BasicConstraintsExtension>().Single();
        Assert.True(bc.CertificateAuthority);
        Assert.True(bc.Critical);
        Assert.Equal(0, bc.PathLengthConstraint);
        var ku = cert.Extensions.OfType<X509KeyUsageExtension>().Single();
        Assert.True(ku.KeyUsages.HasFlag(X509KeyUsageFlags.KeyCertSign));
        Assert.True(cert.NotAfter > DateTime.UtcNow.AddYears(9));
        using var rsa = cert.GetRSAPublicKey()!;
        Assert.Equal(2048, rsa.KeySize);
        Assert.StartsWith("-----BEGIN PRIVATE KEY-----", Ca.PrivateKeyPem);
    }

    [Fact]
    public void Signed_client_certificate_chains_to_the_ca_with_openssl_and_has_the_chosen_subject()
    {
        var csr = Fixtures.MakeCsr("CN=admin, O=system:masters");
        var pem = ClusterPki.SignCsr(Ca.CertificatePem, Ca.PrivateKeyPem, csr, new IssuedSubject("alice", ["developers"]), TimeSpan.FromDays(30));
        Assert.Equal("OK", Fixtures.OpensslVerify(Ca.CertificatePem, pem));
        using var cert = X509Certificate2.CreateFromPem(pem);
        Assert.Equal("O=developers, CN=alice", cert.Subject);
        Assert.DoesNotContain("system:masters", cert.Subject);
        var eku = cert.Extensions.OfType<X509EnhancedKeyUsageExtension>().Single();
        Assert.Equal("1.3.6.1.5.5.7.3.2", eku.EnhancedKeyUsages[0].Value);
        Assert.False(cert.Extensions.OfType<X509BasicConstraintsExtension>().Single().CertificateAuthority);
        Assert.InRange(cert.NotAfter, DateTime.UtcNow.AddDays(29), DateTime.UtcNow.AddDays(31));
    }

    [Fact]
    public void Tempest_rsa1024_sha1_csr_is_accepted()
    {
        var pem = ClusterPki.SignCsr(Ca.CertificatePem, Ca.PrivateKeyPem, Fixtures.TempestCsr, new IssuedSubject("tempest", []), TimeSpan.FromDays(1));
        Assert.Equal("OK", Fixtures.OpensslVerify(Ca.CertificatePem, pem));
    }

    [Fact]
    public void Ec_csr_made_by_openssl_is_accepted()
    {
        var dir = Directory.CreateTempSubdirectory("csr-").FullName;
        var psi = new System.Diagnostics.ProcessStartInfo("openssl", ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", Path.Combine(dir, "k.pem"), "-out", Path.Combine(dir, "r.pem"), "-subj", "/CN=bob"]) { RedirectStandardError = true };
        using (var p = System.Diagnostics.Process.Start(psi)!) { p.WaitForExit(); Assert.Equal(0, p.ExitCode); }
        var pem = ClusterPki.SignCsr(Ca.CertificatePem, Ca.PrivateKeyPem, File.ReadAllText(Path.Combine(dir, "r.pem")), new IssuedSubject("bob", []), TimeSpan.FromDays(1));
        Assert.Equal("OK", Fixtures.OpensslVerify(Ca.CertificatePem, pem));
        Directory.Delete(dir, true);
    }

    [Theory]
    [InlineData("")]
    [InlineData("not a csr")]
    [InlineData("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----")]
    public void Garbage_is_rejected(string csr)
        => Assert.Throws<CsrRejectedException>(() => ClusterPki.SignCsr(Ca.CertificatePem, Ca.PrivateKeyPem, csr, new IssuedSubject("x", []), TimeSpan.FromDays(1)));

    [Fact]
    public void Tampered_csr_signature_is_rejected()
    {
        var der = Convert.FromBase64String(string.Concat(Fixtures.TempestCsr.Split('\n').Where(l => !l.StartsWith("-----"))));
        der[^5] ^= 0xFF; // flip bits inside the signature
        var pem = "-----BEGIN CERTIFICATE REQUEST-----\n" + Convert.ToBase64String(der, Base64FormattingOptions.InsertLineBreaks) + "\n-----END CERTIFICATE REQUEST-----\n";
        Assert.Throws<CsrRejectedException>(() => ClusterPki.SignCsr(Ca.CertificatePem, Ca.PrivateKeyPem, pem, new IssuedSubject("x", []), TimeSpan.FromDays(1)));
    }

    [Fact]
    public void Huge_csr_is_rejected()
        => Assert.Throws<CsrRejectedException>(() => ClusterPki.LoadCsr("-----BEGIN CERTIFICATE REQUEST-----\n" + new string('A', 100_000)));
}

public sealed class SecretProtectorTests
{
    private static SecretProtectionOptions Options(params (string Id, byte[] Key)[] keys)
        => new() { ActiveKeyId = keys[^1].Id, Keys = keys.ToDictionary(k => k.Id, k => Convert.ToBase64String(k.Key)) };

    [Fact]
    public void Round_trip_purpose_binding_tamper_and_rotation()
    {
        var k1 = RandomNumberGenerator.GetBytes(32);
        var p1 = new AesGcmSecretProtector(Options(("k1", k1)));
        var sealedValue = p1.Protect("-----BEGIN PRIVATE KEY-----secret", "cluster-ca-key:a");
        Assert.StartsWith("mg1:k1:", sealedValue);
        Assert.DoesNotContain("secret", sealedValue);
        Assert.Equal("-----BEGIN PRIVATE KEY-----secret", p1.Unprotect(sealedValue, "cluster-ca-key:a"));
        Assert.Throws<SecretUnprotectException>(() => p1.Unprotect(sealedValue, "cluster-ca-key:b"));
        var tampered = sealedValue[..^3] + (sealedValue[^3] == 'A' ? 'B' : 'A') + sealedValue[^2..];
        Assert.Throws<SecretUnprotectException>(() => p1.Unprotect(tampered, "cluster-ca-key:a"));

        // Rotation: a new active key; values sealed with the old one still open.
        var p2 = new AesGcmSecretProtector(Options(("k1", k1), ("k2", RandomNumberGenerator.GetBytes(32))));
        Assert.Equal("-----BEGIN PRIVATE KEY-----secret", p2.Unprotect(sealedValue, "cluster-ca-key:a"));
        Assert.StartsWith("mg1:k2:", p2.Protect("x", "p"));
        var p3 = new AesGcmSecretProtector(Options(("k3", RandomNumberGenerator.GetBytes(32))));
        Assert.Throws<SecretUnprotectException>(() => p3.Unprotect(sealedValue, "cluster-ca-key:a"));
    }

    [Fact]
    public void Key_file_is_created_private_and_reused()
    {
        var dir = Directory.CreateTempSubdirectory("keys-").FullName;
        var path = Path.Combine(dir, "secret.key");
        var a = KeyFile.LoadOrCreate(path);
        var b = KeyFile.LoadOrCreate(path);
        Assert.Equal(a.Keys[a.ActiveKeyId], b.Keys[b.ActiveKeyId]);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Directory.Delete(dir, true);
    }
}
