using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace Magnetar.Server;

/// <summary>
/// Kestrel's HTTPS certificate from PEM files (<c>Magnetar:Tls:CertificateFile</c>, <c>Magnetar:Tls:KeyFile</c>),
/// read again when either file changes: a renewed certificate (certbot, an ACME client, a CA's agent) is served from the
/// next TLS handshake on, without a restart. Each handshake compares the files' modification times and sizes (two
/// stat calls); a pair that does not load — a renewal half-written, a key that does not match — keeps the certificate
/// served until then, says so in the log once, and is tried again when the files change again. Certificates after the first in
/// the certificate file are sent as its chain (intermediates).
/// </summary>
public sealed class ReloadingCertificate(string certificateFile, string keyFile, ILogger logger)
{
    private readonly object _lock = new();
    /// <summary>What is served and the files' stamp it was loaded at: one reference, replaced whole (handshakes read it without the lock).</summary>
    private volatile Loaded? _loaded;
    /// <summary>The stamp of files that did not load: not parsed again (nor logged again) until they change once more.</summary>
    private (DateTime, long, DateTime, long)? _failed;

    private sealed record Loaded(X509Certificate2 Certificate, SslStreamCertificateContext Context, (DateTime, long, DateTime, long) Stamp);

    public static ReloadingCertificate? FromConfiguration(IConfiguration config, ILogger logger)
    {
        var cert = config["Magnetar:Tls:CertificateFile"];
        var key = config["Magnetar:Tls:KeyFile"];
        if (string.IsNullOrEmpty(cert) && string.IsNullOrEmpty(key)) return null;
        if (string.IsNullOrEmpty(cert) || string.IsNullOrEmpty(key))
            throw new InvalidOperationException("HTTPS needs both Magnetar:Tls:CertificateFile and Magnetar:Tls:KeyFile (PEM).");
        var reloading = new ReloadingCertificate(Path.GetFullPath(cert), Path.GetFullPath(key), logger);
        _ = reloading.Current; // a certificate that does not load at start stops the start, naming the file
        return reloading;
    }

    /// <summary>Serves every HTTPS endpoint from these files.</summary>
    public void Apply(HttpsConnectionAdapterOptions https)
    {
        // The selector satisfies Kestrel's "an HTTPS endpoint has a certificate" check; OnAuthenticate then hands
        // SslStream the context with the chain (it runs after Kestrel set its selection callback, and replaces it).
        https.ServerCertificateSelector = (_, _) => Current.Certificate;
        https.OnAuthenticate = (_, ssl) =>
        {
            ssl.ServerCertificateSelectionCallback = null;
            ssl.ServerCertificate = null;
            ssl.ServerCertificateContext = Current.Context;
        };
    }

    public (X509Certificate2 Certificate, SslStreamCertificateContext Context) Current
    {
        get
        {
            var stamp = Stamp();
            var loaded = _loaded;
            if (loaded is not null && stamp == loaded.Stamp) return (loaded.Certificate, loaded.Context);
            lock (_lock)
            {
                loaded = _loaded;
                if (loaded is not null && (stamp == loaded.Stamp || stamp == _failed)) return (loaded.Certificate, loaded.Context);
                try
                {
                    var certificate = X509Certificate2.CreateFromPemFile(certificateFile, keyFile);
                    var chain = new X509Certificate2Collection();
                    chain.ImportFromPemFile(certificateFile);
                    var context = SslStreamCertificateContext.Create(certificate, new X509Certificate2Collection(chain.Skip(1).ToArray()), offline: true);
                    _loaded = loaded = new Loaded(certificate, context, stamp);
                    logger.LogInformation("HTTPS certificate loaded from {File}: {Subject}, valid until {NotAfter:u}, SHA-256 {Thumbprint}",
                        certificateFile, certificate.Subject, certificate.NotAfter.ToUniversalTime(), certificate.GetCertHashString(System.Security.Cryptography.HashAlgorithmName.SHA256));
                }
                catch (Exception e) when (loaded is not null && e is System.Security.Cryptography.CryptographicException or IOException or ArgumentException)
                {
                    _failed = stamp;
                    logger.LogWarning("HTTPS certificate files changed but do not load ({Error}); still serving {Subject} until they change again",
                        e.Message, loaded.Certificate.Subject);
                }
                catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or IOException or ArgumentException)
                {
                    throw new InvalidOperationException($"The HTTPS certificate {certificateFile} with key {keyFile} does not load: {e.Message}", e);
                }
                return (loaded!.Certificate, loaded.Context);
            }
        }
    }

    private (DateTime, long, DateTime, long) Stamp()
    {
        var c = new FileInfo(certificateFile);
        var k = new FileInfo(keyFile);
        return (c.Exists ? c.LastWriteTimeUtc : default, c.Exists ? c.Length : -1, k.Exists ? k.LastWriteTimeUtc : default, k.Exists ? k.Length : -1);
    }
}
