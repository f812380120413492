using System.Text;
using System.Text.Json;

namespace Magnetar.Bootstrap;

/// <summary>Everything a node's first boot needs to know about itself.</summary>
public sealed record NodeBootstrapContext(
    string ClusterUuid,
    string ClusterName,
    string NodeGroupName,
    string Role,
    string KubernetesVersion,
    string NetworkDriver,
    string? ApiEndpoint);

/// <summary>Renders the user-data a server boots with. The cloud provider passes it to Nova unchanged.</summary>
public interface IUserDataRenderer
{
    string Render(NodeBootstrapContext context);
}

/// <summary>
/// Minimal cloud-config that identifies the node (hostname, /etc/magnetar/node.json). It does <b>not</b> install
/// containerd or run kubeadm: the full node bootstrap (PKI delivery, kubeadm, CNI, cloud provider) is issue #5 and
/// replaces this renderer behind the same interface.
/// </summary>
public sealed class NodeIdentityUserDataRenderer : IUserDataRenderer
{
    public string Render(NodeBootstrapContext c)
    {
        var identity = JsonSerializer.Serialize(new
        {
            cluster_uuid = c.ClusterUuid,
            cluster_name = c.ClusterName,
            nodegroup = c.NodeGroupName,
            role = c.Role,
            kubernetes_version = c.KubernetesVersion,
            network_driver = c.NetworkDriver,
            api_endpoint = c.ApiEndpoint,
        });
        var sb = new StringBuilder();
        sb.Append("#cloud-config\n");
        sb.Append("write_files:\n");
        sb.Append("  - path: /etc/magnetar/node.json\n");
        sb.Append("    permissions: '0644'\n");
        sb.Append("    content: ").Append(JsonSerializer.Serialize(identity)).Append('\n');
        return sb.ToString();
    }
}
