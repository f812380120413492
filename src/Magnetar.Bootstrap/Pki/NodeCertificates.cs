using System.Net;
using System.Text;
using k8s;
using k8s.KubeConfigModels;

namespace Magnetar.Bootstrap.Pki;

/// <summary>
/// The per-node credentials Magnetar issues from the cluster CA when a node fetches its bundle — no bootstrap token
/// has to exist in the cluster for a node to join, however long after the cluster's creation it boots:
/// <list type="bullet">
/// <item>a join kubeconfig (kubeadm <c>discovery.file</c>): the API endpoint, the cluster CA and a short-lived client
/// certificate <c>system:node:&lt;name&gt;</c> in <c>system:nodes</c>. kubeadm join reads its configuration with it
/// (kubeadm grants system:nodes that), then the kubelet uses it as its bootstrap credential: its CSR for its own client
/// certificate is a self-node-client request, which kubeadm's <c>kubeadm:node-autoapprove-certificate-rotation</c>
/// binding lets the controller manager approve.</item>
/// <item>a kubelet serving certificate (serverAuth) for the node's name and the addresses the cloud gave its server, so
/// that metrics-server and the API server can verify kubelets against the cluster CA.</item>
/// </list>
/// Both keys are ECDSA P-256 (Kubernetes takes them for kubelet client and serving certificates; Magnetar makes two per
/// node, and an RSA 2048 key costs ≈ 130 ms of CPU to generate).
/// </summary>
public static class NodeCertificates
{
    public const string NodesGroup = "system:nodes";

    public static string NodeUser(string nodeName) => "system:node:" + nodeName;

    /// <summary>A kubeconfig for <c>kubeadm join</c>'s file discovery, with a client certificate of the node's identity.</summary>
    public static string JoinKubeconfig(CertificateAuthorityMaterial ca, string server, string clusterName, string nodeName, TimeSpan validity)
    {
        var user = NodeUser(nodeName);
        var client = NodeClient(ca, nodeName, validity);
        var config = new K8SConfiguration
        {
            ApiVersion = "v1",
            Kind = "Config",
            CurrentContext = $"{user}@{clusterName}",
            Clusters = [new Cluster { Name = clusterName, ClusterEndpoint = new ClusterEndpoint { Server = server, CertificateAuthorityData = Base64(ca.CertificatePem) } }],
            Users = [new User { Name = user, UserCredentials = new UserCredentials { ClientCertificateData = Base64(client.CertificatePem), ClientKeyData = Base64(client.PrivateKeyPem) } }],
            Contexts = [new Context { Name = $"{user}@{clusterName}", ContextDetails = new ContextDetails { Cluster = clusterName, User = user } }],
        };
        return KubernetesYaml.Serialize(config);
    }

    /// <summary>The kubelet's serving certificate: its node name and every address of its server as SANs.</summary>
    public static IssuedCertificate KubeletServing(CertificateAuthorityMaterial ca, string nodeName, IEnumerable<string> addresses, TimeSpan validity)
    {
        var ips = addresses.Select(a => IPAddress.TryParse(a, out var ip) ? ip : null).OfType<IPAddress>().Distinct().ToList();
        return ClusterPki.IssueCertificate(ca, NodeUser(nodeName), [NodesGroup], CertificatePurpose.Server,
            new SubjectAlternativeNames([nodeName], ips), validity, LeafKey.EcdsaP256);
    }

    /// <summary>
    /// A kubelet client certificate (<c>system:node:&lt;name&gt;</c> in <c>system:nodes</c>), as the one file of certificate
    /// and key the kubelet keeps in /var/lib/kubelet/pki/kubelet-client-current.pem. Issued when a CA rotation re-issues
    /// what a node holds; the kubelet renews it itself afterwards (rotateCertificates) from the controller manager's signer.
    /// </summary>
    public static string KubeletClientPem(CertificateAuthorityMaterial ca, string nodeName, TimeSpan validity)
    {
        var client = NodeClient(ca, nodeName, validity);
        return client.CertificatePem.TrimEnd() + "\n" + client.PrivateKeyPem.TrimEnd() + "\n";
    }

    /// <summary>A client certificate of the node's identity: <c>system:node:&lt;name&gt;</c> in <c>system:nodes</c>.</summary>
    private static IssuedCertificate NodeClient(CertificateAuthorityMaterial ca, string nodeName, TimeSpan validity)
        => ClusterPki.IssueCertificate(ca, NodeUser(nodeName), [NodesGroup], CertificatePurpose.Client, null, validity, LeafKey.EcdsaP256);

    private static string Base64(string pem) => Convert.ToBase64String(Encoding.ASCII.GetBytes(pem));
}
