using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Magnetar.Bootstrap.Pki;

namespace Magnetar.Tests;

/// <summary>
/// HTTPS from PEM files (<c>Magnetar:Tls:CertificateFile</c>/<c>KeyFile</c>, issue #16) on the real binary: the
/// listener serves the certificate with its chain, picks up a renewed pair swapped in on disk without a restart, keeps
/// serving through a half-written renewal, and refuses to start on files that do not load.
/// </summary>
[Trait("Category", "Integration")]
public sealed class TlsReloadTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tls-").FullName;
    private MagnetarProcess? _server;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_server is not null) await _server.DisposeAsync();
        try { Directory.Delete(_dir, true); } catch { }
    }

    [Fact]
    public async Task A_renewed_certificate_swapped_in_on_disk_is_served_without_a_restart()
    {
        // A root CA, an intermediate (sent as the chain: clients hold only the root), two leaf certificates.
        var root = Authority("magnetar-test-root", null);
        var intermediate = Authority("magnetar-test-intermediate", root);
        var sans = new SubjectAlternativeNames(["localhost"], [IPAddress.Loopback]);
        var first = ClusterPki.IssueCertificate(intermediate, "magnetar-first", [], CertificatePurpose.Server, sans, TimeSpan.FromDays(1));
        var renewed = ClusterPki.IssueCertificate(intermediate, "magnetar-renewed", [], CertificatePurpose.Server, sans, TimeSpan.FromDays(90));
        var certFile = Path.Combine(_dir, "tls.crt");
        var keyFile = Path.Combine(_dir, "tls.key");
        Swap(certFile, Pem(first.CertificatePem, intermediate.CertificatePem));
        Swap(keyFile, first.PrivateKeyPem);

        var https = $"https://127.0.0.1:{MagnetarProcess.FreePort()}";
        _server = new MagnetarProcess($"http://127.0.0.1:{MagnetarProcess.FreePort()};{https}", Path.Combine(_dir, "data"),
            $"--Magnetar:Tls:CertificateFile={certFile}", $"--Magnetar:Tls:KeyFile={keyFile}");
        await _server.StartAsync();
        var pid = _server.Pid;
        Assert.Equal("CN=magnetar-first", await ServedSubject(https, root.CertificatePem));

        // Renewal: the key, then the certificate, each replaced by a rename (as certbot's symlink swap or an agent does).
        // Between the two the files do not match: the old certificate is still served.
        Swap(keyFile, renewed.PrivateKeyPem);
        Assert.Equal("CN=magnetar-first", await ServedSubject(https, root.CertificatePem));
        Swap(certFile, Pem(renewed.CertificatePem, intermediate.CertificatePem));
        Assert.Equal("CN=magnetar-renewed", await ServedSubject(https, root.CertificatePem));
        Assert.Equal(pid, _server.Pid);
        Assert.Contains("do not load", _server.Log);
        Assert.Contains("HTTPS certificate loaded from", _server.Log.Split('\n').Last(l => l.Contains("HTTPS certificate")));

        // A certificate file that is not PEM: still the renewed one.
        Swap(certFile, "garbage\n");
        Assert.Equal("CN=magnetar-renewed", await ServedSubject(https, root.CertificatePem));
    }

    [Fact]
    public async Task Files_that_do_not_load_stop_the_start_naming_them()
    {
        var certFile = Path.Combine(_dir, "tls.crt");
        File.WriteAllText(certFile, "not a certificate\n");
        File.WriteAllText(Path.Combine(_dir, "tls.key"), "not a key\n");
        _server = new MagnetarProcess($"http://127.0.0.1:{MagnetarProcess.FreePort()};https://127.0.0.1:{MagnetarProcess.FreePort()}", Path.Combine(_dir, "data"),
            $"--Magnetar:Tls:CertificateFile={certFile}", $"--Magnetar:Tls:KeyFile={_dir}/tls.key");
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => _server.StartAsync());
        Assert.Contains($"The HTTPS certificate {certFile} with key {_dir}/tls.key does not load", e.Message);
    }

    /// <summary>A CA, self-signed or signed by <paramref name="parent"/> (no path length limit: the root signs an intermediate).</summary>
    private static CertificateAuthorityMaterial Authority(string name, CertificateAuthorityMaterial? parent)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, parent is null, parent is null ? 1 : 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var now = DateTimeOffset.UtcNow;
        if (parent is null)
        {
            using var self = request.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(30));
            return new CertificateAuthorityMaterial(self.ExportCertificatePem(), key.ExportPkcs8PrivateKeyPem());
        }
        using var issuer = X509Certificate2.CreateFromPem(parent.CertificatePem, parent.PrivateKeyPem);
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(issuer, true, false));
        // within the issuer's validity (its notAfter was computed a moment earlier: the same "now + 30 days" would pass it)
        using var cert = request.Create(issuer, now.AddMinutes(-5), now.AddDays(20), RandomNumberGenerator.GetBytes(16));
        return new CertificateAuthorityMaterial(cert.ExportCertificatePem(), key.ExportPkcs8PrivateKeyPem());
    }

    private static string Pem(params string[] blocks) => string.Concat(blocks.Select(b => b.TrimEnd() + "\n"));

    /// <summary>A file replaced by a rename, so that a reader never sees it half-written (and its mtime changes).</summary>
    private static void Swap(string path, string content)
    {
        File.WriteAllText(path + ".new", content);
        File.Move(path + ".new", path, overwrite: true);
    }

    /// <summary>The subject of the certificate a new TLS connection is served, its chain verified against <paramref name="rootPem"/> alone.</summary>
    private static async Task<string> ServedSubject(string url, string rootPem)
    {
        string? subject = null;
        string? error = null;
        using var handler = new HttpClientHandler
        {
            ServerCertificateCustomValidationCallback = (_, cert, chain, _) =>
            {
                using var verify = new X509Chain();
                verify.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                verify.ChainPolicy.CustomTrustStore.Add(X509Certificate2.CreateFromPem(rootPem));
                verify.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                // Only what the server sent: the leaf and the intermediates of its chain.
                foreach (var c in chain!.ChainElements.Select(e => e.Certificate).Skip(1)) verify.ChainPolicy.ExtraStore.Add(c);
                subject = cert!.Subject;
                var ok = verify.Build(cert);
                if (!ok) error = string.Join("; ", verify.ChainStatus.Select(s => s.StatusInformation));
                return ok;
            },
        };
        using var client = new HttpClient(handler);
        var response = await client.GetAsync(url + "/");
        Assert.True(error is null, error);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return subject!;
    }
}
