using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using k8s;
using k8s.Models;
using Magnetar.Bootstrap.Addons;
using Magnetar.Cloud.OpenStack;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Magnetar.Tests;

/// <summary>
/// Addon manifests: the pinned upstream files load into typed Kubernetes objects without losing a field, and what the
/// renderer makes of them parses strictly, carries the cluster's values where each component reads them, and follows
/// the labels.
/// </summary>
public sealed class AddonManifestTests
{
    private const string Uuid = "6c8a3b7e-1d2f-4a5b-9c0d-112233445566";
    // Characters that would break an unquoted INI value: quote, backslash, comment starters, '=' and a section bracket.
    private const string CredentialSecret = "s3cr\"et\\;#=[x]-Zq9";

    private static readonly OpenStackCloudConfig Cloud = new(
        "https://keystone.example.test:5000/v3", "RegionOne", "0f3b2c9d8e7a4b1c9d0e1f2a3b4c5d6e", CredentialSecret,
        "7d1c0b1e-4a59-4a53-9a2b-4a2d6c9e2f10", "a2b4c6d8-1111-2222-3333-444455556666", "b3c5d7e9-1111-2222-3333-444455556666");

    private static AddonValues Values(string driver = "calico", string podCidr = "10.100.0.0/16", string serviceCidr = "10.254.0.0/16",
        Dictionary<string, string>? labels = null, OpenStackCloudConfig? cloud = null, bool noCloud = false, string kube = "v1.31.1")
        => new(Uuid, "demo", kube, driver, podCidr, serviceCidr, labels ?? [], noCloud ? null : cloud ?? Cloud);

    private static Dictionary<string, RenderedAddon> Render(AddonValues values) =>
        AddonRenderer.Render(values).ToDictionary(a => a.FileName);

    private static List<IKubernetesObject<V1ObjectMeta>> Objects(RenderedAddon addon) =>
        KubernetesYaml.LoadAllFromString(addon.Yaml, strict: true).Cast<IKubernetesObject<V1ObjectMeta>>().ToList();

    private static IEnumerable<V1Container> Containers(IEnumerable<IKubernetesObject<V1ObjectMeta>> objects) =>
        objects.Select(o => o switch { V1DaemonSet d => d.Spec.Template.Spec, V1Deployment d => d.Spec.Template.Spec, _ => null })
            .Where(s => s is not null).SelectMany(s => (s!.InitContainers ?? []).Concat(s.Containers));

    private static string TagOf(string image) => image[(image.LastIndexOf(':') + 1)..];

    /// <summary>Kinds the addons may contain; a new kind after a version bump must be looked at and added here.</summary>
    private static readonly HashSet<string> KnownKinds =
    [
        "Namespace", "ServiceAccount", "ConfigMap", "Secret", "Service", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
        "DaemonSet", "Deployment", "CustomResourceDefinition", "PodDisruptionBudget", "CSIDriver", "StorageClass", "APIService",
    ];

