using System.Diagnostics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Magnetar.Tests;

public static class Fixtures
{
    /// <summary>magnum-tempest-plugin's sample CSR (tests/api/v1/test_cluster.py): RSA-1024, sha1WithRSAEncryption.</summary>
    public static string TempestCsr => File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "tempest-csr.pem"));

    /// <summary>A fresh RSA-2048/SHA-256 CSR with the given subject, as python-magnumclient makes one.</summary>
    public static string MakeCsr(string subject)
    {
        using var key = RSA.Create(2048);
        var req = new CertificateRequest(subject, key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        return req.CreateSigningRequestPem();
    }

    public static string Subject(string certPem)
    {
        using var cert = X509Certificate2.CreateFromPem(certPem);
        return cert.Subject;
    }

    /// <summary>The IP addresses among a certificate's subject alternative names.</summary>
    public static List<string> IpSans(string certPem)
    {
        using var cert = X509Certificate2.CreateFromPem(certPem);
        return cert.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single().EnumerateIPAddresses().Select(ip => ip.ToString()).ToList();
    }

    /// <summary>Runs <c>openssl verify -CAfile</c> (with <paramref name="options"/> such as -purpose, -verify_ip): "OK" when it verifies, openssl's message otherwise.</summary>
    public static string OpensslVerify(string caPem, string certPem, params string[] options)
    {
        var dir = Directory.CreateTempSubdirectory("verify-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "ca.pem"), caPem);
            File.WriteAllText(Path.Combine(dir, "cert.pem"), certPem);
            var psi = new ProcessStartInfo("openssl", ["verify", "-CAfile", Path.Combine(dir, "ca.pem"), .. options, Path.Combine(dir, "cert.pem")])
            { RedirectStandardOutput = true, RedirectStandardError = true };
            using var p = Process.Start(psi)!;
            var output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
            p.WaitForExit();
            return p.ExitCode == 0 && output.Trim().EndsWith(": OK") ? "OK" : output.Trim();
        }
        finally { Directory.Delete(dir, true); }
    }
}
