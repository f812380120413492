using System.Reflection;
using System.Text;
using Magnetar.Bootstrap.Kubeadm;
using YamlDotNet.Core;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;

namespace Magnetar.Bootstrap;

/// <summary>
/// Everything a node's first boot needs to find Magnetar and prove who it is — and nothing secret beyond the
/// single-use <see cref="FetchToken"/>: certificates, keys, the kubeadm token and the cloud credential are fetched
/// with it over TLS (see the bootstrap endpoint), because project members can read user-data through Nova's API.
/// </summary>
public sealed record NodeBootstrapContext(
    string ClusterUuid,
    string ClusterName,
    string NodeGroupName,
    string NodeName,
    KubeadmRole Role,
    string KubernetesVersion,
    string BootstrapUrl,
    string FetchToken,
    string? BootstrapCaPem = null,
    string PackageSource = PackageSources.Upstream);

public static class PackageSources
{
    /// <summary>kubelet/kubeadm/kubectl from the upstream Kubernetes package repository (apt or dnf).</summary>
    public const string Upstream = "upstream";
    /// <summary>Preinstalled in the image (label kube_package_source=image).</summary>
    public const string Image = "image";
}

/// <summary>Renders the user-data a server boots with. The cloud provider passes it to Nova unchanged.</summary>
public interface IUserDataRenderer
{
    string Render(NodeBootstrapContext context);
}

/// <summary>
/// cloud-init #cloud-config for the three node roles: kernel modules and sysctls for Kubernetes networking, the
/// node's identity and bootstrap credential, and <c>magnetar-node</c>, which fetches the node's bundle, prepares
/// containerd (systemd cgroups), installs kubelet/kubeadm/kubectl, runs kubeadm init/join, applies the addons on
/// the first control-plane node, and reports every phase to Magnetar.
/// </summary>
public sealed class CloudInitUserDataRenderer : IUserDataRenderer
{
    public const string NodeScriptPath = "/usr/local/sbin/magnetar-node";
    /// <summary>Nova's limit on user-data, counted on its base64 form.</summary>
    public const int NovaUserDataLimit = 65535;

    public static string NodeScript { get; } = LoadScript();

    /// <summary>
    /// The node's agent: after bootstrap (magnetar-node enables the timer once the node is Ready) it asks Magnetar for
    /// work every 30 s with the node's credential — the steps of a CA rotation — and reports what it did.
    /// </summary>
    public static readonly string AgentService = $"""
        [Unit]
        Description=Magnetar node agent: carries out what Magnetar asks of this node (CA rotation steps)
        Wants=network-online.target
        After=network-online.target

        [Service]
        Type=oneshot
        ExecStart={NodeScriptPath} task

        """;

    // AccuracySec: systemd's default of 1 min lets "every 30 s" become up to 90 s (seen on booted nodes, tests/nodebed).
    public const string AgentTimer = """
        [Unit]
        Description=Ask Magnetar for work for this node every 30 seconds

        [Timer]
        OnBootSec=1min
        OnUnitInactiveSec=30s
        AccuracySec=1s

        [Install]
        WantedBy=timers.target

        """;

    private static readonly ISerializer Yaml = new SerializerBuilder()
        .WithNamingConvention(UnderscoredNamingConvention.Instance)
        .ConfigureDefaultValuesHandling(DefaultValuesHandling.OmitNull)
        .DisableAliases()
        .Build();

    public string Render(NodeBootstrapContext c)
    {
        if (!Uri.TryCreate(c.BootstrapUrl, UriKind.Absolute, out var url) || (url.Scheme != "https" && url.Scheme != "http"))
            throw new ArgumentException($"bootstrap URL '{c.BootstrapUrl}' is not an absolute http(s) URL");
        var role = c.Role switch
        {
            KubeadmRole.Init => "init",
            KubeadmRole.JoinControlPlane => "control-plane",
            _ => "worker",
        };
        var env = new StringBuilder()
            .Append("MAGNETAR_URL=").Append(ShellQuote(c.BootstrapUrl.TrimEnd('/'))).Append('\n')
            .Append("MAGNETAR_CLUSTER=").Append(ShellQuote(c.ClusterUuid)).Append('\n')
            .Append("MAGNETAR_NODEGROUP=").Append(ShellQuote(c.NodeGroupName)).Append('\n')
            .Append("MAGNETAR_NODE=").Append(ShellQuote(c.NodeName)).Append('\n')
            .Append("MAGNETAR_ROLE=").Append(role).Append('\n')
            .Append("MAGNETAR_KUBE_VERSION=").Append(ShellQuote(c.KubernetesVersion)).Append('\n')
            .Append("MAGNETAR_PACKAGES=").Append(ShellQuote(c.PackageSource)).Append('\n')
            .ToString();
        var files = new List<WriteFile>
        {
            new("/etc/modules-load.d/kubernetes.conf", "overlay\nbr_netfilter\n", "0644"),
            new("/etc/sysctl.d/90-kubernetes.conf",
                "net.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\nnet.ipv4.ip_forward = 1\n", "0644"),
            new("/etc/magnetar/node.env", env, "0644"),
            new("/etc/magnetar/bootstrap-token", c.FetchToken + "\n", "0600"),
            new(NodeScriptPath, NodeScript, "0755"),
            new("/etc/systemd/system/magnetar-node-agent.service", AgentService, "0644"),
            new("/etc/systemd/system/magnetar-node-agent.timer", AgentTimer, "0644"),
        };
        if (!string.IsNullOrWhiteSpace(c.BootstrapCaPem))
            files.Add(new("/etc/magnetar/magnetar-ca.pem", c.BootstrapCaPem.TrimEnd() + "\n", "0644"));
        var config = new CloudConfig
        {
            PreserveHostname = false,
            Hostname = c.NodeName,
            WriteFiles = files,
            Runcmd = [[NodeScriptPath, "bootstrap"]],
        };
        return "#cloud-config\n" + Yaml.Serialize(config);
    }

    /// <summary>The size Nova counts: the base64 form of the user-data.</summary>
    public static int NovaSize(string userData) => (Encoding.UTF8.GetByteCount(userData) + 2) / 3 * 4;

    private static string ShellQuote(string s) => "'" + s.Replace("'", "'\\''") + "'";

    private static string LoadScript()
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("Magnetar.Bootstrap.Node.magnetar-node.sh")
            ?? throw new InvalidOperationException("magnetar-node.sh is not embedded");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    private sealed class CloudConfig
    {
        public bool? PreserveHostname { get; set; }
        public string? Hostname { get; set; }
        public List<WriteFile> WriteFiles { get; set; } = [];
        public List<List<string>> Runcmd { get; set; } = [];
    }

    private sealed class WriteFile(string path, string content, string permissions)
    {
        public string Path { get; } = path;
        public string Owner { get; } = "root:root";
        // Quoted: a bare 0644 is an octal integer to YAML 1.1, which cloud-init's schema rejects.
        [YamlMember(ScalarStyle = ScalarStyle.SingleQuoted)]
        public string Permissions { get; } = permissions;
        [YamlMember(ScalarStyle = ScalarStyle.Literal)]
        public string Content { get; } = content;
    }
}
