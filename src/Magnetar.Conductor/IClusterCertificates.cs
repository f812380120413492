using Magnetar.Domain;
using Magnetar.Persistence;

namespace Magnetar.Conductor;

/// <summary>A cluster's certificate authority: created with the cluster, served, used to sign CSRs, rotated, deleted.</summary>
public interface IClusterCertificates
{
    /// <summary>
    /// Creates the cluster CA if it does not exist yet (idempotent), and with <paramref name="nodeSecrets"/> the etcd and
    /// front-proxy CAs, service-account key and kubeadm token too (the conductor's job: three more RSA keys do not belong
    /// in the create request's latency). Changes are saved by the caller. True when node secrets were made now (none
    /// existed: they are made together, by the first pass that provisions the cluster).
    /// </summary>
    Task<bool> EnsureCaAsync(MagnetarDbContext db, Cluster cluster, CancellationToken ct, bool nodeSecrets = true);
    /// <summary>The CA certificate (PEM), creating the CA first if the conductor has not done so yet.</summary>
    Task<string> GetCaPemAsync(MagnetarDbContext db, Cluster cluster, CancellationToken ct);
    /// <summary>Signs a client CSR with the cluster CA. The subject is chosen by the caller (policy), never taken from the CSR.</summary>
    Task<string> SignClientCsrAsync(MagnetarDbContext db, Cluster cluster, string csrPem, string commonName, IReadOnlyList<string> groups, CancellationToken ct);
    /// <summary>
    /// Starts a CA rotation: makes the CA the cluster moves to, unless an unfinished rotation already made one (then
    /// false: rotating again resumes it). The current CA stays in force until <see cref="CompleteRotationAsync"/>.
    /// Changes are saved by the caller.
    /// </summary>
    Task<bool> BeginRotationAsync(MagnetarDbContext db, Cluster cluster, CancellationToken ct);
    /// <summary>The current and the next CA with their keys while a rotation is unfinished; null otherwise.</summary>
    Task<(Magnetar.Bootstrap.Pki.CertificateAuthorityMaterial Current, Magnetar.Bootstrap.Pki.CertificateAuthorityMaterial Next)?> GetRotationAuthoritiesAsync(
        MagnetarDbContext db, Cluster cluster, CancellationToken ct);
    /// <summary>Ends a rotation: the next CA becomes the cluster CA, the old one is deleted (saved by the caller).</summary>
    Task CompleteRotationAsync(MagnetarDbContext db, Cluster cluster, CancellationToken ct);
    Task DeleteAsync(MagnetarDbContext db, string clusterUuid, CancellationToken ct);
    /// <summary>
    /// Everything a control-plane node needs to run kubeadm with Magnetar's PKI (creating what is missing): the
    /// cluster, etcd and front-proxy CAs with their keys, the service-account key pair, the kubeadm bootstrap token.
    /// </summary>
    Task<ClusterNodeSecrets> GetNodeSecretsAsync(MagnetarDbContext db, Cluster cluster, CancellationToken ct);
}

/// <summary>A cluster's PKI and bootstrap secrets in clear, only ever held in memory while a node bundle is built.</summary>
public sealed record ClusterNodeSecrets(
    Magnetar.Bootstrap.Pki.CertificateAuthorityMaterial ClusterCa,
    Magnetar.Bootstrap.Pki.CertificateAuthorityMaterial EtcdCa,
    Magnetar.Bootstrap.Pki.CertificateAuthorityMaterial FrontProxyCa,
    Magnetar.Bootstrap.Pki.ServiceAccountKeyPair ServiceAccount,
    string BootstrapToken)
{
    public override string ToString() => "ClusterNodeSecrets { (secrets) }";
}
