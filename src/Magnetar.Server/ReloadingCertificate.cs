using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace Magnetar.Server;

/// <summary>
/// Kestrel's HTTPS certificate from PEM files (<c>Magnetar:Tls:CertificateFile</c>, <c>Magnetar:Tls:KeyFile</c>),
/// read again when either file changes: a renewed certificate (certbot, an ACME client, a CA's agent) is served from the
/// next TLS handshake on, without a restart. Each handshake compares the files' modification times and sizes (two
/// stat calls); a pair that does not load — a renewal half-written, a key that does not match — keeps the certificate
/// served until then, says so in the log, and is tried again on the next handshake. Certificates after the first in
/// the certificate file are sent as its chain (intermediates).
/// </summary>
public sealed class ReloadingCertificate(string certificateFile, string keyFile, ILogger logger)
{
    private readonly object _lock = new();
    private (DateTime, long, DateTime, long) _stamp;
    private (X509Certificate2 Certificate, SslStreamCertificateContext Context)? _current;

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
            var current = _current;
            if (current is not null && stamp == _stamp) return current.Value;
            lock (_lock)
            {
                if (_current is not null && stamp == _stamp) return _current.Value;
                try
                {
                    var certificate = X509Certificate2.CreateFromPemFile(certificateFile, keyFile);
                    var chain = new X509Certificate2Collection();
                    chain.ImportFromPemFile(certificateFile);
                    var context = SslStreamCertificateContext.Create(certificate, new X509Certificate2Collection(chain.Skip(1).ToArray()), offline: true);
                    _current = (certificate, context);
                    _stamp = stamp;
                    logger.LogInformation("HTTPS certificate loaded from {File}: {Subject}, valid until {NotAfter:u}, SHA-256 {Thumbprint}",
                        certificateFile, certificate.Subject, certificate.NotAfter.ToUniversalTime(), certificate.GetCertHashString(System.Security.Cryptography.HashAlgorithmName.SHA256));
                }
                catch (Exception e) when (_current is not null && e is System.Security.Cryptography.CryptographicException or IOException or ArgumentException)
                {
                    logger.LogWarning("HTTPS certificate files changed but do not load ({Error}); still serving {Subject} until they do",
                        e.Message, _current.Value.Certificate.Subject);
                }
                catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or IOException or ArgumentException)
                {
                    throw new InvalidOperationException($"The HTTPS certificate {certificateFile} with key {keyFile} does not load: {e.Message}", e);
                }
                return _current!.Value;
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