    private static readonly HashSet<string> ClusterScopedKinds =
        ["Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "CSIDriver", "StorageClass", "APIService"];

    public static TheoryData<string> PinnedPaths() => new(PinnedManifests.Paths);

    public static TheoryData<string, bool> Combinations()
    {
        var data = new TheoryData<string, bool>();
        foreach (var driver in AddonRenderer.NetworkDrivers) { data.Add(driver, true); data.Add(driver, false); }
        return data;
    }

    // ------------------------------------------------------------------------------------------- pinned manifests

    [Fact]
    public void Every_pinned_manifest_the_renderer_reads_is_embedded()
    {
        var paths = PinnedManifests.Paths;
        Assert.Equal(12, paths.Count);
        Assert.Contains($"calico/{PinnedVersions.Calico}/calico.yaml", paths);
        Assert.Contains($"cilium/{PinnedVersions.Cilium}/cilium.yaml", paths);
        Assert.Contains($"flannel/{PinnedVersions.Flannel}/kube-flannel.yml", paths);
        Assert.Contains($"metrics-server/{PinnedVersions.MetricsServer}/components.yaml", paths);
        Assert.Equal(8, paths.Count(p => p.StartsWith($"cloud-provider-openstack/{PinnedVersions.CloudProviderOpenStackManifests}/", StringComparison.Ordinal)));
        Assert.All(paths, p => Assert.DoesNotContain('\\', p));
    }

    [Theory]
    [MemberData(nameof(PinnedPaths))]
    public void Pinned_manifest_loads_into_typed_objects_without_losing_anything(string path)
    {
        var text = PinnedManifests.ReadText(path);
        // The source documents, with v1 List items taken out by the test itself.
        var stream = new YamlStream();
        stream.Load(new StringReader(text));
        var sources = new List<YamlNode>();
        foreach (var doc in stream.Documents.Where(d => d.RootNode is YamlMappingNode))
        {
            var root = (YamlMappingNode)doc.RootNode;
            if (root.Children.TryGetValue(new YamlScalarNode("kind"), out var kind) && kind.ToString() == "List")
                sources.AddRange(((YamlSequenceNode)root.Children[new YamlScalarNode("items")]).Children);
            else sources.Add(root);
        }

        var typed = PinnedManifests.Load(path);
        Assert.Equal(sources.Count, typed.Count);
        var differences = new List<string>();
        for (var i = 0; i < typed.Count; i++)
        {
            Assert.Contains(typed[i].Kind, KnownKinds);
            Assert.Equal(typeof(V1Pod).Assembly, typed[i].GetType().Assembly);
            YamlTree.Compare(sources[i], YamlTree.Parse(KubernetesYaml.Serialize(typed[i])), $"{typed[i].Kind}/{typed[i].Metadata.Name}", differences);
        }
        Assert.True(differences.Count == 0, string.Join("\n", differences.Take(20)));
    }

    [Fact]
    public void Strict_parsing_and_the_round_trip_check_catch_unknown_fields_and_kinds()
    {
        const string unknownField = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: b\ndatta:\n  k: v\n";
        const string unknownKind = "apiVersion: example.org/v1\nkind: Gadget\nmetadata:\n  name: a\n";
        Assert.ThrowsAny<YamlException>(() => KubernetesYaml.LoadAllFromString(unknownField, strict: true));
        Assert.ThrowsAny<KeyNotFoundException>(() => KubernetesYaml.LoadAllFromString(unknownKind, strict: true));

        // Non-strict parsing drops the field silently; the round-trip comparison reports it.
        var lenient = KubernetesYaml.LoadAllFromString(unknownField).Single();
        var differences = new List<string>();
        YamlTree.Compare(YamlTree.Parse(unknownField), YamlTree.Parse(KubernetesYaml.Serialize(lenient)), "ConfigMap/a", differences);
        Assert.Equal(["ConfigMap/a.datta: lost"], differences);

        // A changed value is a difference; octal and integer spellings of one number are not.
        differences.Clear();
        YamlTree.Compare(YamlTree.Parse("a: 0400\nb: x\nc: 1\n"), YamlTree.Parse("a: 256\nb: y\nc: 1.0\n"), "", differences);
        Assert.Equal([".b: 'x' became 'y'"], differences);
    }

    // ------------------------------------------------------------------------------------------- rendered files

    [Theory]
    [MemberData(nameof(Combinations))]
    public void Rendered_files_parse_strictly_into_known_kinds_with_unique_names(string driver, bool withCloud)
    {
        var addons = AddonRenderer.Render(Values(driver, noCloud: !withCloud));
        Assert.Equal(addons.Select(a => a.FileName).Order(StringComparer.Ordinal), addons.Select(a => a.FileName));
        Assert.Equal(withCloud ? 5 : 2, addons.Count);

        var seen = new HashSet<string>();
        foreach (var addon in addons)
        {
            Assert.Matches(@"^[0-9]{2}-[a-z0-9-]+\.yaml$", addon.FileName);
            Assert.Matches(AddonLabels.TagPattern(), addon.Version);
            var objects = Objects(addon);
            Assert.NotEmpty(objects);
            var documents = YamlTree.Documents(addon.Yaml);
            Assert.Equal(objects.Count, documents.Count);
            var differences = new List<string>();
            for (var i = 0; i < objects.Count; i++)
            {
                var o = objects[i];
                Assert.Contains(o.Kind, KnownKinds);
                Assert.False(string.IsNullOrEmpty(o.Metadata?.Name), $"{addon.FileName}: a {o.Kind} has no name");
                if (ClusterScopedKinds.Contains(o.Kind)) Assert.Null(o.Metadata.NamespaceProperty);
                else Assert.False(string.IsNullOrEmpty(o.Metadata.NamespaceProperty), $"{addon.FileName}: {o.Kind} {o.Metadata.Name} has no namespace");
                Assert.True(seen.Add($"{o.Kind}/{o.Metadata.NamespaceProperty}/{o.Metadata.Name}"), $"{o.Kind} {o.Metadata.NamespaceProperty}/{o.Metadata.Name} appears twice");
                YamlTree.Compare(documents[i], YamlTree.Parse(KubernetesYaml.Serialize(o)), $"{addon.FileName}:{o.Kind}/{o.Metadata.Name}", differences);
            }
            Assert.True(differences.Count == 0, string.Join("\n", differences.Take(20)));
        }
        // Every namespace an object lives in exists already or is created by the addons themselves.
        var namespaces = addons.SelectMany(Objects).OfType<V1Namespace>().Select(n => n.Metadata.Name).Append("kube-system").ToHashSet();
        Assert.All(addons.SelectMany(Objects).Where(o => o.Metadata.NamespaceProperty is not null),
            o => Assert.Contains(o.Metadata.NamespaceProperty, namespaces));
    }

    [Fact]
    public void Rendering_is_deterministic()
    {
        var a = AddonRenderer.Render(Values("cilium"));
        var b = AddonRenderer.Render(Values("cilium"));
        Assert.Equal(a.Select(x => x.Yaml), b.Select(x => x.Yaml));
    }

    [Fact]
    public void Calico_gets_the_pod_cidr_in_calico_nodes_ipv4_pool_and_keeps_ipip()
    {
        var calico = Render(Values("calico", podCidr: "172.20.0.0/16"))[AddonRenderer.CalicoFile];
        var objects = Objects(calico);
        var node = objects.OfType<V1DaemonSet>().Single(d => d.Metadata.Name == "calico-node").Spec.Template.Spec.Containers.Single(c => c.Name == "calico-node");
        Assert.Equal("172.20.0.0/16", node.Env.Single(e => e.Name == "CALICO_IPV4POOL_CIDR").Value);
        Assert.Equal("Always", node.Env.Single(e => e.Name == "CALICO_IPV4POOL_IPIP").Value);
        Assert.Equal(35, objects.Count);
        Assert.Equal(20, objects.OfType<V1CustomResourceDefinition>().Count());
    }

    [Fact]
    public void Cilium_gets_the_pod_cidr_as_its_cluster_pool()
    {
        var objects = Objects(Render(Values("cilium", podCidr: "172.20.0.0/16"))[AddonRenderer.CiliumFile]);
        var config = objects.OfType<V1ConfigMap>().Single(c => c.Metadata.Name == "cilium-config");
        Assert.Equal("172.20.0.0/16", config.Data["cluster-pool-ipv4-cidr"]);
        Assert.Equal("cluster-pool", config.Data["ipam"]);
        Assert.Equal("false", config.Data["kube-proxy-replacement"]);
        Assert.Single(objects.OfType<V1DaemonSet>(), d => d.Metadata.Name == "cilium");
        Assert.Single(objects.OfType<V1Deployment>(), d => d.Metadata.Name == "cilium-operator");
        Assert.Contains(objects.OfType<V1ServiceAccount>(), s => s.Metadata.Name == "cilium");
        Assert.Contains(objects.OfType<V1ClusterRoleBinding>(), s => s.Metadata.Name == "cilium-operator");
        // No Helm-generated certificates or Hubble pieces in a static manifest.
        Assert.Empty(objects.OfType<V1Secret>());
        Assert.DoesNotContain(objects, o => o.Metadata.Name.Contains("hubble", StringComparison.Ordinal));
    }

    [Fact]
    public void Flannel_gets_the_pod_cidr_in_net_conf_json()
    {
        var objects = Objects(Render(Values("flannel", podCidr: "172.20.0.0/16", labels: new() { ["flannel_network_subnetlen"] = "25" }))[AddonRenderer.FlannelFile]);
        var netConf = JsonNode.Parse(objects.OfType<V1ConfigMap>().Single(c => c.Metadata.Name == "kube-flannel-cfg").Data["net-conf.json"])!;
        Assert.Equal("172.20.0.0/16", netConf["Network"]!.GetValue<string>());
        Assert.Equal(25, netConf["SubnetLen"]!.GetValue<int>());
        Assert.Equal("vxlan", netConf["Backend"]!["Type"]!.GetValue<string>());
        Assert.Single(objects.OfType<V1Namespace>(), n => n.Metadata.Name == "kube-flannel");
        Assert.IsType<V1Namespace>(objects[0]);
    }

    [Fact]
    public void Cloud_conf_is_valid_ini_with_the_application_credential()
    {
        var addons = Render(Values(cloud: Cloud with { CaBundlePem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----" }));
        var secret = Objects(addons[AddonRenderer.CloudConfigFile]).Cast<V1Secret>().Single();
        Assert.Equal(("cloud-config", "kube-system"), (secret.Metadata.Name, secret.Metadata.NamespaceProperty));
        Assert.Null(secret.Data);
        var ini = Gcfg.Parse(secret.StringData["cloud.conf"]);
        Assert.Equal(["Global", "LoadBalancer", "Networking"], ini.Keys.Order());
        Assert.Equal(Cloud.AuthUrl, ini["Global"]["auth-url"]);
        Assert.Equal(Cloud.ApplicationCredentialId, ini["Global"]["application-credential-id"]);
        Assert.Equal(CredentialSecret, ini["Global"]["application-credential-secret"]);
        Assert.Equal("RegionOne", ini["Global"]["region"]);
        Assert.Equal("/etc/config/ca.crt", ini["Global"]["ca-file"]);
        Assert.Equal(Cloud.FloatingNetworkId, ini["LoadBalancer"]["floating-network-id"]);
        Assert.Equal(Cloud.SubnetId, ini["LoadBalancer"]["subnet-id"]);
        Assert.Equal(Cloud.NetworkId, ini["LoadBalancer"]["network-id"]);
        Assert.Equal("true", ini["LoadBalancer"]["create-monitor"]);
        Assert.Equal("true", ini["Networking"]["ipv6-support-disabled"]);
        Assert.StartsWith("-----BEGIN CERTIFICATE-----", secret.StringData["ca.crt"]);

        // Both consumers mount the Secret where ca-file points.
        foreach (var file in new[] { AddonRenderer.CloudControllerManagerFile, AddonRenderer.CinderCsiFile })
        {
            var specs = Objects(addons[file]).Select(o => o switch { V1DaemonSet d => d.Spec.Template.Spec, V1Deployment d => d.Spec.Template.Spec, _ => null }).OfType<V1PodSpec>();
            var mounts = specs.SelectMany(s => s.Containers.SelectMany(c => c.VolumeMounts ?? [])
                .Where(m => s.Volumes.Any(v => v.Name == m.Name && v.Secret?.SecretName == "cloud-config"))).ToList();
            Assert.NotEmpty(mounts);
            Assert.All(mounts, m => Assert.Equal("/etc/config", m.MountPath));
        }
    }

    [Fact]
    public void Cloud_conf_follows_octavia_labels_and_optional_fields()
    {
        var bare = Cloud with { Region = null, FloatingNetworkId = null, SubnetId = null, NetworkId = null, CreateMonitor = false };
        var ini = Gcfg.Parse(Objects(Render(Values(cloud: bare, labels: new() { ["octavia_provider"] = "ovn" }))[AddonRenderer.CloudConfigFile])
            .Cast<V1Secret>().Single().StringData["cloud.conf"]);
        Assert.False(ini["Global"].ContainsKey("region"));
        Assert.False(ini["Global"].ContainsKey("ca-file"));
        Assert.Equal(["create-monitor", "lb-method", "lb-provider"], ini["LoadBalancer"].Keys.Order());
        Assert.Equal("false", ini["LoadBalancer"]["create-monitor"]);
        Assert.Equal("ovn", ini["LoadBalancer"]["lb-provider"]);
        Assert.Equal("SOURCE_IP_PORT", ini["LoadBalancer"]["lb-method"]);
    }

    [Fact]
    public void The_credential_secret_appears_only_in_the_secret_object()
    {
        var addons = AddonRenderer.Render(Values());
        Assert.Single(addons, a => a.Yaml.Contains("s3cr", StringComparison.Ordinal));
        var holder = addons.Single(a => a.Yaml.Contains("s3cr", StringComparison.Ordinal));
        Assert.Equal(AddonRenderer.CloudConfigFile, holder.FileName);
        Assert.All(Objects(holder), o => Assert.IsType<V1Secret>(o));

        Assert.DoesNotContain("s3cr", Cloud.ToString());
        Assert.DoesNotContain("s3cr", Values().ToString());
        Assert.All(addons, a => Assert.DoesNotContain("s3cr", a.ToString()));
        // Invalid cloud values are reported by field name, never with the secret.
        foreach (var bad in new[] { Cloud with { AuthUrl = "keystone" }, Cloud with { ApplicationCredentialSecret = "s3cr\net" },
                     Cloud with { ApplicationCredentialSecret = " s3cret" }, Cloud with { Region = "" }, Cloud with { CaBundlePem = "s3cr" } })
        {
            var e = Assert.ThrowsAny<ArgumentException>(() => AddonRenderer.Render(Values(cloud: bad)));
            Assert.DoesNotContain("s3cr", e.ToString());
        }
    }

    [Fact]
    public void Cinder_csi_brings_the_default_storage_class()
    {
        var objects = Objects(Render(Values())[AddonRenderer.CinderCsiFile]);
        var defaults = objects.OfType<V1StorageClass>()
            .Where(s => s.Metadata.Annotations is { } a && a.TryGetValue("storageclass.kubernetes.io/is-default-class", out var v) && v == "true").ToList();
        var sc = Assert.Single(defaults);
        Assert.Equal("csi-cinder-sc-delete", sc.Metadata.Name);
        Assert.Equal("cinder.csi.openstack.org", sc.Provisioner);
        Assert.Equal("Delete", sc.ReclaimPolicy);
        Assert.True(sc.AllowVolumeExpansion);
        Assert.Single(objects.OfType<V1CSIDriver>(), d => d.Metadata.Name == "cinder.csi.openstack.org");
        Assert.Single(objects.OfType<V1Deployment>(), d => d.Metadata.Name == "csi-cinder-controllerplugin");
        Assert.Single(objects.OfType<V1DaemonSet>(), d => d.Metadata.Name == "csi-cinder-nodeplugin");
        var socketDir = objects.OfType<V1Deployment>().Single().Spec.Template.Spec.Volumes.Single(v => v.Name == "socket-dir");
        Assert.NotNull(socketDir.EmptyDir);
    }

    [Fact]
    public void Cloud_controller_manager_and_csi_run_under_the_name_cluster_delete_looks_for()
    {
        var expected = OpenStackCloudProvider.CloudControllerClusterName(Uuid);
        Assert.Equal(expected, AddonRenderer.CloudClusterName(Uuid));
        var addons = Render(Values());
        var ccm = Objects(addons[AddonRenderer.CloudControllerManagerFile]);
        Assert.Equal(expected, Containers(ccm).Single(c => c.Name == "openstack-cloud-controller-manager").Env.Single(e => e.Name == "CLUSTER_NAME").Value);
        Assert.Contains(ccm.OfType<V1ClusterRole>(), r => r.Metadata.Name == "system:cloud-controller-manager");
        Assert.Contains(ccm.OfType<V1ClusterRoleBinding>(), r => r.Metadata.Name == "system:cloud-node-controller");
        var ds = ccm.OfType<V1DaemonSet>().Single();
        Assert.Equal("", ds.Spec.Template.Spec.NodeSelector["node-role.kubernetes.io/control-plane"]);
        var csi = Objects(addons[AddonRenderer.CinderCsiFile]);
        Assert.Equal(expected, csi.OfType<V1Deployment>().Single().Spec.Template.Spec.Containers.Single(c => c.Name == "cinder-csi-plugin")
            .Env.Single(e => e.Name == "CLUSTER_NAME").Value);
    }

    [Fact]
    public void Metrics_server_verifies_kubelet_certificates_and_uses_internal_ip()
    {
        var objects = Objects(Render(Values())[AddonRenderer.MetricsServerFile]);
        var args = Containers(objects).Single(c => c.Name == "metrics-server").Args;
        Assert.DoesNotContain(args, a => a.Contains("insecure", StringComparison.Ordinal));
        Assert.Contains("--kubelet-preferred-address-types=InternalIP", args);
        Assert.Single(objects.OfType<V1APIService>(), a => a.Metadata.Name == "v1beta1.metrics.k8s.io");
    }

    [Theory]
    [InlineData("cloud_provider_enabled", "false", AddonRenderer.CloudControllerManagerFile)]
    [InlineData("cinder_csi_enabled", "false", AddonRenderer.CinderCsiFile)]
    [InlineData("metrics_server_enabled", "False", AddonRenderer.MetricsServerFile)]
    public void A_label_set_to_false_removes_its_addon(string label, string value, string file)
    {
        Assert.Contains(file, Render(Values()).Keys);
        var files = Render(Values(labels: new() { [label] = value }));
        Assert.DoesNotContain(file, files.Keys);
        Assert.Equal(4, files.Count);
        Assert.Contains(AddonRenderer.CalicoFile, files.Keys);
    }

    [Fact]
    public void Without_cloud_or_with_both_cloud_addons_off_there_is_no_cloud_config()
    {
        Assert.Equal([AddonRenderer.CalicoFile, AddonRenderer.MetricsServerFile], Render(Values(noCloud: true)).Keys.Order());
        var off = Render(Values(labels: new() { ["cloud_provider_enabled"] = "false", ["cinder_csi_enabled"] = "false" }));
        Assert.Equal([AddonRenderer.CalicoFile, AddonRenderer.MetricsServerFile], off.Keys.Order());
        Assert.DoesNotContain(off.Values, a => a.Yaml.Contains("s3cr", StringComparison.Ordinal));
        // The CSI driver alone still needs the Secret.
        Assert.Contains(AddonRenderer.CloudConfigFile, Render(Values(labels: new() { ["cloud_provider_enabled"] = "false" })).Keys);
    }

    [Fact]
    public void Image_tags_follow_the_labels()
    {
        var labels = new Dictionary<string, string>
        {
            ["calico_tag"] = "v3.28.2", ["cloud_provider_tag"] = "v1.30.3", ["cinder_csi_plugin_tag"] = "v1.30.2",
            ["csi_attacher_tag"] = "v4.6.1", ["csi_node_driver_registrar_tag"] = "v2.11.1", ["metrics_server_tag"] = "v0.7.2",
        };
        var addons = Render(Values(labels: labels));
        Assert.All(Containers(Objects(addons[AddonRenderer.CalicoFile])), c => Assert.Equal("v3.28.2", TagOf(c.Image)));
        Assert.Equal("v3.28.2", addons[AddonRenderer.CalicoFile].Version);
        Assert.All(Containers(Objects(addons[AddonRenderer.CloudControllerManagerFile])), c => Assert.Equal("v1.30.3", TagOf(c.Image)));
        var csi = Containers(Objects(addons[AddonRenderer.CinderCsiFile])).ToList();
        Assert.All(csi.Where(c => c.Image.Contains("/cinder-csi-plugin:", StringComparison.Ordinal)), c => Assert.Equal("v1.30.2", TagOf(c.Image)));
        Assert.Equal(2, csi.Count(c => c.Image.Contains("/cinder-csi-plugin:", StringComparison.Ordinal)));
        Assert.Equal("v4.6.1", TagOf(csi.Single(c => c.Name == "csi-attacher").Image));
        Assert.Equal("v2.11.1", TagOf(csi.Single(c => c.Name == "node-driver-registrar").Image));
        Assert.Equal("v3.6.2", TagOf(csi.Single(c => c.Name == "csi-provisioner").Image)); // pinned upstream sidecar
        Assert.Equal("v0.7.2", TagOf(Containers(Objects(addons[AddonRenderer.MetricsServerFile])).Single().Image));

        var cilium = Containers(Objects(Render(Values("cilium", labels: new() { ["cilium_tag"] = "v1.18.9" }))[AddonRenderer.CiliumFile])).ToList();
        Assert.All(cilium, c => Assert.Equal("v1.18.9", TagOf(c.Image)));
        Assert.All(cilium, c => Assert.DoesNotContain("@sha256", c.Image));
        Assert.Contains(cilium, c => c.Image.Contains("/operator-generic:", StringComparison.Ordinal));

        var flannel = Containers(Objects(Render(Values("flannel", labels: new() { ["flannel_tag"] = "v0.27.4", ["flannel_cni_tag"] = "v1.7.1-flannel1" }))[AddonRenderer.FlannelFile])).ToList();
        Assert.Equal(["v0.27.4", "v0.27.4"], flannel.Where(c => c.Image.Contains("/flannel:", StringComparison.Ordinal)).Select(c => TagOf(c.Image)));
        Assert.Equal("v1.7.1-flannel1", TagOf(flannel.Single(c => c.Name == "install-cni-plugin").Image));
    }

    [Theory]
    [InlineData("v1.31.1", "v1.31.4")]
    [InlineData("1.33.0", "v1.33.1")]
    [InlineData("v1.30.2-rancher1", "v1.30.3")]
    [InlineData("v1.40.0", "v1.36.0")]
    [InlineData("v1.26.9", "v1.28.3")]
    public void Cloud_provider_images_default_to_the_kubernetes_minor(string kube, string tag)
    {
        var addons = Render(Values(kube: kube));
        Assert.All(Containers(Objects(addons[AddonRenderer.CloudControllerManagerFile])), c => Assert.Equal(tag, TagOf(c.Image)));
        Assert.Equal(tag, addons[AddonRenderer.CinderCsiFile].Version);
        Assert.Equal(tag, addons[AddonRenderer.CloudConfigFile].Version);
    }

    [Theory]
    [InlineData("NetworkDriver", "weave", null, null, null)]
    [InlineData("NetworkDriver", "", null, null, null)]
    [InlineData("PodCidr", "calico", "10.100.0.1/16", null, null)]
    [InlineData("PodCidr", "calico", "not-a-cidr", null, null)]
    [InlineData("PodCidr", "calico", "10.100.0.0", null, null)]
    [InlineData("PodCidr", "calico", "10.100.0.0/33", null, null)]
    [InlineData("PodCidr", "calico", "fd00:10::/56", null, null)]
    [InlineData("PodCidr", "calico", "10.254.0.0/24", null, null)]
    [InlineData("PodCidr", "cilium", "10.100.0.0/25", null, null)]
    [InlineData("PodCidr", "flannel", "10.100.0.0/25", null, null)]
    [InlineData("ServiceCidr", "calico", null, "10.254.0.0/99", null)]
    [InlineData("Labels", "calico", null, null, "calico_tag=latest")]
    [InlineData("Labels", "calico", null, null, "calico_tag=v3.29")]
    [InlineData("Labels", "calico", null, null, "calico_tag=v3.29.1;rm")]
    [InlineData("Labels", "flannel", null, null, "flannel_tag=0.28")]
    [InlineData("Labels", "cilium", null, null, "cilium_tag=v1.18.12 ")]
    [InlineData("Labels", "calico", null, null, "cinder_csi_plugin_tag=main")]
    [InlineData("Labels", "calico", null, null, "metrics_server_tag=v0.8.1@sha256:00")]
    [InlineData("Labels", "calico", null, null, "metrics_server_enabled=yes")]
    [InlineData("Labels", "calico", null, null, "calico_ipv4pool_ipip=Off")]
    [InlineData("Labels", "flannel", null, null, "flannel_backend=host-gw")]
    [InlineData("Labels", "flannel", null, null, "flannel_network_subnetlen=31")]
    [InlineData("Labels", "calico", null, null, "octavia_lb_algorithm=ROUND ROBIN")]
    public void Invalid_values_are_rejected_naming_the_field(string field, string driver, string? pods, string? services, string? label)
    {
        var labels = new Dictionary<string, string>();
        if (label is not null)
        {
            var eq = label.IndexOf('=');
            labels[label[..eq]] = label[(eq + 1)..];
        }
        var e = Assert.ThrowsAny<ArgumentException>(() => AddonRenderer.Render(Values(driver, pods ?? "10.100.0.0/16", services ?? "10.254.0.0/16", labels)));
        Assert.Equal(field, e.ParamName);
        if (label is not null) Assert.Contains(label[..label.IndexOf('=')], e.Message);
    }

    [Theory]
    [InlineData("v1")]
    [InlineData("v2.0.0")]
    [InlineData("latest")]
    public void An_unusable_kubernetes_version_is_rejected(string version)
    {
        var e = Assert.ThrowsAny<ArgumentException>(() => AddonRenderer.Render(Values(kube: version)));
        Assert.Equal("KubernetesVersion", e.ParamName);
    }

    [Fact]
    public void Cilium_refuses_kubernetes_older_than_its_manifest_supports()
    {
        var e = Assert.ThrowsAny<ArgumentException>(() => AddonRenderer.Render(Values("cilium", kube: "v1.29.4")));
        Assert.Equal("KubernetesVersion", e.ParamName);
        Assert.NotEmpty(AddonRenderer.Render(Values("calico", kube: "v1.29.4")));
    }

    [Fact]
    public void Network_driver_is_case_insensitive_and_accepted_tags_may_carry_a_suffix()
    {
        var addons = Render(Values("Flannel", labels: new() { ["flannel_tag"] = "v0.28.9-rc.1" }));
        Assert.Equal("v0.28.9-rc.1", addons[AddonRenderer.FlannelFile].Version);
    }

    // ------------------------------------------------------------------------------------------- helpers

    /// <summary>
    /// Compares YAML trees by meaning: mappings as key sets (a key whose value is null counts as absent, as the API
    /// server treats it), sequences in order, scalars by value with YAML 1.1 integers and booleans normalised.
    /// </summary>
    private static class YamlTree
    {
        public static YamlNode Parse(string yaml) => Documents(yaml).Single();

        public static List<YamlNode> Documents(string yaml)
        {
            var stream = new YamlStream();
            stream.Load(new StringReader(yaml));
            return stream.Documents.Select(d => d.RootNode).Where(n => n is YamlMappingNode).ToList();
        }

        private static bool IsNull(YamlNode n) =>
            n is YamlScalarNode { Style: ScalarStyle.Plain or ScalarStyle.Any } s && s.Value is null or "" or "~" or "null" or "Null" or "NULL";

        private static string Scalar(YamlScalarNode s)
        {
            var v = s.Value ?? "";
            if (s.Style is not (ScalarStyle.Plain or ScalarStyle.Any)) return v;
            if (Regex.IsMatch(v, "^0[0-7]+$")) return Convert.ToInt64(v, 8).ToString(CultureInfo.InvariantCulture);
            if (Regex.IsMatch(v, "^0o[0-7]+$")) return Convert.ToInt64(v[2..], 8).ToString(CultureInfo.InvariantCulture);
            if (v is "true" or "True" or "TRUE") return "true";
            if (v is "false" or "False" or "FALSE") return "false";
            if (Regex.IsMatch(v, @"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$"))
                return double.Parse(v, CultureInfo.InvariantCulture).ToString("R", CultureInfo.InvariantCulture);
            return v;
        }

        public static void Compare(YamlNode a, YamlNode b, string path, List<string> differences)
        {
            switch (a)
            {
                case YamlMappingNode ma when b is YamlMappingNode mb:
                    var ka = ma.Children.Where(kv => !IsNull(kv.Value)).ToDictionary(kv => kv.Key.ToString(), kv => kv.Value);
                    var kb = mb.Children.Where(kv => !IsNull(kv.Value)).ToDictionary(kv => kv.Key.ToString(), kv => kv.Value);
                    foreach (var k in ka.Keys.Except(kb.Keys)) differences.Add($"{path}.{k}: lost");
                    foreach (var k in kb.Keys.Except(ka.Keys)) differences.Add($"{path}.{k}: added");
                    foreach (var k in ka.Keys.Intersect(kb.Keys)) Compare(ka[k], kb[k], $"{path}.{k}", differences);
                    break;
                case YamlSequenceNode sa when b is YamlSequenceNode sb:
                    if (sa.Children.Count != sb.Children.Count) { differences.Add($"{path}: {sa.Children.Count} items became {sb.Children.Count}"); break; }
                    for (var i = 0; i < sa.Children.Count; i++) Compare(sa.Children[i], sb.Children[i], $"{path}[{i}]", differences);
                    break;
                case YamlScalarNode sa when b is YamlScalarNode sb:
                    if (Scalar(sa) != Scalar(sb)) differences.Add($"{path}: '{sa.Value}' became '{sb.Value}'");
                    break;
                default:
                    differences.Add($"{path}: {a.NodeType} became {b.NodeType}");
                    break;
            }
        }
    }

    /// <summary>The subset of gcfg (the INI dialect cloud-provider-openstack reads) that cloud.conf may use.</summary>
    private static class Gcfg
    {
        public static Dictionary<string, Dictionary<string, string>> Parse(string text)
        {
            var sections = new Dictionary<string, Dictionary<string, string>>();
            Dictionary<string, string>? current = null;
            foreach (var raw in text.Split('\n'))
            {
                var line = raw.Trim();
                if (line.Length == 0 || line[0] is ';' or '#') continue;
                if (line[0] == '[')
                {
                    Assert.EndsWith("]", line);
                    current = new Dictionary<string, string>();
                    sections.Add(line[1..^1], current);
                    continue;
                }
                Assert.NotNull(current);
                var eq = line.IndexOf('=');
                Assert.True(eq > 0, $"not a key=value line: {line}");
                var key = line[..eq].Trim();
                Assert.Matches("^[a-z0-9-]+$", key);
                current!.Add(key, Value(line[(eq + 1)..].Trim()));
            }
            return sections;
        }

        private static string Value(string v)
        {
            if (!v.StartsWith('"'))
            {
                Assert.DoesNotContain('"', v);
                var comment = v.IndexOfAny([';', '#']);
                return (comment < 0 ? v : v[..comment]).Trim();
            }
            var sb = new System.Text.StringBuilder();
            for (var i = 1; i < v.Length; i++)
            {
                var ch = v[i];
                if (ch == '\\')
                {
                    var next = v[++i];
                    sb.Append(next switch { 'n' => '\n', 't' => '\t', '\\' or '"' => next, _ => throw new FormatException($"bad escape \\{next}") });
                }
                else if (ch == '"')
                {
                    var rest = v[(i + 1)..].Trim();
                    Assert.True(rest.Length == 0 || rest[0] is ';' or '#', $"text after a quoted value: {rest}");
                    return sb.ToString();
                }
                else sb.Append(ch);
            }
            throw new FormatException("unterminated quoted value");
        }
    }
}
