using System.Diagnostics;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using Magnetar.Bootstrap;
using Magnetar.Bootstrap.Kubeadm;
using Magnetar.Bootstrap.Pki;
using Xunit.Abstractions;
using YamlDotNet.RepresentationModel;

namespace Magnetar.Tests;

/// <summary>
/// Every artefact a node consumes, checked by the tool that consumes it or against the consumer's published schema:
/// certificates by openssl, user-data by <c>cloud-init schema</c>, the node script by bash, kubeadm documents against
/// the field definitions extracted from kubeadm's Go types (Fixtures/kubeadm-schema).
/// </summary>
public sealed class BootstrapArtifactTests(ITestOutputHelper output)
{
    private static readonly CertificateAuthorityMaterial Ca = ClusterPki.CreateCertificateAuthority("c1", "00000000-0000-0000-0000-0000000000c1");

    // ---------------------------------------------------------------- PKI

    [Fact]
    public void Etcd_and_front_proxy_cas_are_cas_and_leaf_certificates_chain_to_them_with_openssl()
    {
        foreach (var name in new[] { "etcd-ca", "front-proxy-ca" })
        {
            var ca = ClusterPki.CreateNamedAuthority(name, "u1");
            using var caCert = X509Certificate2.CreateFromPem(ca.CertificatePem);
            Assert.Contains($"CN={name}", caCert.Subject);
            var bc = caCert.Extensions.OfType<X509BasicConstraintsExtension>().Single();
            Assert.True(bc.CertificateAuthority);
            Assert.True(caCert.Extensions.OfType<X509KeyUsageExtension>().Single().KeyUsages.HasFlag(X509KeyUsageFlags.KeyCertSign));
            var leaf = ClusterPki.IssueCertificate(ca, "front-proxy-client", [], CertificatePurpose.Client, null, TimeSpan.FromDays(30));
            Assert.Equal("OK", Fixtures.OpensslVerify(ca.CertificatePem, leaf.CertificatePem));
            Assert.NotEqual("OK", Fixtures.OpensslVerify(Ca.CertificatePem, leaf.CertificatePem)); // another CA: must not verify
        }
    }

    [Fact]
    public void Api_server_certificate_has_kubeadms_names_the_service_ip_and_the_public_addresses_and_serves_tls()
    {
        var names = ClusterPki.ApiServerNames("10.254.0.0/16", "cluster.local", ["203.0.113.10", "10.0.0.5", "api.example.org"]);
        var cert = ClusterPki.IssueCertificate(Ca, "kube-apiserver", [], CertificatePurpose.Server, names, TimeSpan.FromDays(365));
        Assert.Equal("OK", Fixtures.OpensslVerify(Ca.CertificatePem, cert.CertificatePem));
        using var x = X509Certificate2.CreateFromPem(cert.CertificatePem);
        var san = x.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single();
        var dns = san.EnumerateDnsNames().ToList();
        var ips = san.EnumerateIPAddresses().Select(i => i.ToString()).ToList();
        Assert.Equal(["kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "api.example.org"], dns);
        Assert.Equal(["10.254.0.1", "203.0.113.10", "10.0.0.5"], ips);
        var eku = x.Extensions.OfType<X509EnhancedKeyUsageExtension>().Single().EnhancedKeyUsages.Cast<System.Security.Cryptography.Oid>().Select(o => o.Value).ToList();
        Assert.Equal(["1.3.6.1.5.5.7.3.1"], eku);
        Assert.False(x.Extensions.OfType<X509BasicConstraintsExtension>().Single().CertificateAuthority);
        Assert.True(x.NotAfter <= X509Certificate2.CreateFromPem(Ca.CertificatePem).NotAfter);
        // openssl agrees it is fit for TLS serving under that name and IP.
        Assert.Equal("OK", OpensslVerifyPurpose(cert.CertificatePem, "sslserver", "-verify_ip", "203.0.113.10"));
        Assert.Equal("OK", OpensslVerifyPurpose(cert.CertificatePem, "sslserver", "-verify_hostname", "kubernetes.default.svc"));
        Assert.NotEqual("OK", OpensslVerifyPurpose(cert.CertificatePem, "sslserver", "-verify_ip", "198.51.100.1"));
        Assert.NotEqual("OK", OpensslVerifyPurpose(cert.CertificatePem, "sslclient"));
    }

    [Fact]
    public void A_joining_nodes_kubeconfig_carries_the_ca_and_a_short_lived_node_client_certificate_kubectl_reads()
    {
        var yaml = NodeCertificates.JoinKubeconfig(Ca, "https://203.0.113.10:6443", "c1", "c1-default-worker-3", TimeSpan.FromMinutes(120));
        var dir = Directory.CreateTempSubdirectory("join-").FullName;
        var file = Path.Combine(dir, "join.conf");
        File.WriteAllText(file, yaml);
        // kubectl (client-go's loader, as kubeadm's discovery uses) reads it; the server and CA are the cluster's.
        var (code, text) = Run("kubectl", ["--kubeconfig", file, "config", "view", "--raw", "-o", "json"]);
        Assert.True(code == 0, text);
        var view = JsonNode.Parse(text)!;
        Assert.Equal("https://203.0.113.10:6443", (string?)view["clusters"]![0]!["cluster"]!["server"]);
        Assert.Equal(Ca.CertificatePem, Encoding.ASCII.GetString(Convert.FromBase64String((string)view["clusters"]![0]!["cluster"]!["certificate-authority-data"]!)));
        var user = view["users"]![0]!["user"]!;
        var certPem = Encoding.ASCII.GetString(Convert.FromBase64String((string)user["client-certificate-data"]!));
        var keyPem = Encoding.ASCII.GetString(Convert.FromBase64String((string)user["client-key-data"]!));
        // The node's identity, fit for client auth only, under the cluster CA; the key belongs to the certificate.
        Assert.Equal("OK", OpensslVerifyPurpose(certPem, "sslclient"));
        Assert.NotEqual("OK", OpensslVerifyPurpose(certPem, "sslserver"));
        using var x = X509Certificate2.CreateFromPem(certPem, keyPem);
        Assert.Equal("O=system:nodes, CN=system:node:c1-default-worker-3", x.Subject);
        Assert.NotNull(x.GetECDsaPublicKey()); // P-256: a node's keys cost microseconds, not an RSA key's ≈ 130 ms
        Assert.InRange(x.NotAfter - DateTime.Now, TimeSpan.FromMinutes(110), TimeSpan.FromMinutes(121));
    }

    [Fact]
    public void A_kubelet_serving_certificate_names_the_node_and_its_cloud_addresses_and_nothing_else()
    {
        var cert = NodeCertificates.KubeletServing(Ca, "c1-default-worker-3", ["10.0.0.7", "203.0.113.57", "fd00::7", "not-an-ip"], TimeSpan.FromDays(365));
        Assert.Equal("OK", OpensslVerifyPurpose(cert.CertificatePem, "sslserver", "-verify_hostname", "c1-default-worker-3"));
        Assert.Equal("OK", OpensslVerifyPurpose(cert.CertificatePem, "sslserver", "-verify_ip", "10.0.0.7"));
        Assert.Equal("OK", OpensslVerifyPurpose(cert.CertificatePem, "sslserver", "-verify_ip", "203.0.113.57"));
        Assert.Equal("OK", OpensslVerifyPurpose(cert.CertificatePem, "sslserver", "-verify_ip", "fd00::7"));
        Assert.NotEqual("OK", OpensslVerifyPurpose(cert.CertificatePem, "sslserver", "-verify_ip", "10.0.0.8"));
        Assert.NotEqual("OK", OpensslVerifyPurpose(cert.CertificatePem, "sslserver", "-verify_hostname", "c1-default-worker-4"));
        Assert.NotEqual("OK", OpensslVerifyPurpose(cert.CertificatePem, "sslclient"));
        using var x = X509Certificate2.CreateFromPem(cert.CertificatePem, cert.PrivateKeyPem);
        Assert.Equal("O=system:nodes, CN=system:node:c1-default-worker-3", x.Subject);
        Assert.NotNull(x.GetECDsaPublicKey());
        // An ECDSA key only signs: digitalSignature, no keyEncipherment.
        Assert.Equal(X509KeyUsageFlags.DigitalSignature, x.Extensions.OfType<X509KeyUsageExtension>().Single().KeyUsages);
    }

    [Fact]
    public void Service_ip_is_the_first_host_of_the_service_cidr()
    {
        Assert.Equal(IPAddress.Parse("10.254.0.1"), ClusterPki.FirstHost("10.254.0.0/16"));
        Assert.Equal(IPAddress.Parse("10.96.0.1"), ClusterPki.FirstHost("10.96.0.0/12"));
        Assert.Equal(IPAddress.Parse("fd00::1"), ClusterPki.FirstHost("fd00::/108"));
        Assert.Throws<ArgumentException>(() => ClusterPki.FirstHost("10.254.0.0/40"));
    }

    [Fact]
    public void Ca_cert_hash_is_what_openssl_computes_for_kubeadm_discovery()
    {
        // kubeadm's documented way: openssl x509 -pubkey | openssl rsa -pubin -outform der | sha256
        var dir = Directory.CreateTempSubdirectory("cahash-").FullName;
        File.WriteAllText(Path.Combine(dir, "ca.crt"), Ca.CertificatePem);
        var r = Sh($"openssl x509 -pubkey -in '{dir}/ca.crt' -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -hex");
        var hex = r.Trim().Split(' ').Last();
        Assert.Equal("sha256:" + hex, ClusterPki.CaCertHash(Ca.CertificatePem));
    }

    [Fact]
    public void Service_account_key_pair_matches_with_openssl()
    {
        var sa = ClusterPki.CreateServiceAccountKey();
        var dir = Directory.CreateTempSubdirectory("sa-").FullName;
        File.WriteAllText(Path.Combine(dir, "sa.key"), sa.PrivateKeyPem);
        File.WriteAllText(Path.Combine(dir, "sa.pub"), sa.PublicKeyPem);
        var derived = Sh($"openssl pkey -in '{dir}/sa.key' -pubout");
        Assert.Equal(sa.PublicKeyPem.Trim(), derived.Trim());
    }

    // ---------------------------------------------------------------- kubeadm

    public static TheoryData<string, KubeadmRole> KubeadmCases()
    {
        var d = new TheoryData<string, KubeadmRole>();
        foreach (var v in new[] { "v1.31.1", "v1.32.0", "v1.29.6", "v1.30.2" })
            foreach (var r in Enum.GetValues<KubeadmRole>()) d.Add(v, r);
        return d;
    }

    private static KubeadmInputs Inputs(string version, KubeadmRole role, bool cloud = true) => new(
        "c1", version, "203.0.113.10:6443", ["203.0.113.10", "10.0.0.5"], "10.100.0.0/16", "10.254.0.0/16", "cluster.local",
        "c1-default-master-0", role, role == KubeadmRole.Init ? "abcdef.0123456789abcdef" : null, cloud);

    [Theory]
    [MemberData(nameof(KubeadmCases))]
    public void Kubeadm_documents_match_kubeadms_own_schema_for_their_version_and_read_back_strictly(string version, KubeadmRole role)
    {
        var yaml = KubeadmConfigRenderer.Render(Inputs(version, role));
        var group = KubeadmConfigRenderer.ApiVersionFor(version);
        Assert.Equal(int.Parse(version.Split('.')[1]) >= 31 ? KubeadmVersions.V1Beta4 : KubeadmVersions.V1Beta3, group);

        var kinds = CheckKubeadmSchemas(yaml, "");
        Assert.Equal(role == KubeadmRole.Init ? ["InitConfiguration", "ClusterConfiguration", "KubeletConfiguration"] : ["JoinConfiguration", "KubeletConfiguration"], kinds);

        // Values consistent with the PKI and the cluster.
        var docs = KubeadmConfigRenderer.Parse(yaml);
        // Every kubelet serves with the certificate Magnetar put in its bundle (the cluster-wide KubeletConfiguration).
        var kubelet = Assert.IsType<KubeletConfiguration>(docs[^1]);
        Assert.Equal("/var/lib/kubelet/pki/kubelet-serving.crt", kubelet.TlsCertFile);
        Assert.Equal("/var/lib/kubelet/pki/kubelet-serving.key", kubelet.TlsPrivateKeyFile);
        Assert.DoesNotContain("abcdef", role == KubeadmRole.Init ? "" : yaml); // joins carry no bootstrap token
        switch (docs[0])
        {
            case Bootstrap.Kubeadm.V1Beta4.InitConfiguration init:
                var cc4 = (Bootstrap.Kubeadm.V1Beta4.ClusterConfiguration)docs[1];
                Assert.Equal("203.0.113.10:6443", cc4.ControlPlaneEndpoint);
                Assert.Equal(["203.0.113.10", "10.0.0.5"], cc4.ApiServer!.CertSANs);
                Assert.Equal("10.100.0.0/16", cc4.Networking!.PodSubnet);
                Assert.Equal(version, cc4.KubernetesVersion);
                Assert.Contains(cc4.ControllerManager!.ExtraArgs!, a => a is { Name: "cloud-provider", Value: "external" });
                Assert.Equal("abcdef.0123456789abcdef", init.BootstrapTokens!.Single().Token);
                Assert.Contains(init.NodeRegistration!.KubeletExtraArgs!, a => a is { Name: "cloud-provider", Value: "external" });
                break;
            case Bootstrap.Kubeadm.V1Beta4.JoinConfiguration join:
                // File discovery with the node's own client certificate, no bootstrap token to expire.
                Assert.Null(join.Discovery!.BootstrapToken);
                Assert.Null(join.Discovery.TlsBootstrapToken);
                Assert.Equal("/etc/kubernetes/magnetar/join.conf", join.Discovery.File!.KubeConfigPath);
                Assert.Equal(role == KubeadmRole.JoinControlPlane, join.ControlPlane is not null);
                break;
            case Bootstrap.Kubeadm.V1Beta3.InitConfiguration init3:
                var cc3 = (Bootstrap.Kubeadm.V1Beta3.ClusterConfiguration)docs[1];
                Assert.Equal("203.0.113.10:6443", cc3.ControlPlaneEndpoint);
                Assert.Equal("external", cc3.ControllerManager!.ExtraArgs!["cloud-provider"]);
                Assert.Equal("external", init3.NodeRegistration!.KubeletExtraArgs!["cloud-provider"]);
                break;
            case Bootstrap.Kubeadm.V1Beta3.JoinConfiguration join3:
                Assert.Null(join3.Discovery!.BootstrapToken);
                Assert.Equal("/etc/kubernetes/magnetar/join.conf", join3.Discovery.File!.KubeConfigPath);
                Assert.Equal(role == KubeadmRole.JoinControlPlane, join3.ControlPlane is not null);
                break;
            default:
                Assert.Fail("unexpected first document " + docs[0].GetType());
                break;
        }
    }

    [Fact]
    public void Schema_check_and_strict_parse_reject_unknown_and_mistyped_fields()
    {
        var yaml = KubeadmConfigRenderer.Render(Inputs("v1.31.1", KubeadmRole.Worker));
        // A v1beta3-style map where v1beta4 wants a list of {name, value}, and a field kubeadm does not have.
        var bad = yaml.Replace("  kubeletExtraArgs:\n  - name: cloud-provider\n    value: external\n", "  kubeletExtraArgs:\n    cloud-provider: external\n")
            .Replace("caCertPath", "caCertPathh");
        Assert.NotEqual(yaml, bad);
        var join = KubeadmConfigRenderer.SplitDocuments(bad).First();
        var stream = new YamlStream();
        stream.Load(new StringReader(join));
        var errors = new List<string>();
        CheckAgainstSchema(Schema("kubeadm-v1beta4.json"), "JoinConfiguration", (YamlMappingNode)stream.Documents[0].RootNode, "JoinConfiguration", errors);
        Assert.Contains(errors, e => e.Contains("kubeletExtraArgs"));
        Assert.ThrowsAny<Exception>(() => KubeadmConfigRenderer.Parse(yaml + "---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\nbogus: 1\n"));
        Assert.Throws<ArgumentException>(() => KubeadmConfigRenderer.Render(Inputs("v1.31.1", KubeadmRole.Init) with { BootstrapToken = "not-a-token" }));
        Assert.Throws<ArgumentException>(() => KubeadmConfigRenderer.Render(Inputs("v1.21.0", KubeadmRole.Worker)));
        Assert.Throws<ArgumentException>(() => KubeadmConfigRenderer.Render(Inputs("latest", KubeadmRole.Worker)));
    }

    [Fact]
    public void Without_a_cloud_provider_no_external_cloud_provider_flags_are_set()
    {
        var yaml = KubeadmConfigRenderer.Render(Inputs("v1.31.1", KubeadmRole.Init, cloud: false));
        Assert.DoesNotContain("cloud-provider", yaml);
    }

    // ---------------------------------------------------------------- cloud-init user-data

    private static NodeBootstrapContext Context(KubeadmRole role, string packages = PackageSources.Upstream, string? ca = null) => new(
        "00000000-0000-0000-0000-0000000000c1", "c1", role == KubeadmRole.Worker ? "default-worker" : "default-master",
        role == KubeadmRole.Worker ? "c1-default-worker-0" : "c1-default-master-0", role, "v1.31.1",
        "https://magnetar.example.org:9512", "mgb1.0123456789abcdef.c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlYw", ca, packages);

    [Fact]
    public void User_data_of_every_role_passes_cloud_init_schema_and_fits_novas_limit()
    {
        var renderer = new CloudInitUserDataRenderer();
        foreach (var role in Enum.GetValues<KubeadmRole>())
            foreach (var packages in new[] { PackageSources.Upstream, PackageSources.Image })
                foreach (var ca in new[] { null, Ca.CertificatePem })
                {
                    var userData = renderer.Render(Context(role, packages, ca));
                    var (code, text) = CloudInitSchema(userData);
                    Assert.True(code == 0, $"cloud-init schema rejected the {role} user-data ({packages}, ca={ca is not null}):\n{text}\n---\n{userData}");
                    var size = Encoding.UTF8.GetByteCount(userData);
                    var nova = CloudInitUserDataRenderer.NovaSize(userData);
                    Assert.True(nova < CloudInitUserDataRenderer.NovaUserDataLimit, $"{nova} bytes base64");
                    output.WriteLine($"user-data {role,-16} packages={packages,-8} ca={(ca is null ? "no " : "yes")}: {size} bytes, {nova} bytes as Nova counts (base64)");
                }
    }

    [Fact]
    public void Cloud_init_schema_check_can_fail()
    {
        var (code, text) = CloudInitSchema("#cloud-config\nwrite_files:\n  - content: no path given\nruncmd: 5\n");
        Assert.True(code != 0, text);
    }

    [Fact]
    public void User_data_holds_no_secret_but_the_single_use_credential_and_its_script_is_valid_bash()
    {
        var ctx = Context(KubeadmRole.Init, ca: Ca.CertificatePem);
        var userData = new CloudInitUserDataRenderer().Render(ctx);
        Assert.DoesNotContain("PRIVATE KEY", userData);
        Assert.Contains(ctx.FetchToken, userData);
        var doc = new YamlStream();
        doc.Load(new StringReader(userData));
        var root = (YamlMappingNode)doc.Documents[0].RootNode;
        var files = ((YamlSequenceNode)root["write_files"]).Cast<YamlMappingNode>()
            .ToDictionary(f => ((YamlScalarNode)f["path"]).Value!, f => (Content: ((YamlScalarNode)f["content"]).Value!, Mode: ((YamlScalarNode)f["permissions"]).Value!));
        Assert.Equal("0600", files["/etc/magnetar/bootstrap-token"].Mode);
        Assert.Equal(ctx.FetchToken, files["/etc/magnetar/bootstrap-token"].Content.Trim());
        Assert.Contains("MAGNETAR_ROLE=init", files["/etc/magnetar/node.env"].Content);
        Assert.Equal(CloudInitUserDataRenderer.NodeScript, files[CloudInitUserDataRenderer.NodeScriptPath].Content);
        Assert.Equal(Ca.CertificatePem.Trim(), files["/etc/magnetar/magnetar-ca.pem"].Content.Trim());
        Assert.Equal("c1-default-master-0", ((YamlScalarNode)root["hostname"]).Value);

        var dir = Directory.CreateTempSubdirectory("node-script-").FullName;
        var script = Path.Combine(dir, "magnetar-node");
        File.WriteAllText(script, files[CloudInitUserDataRenderer.NodeScriptPath].Content);
        var (code, text) = Run("bash", ["-n", script]);
        Assert.True(code == 0, text);
        Assert.True(File.Exists("/usr/bin/shellcheck"), "shellcheck is not installed (scripts/test installs Debian's shellcheck)");
        (code, text) = Run("shellcheck", [script]);
        Assert.True(code == 0, text);
        Assert.Throws<ArgumentException>(() => new CloudInitUserDataRenderer().Render(ctx with { BootstrapUrl = "magnetar:9512" }));
    }

    // ---------------------------------------------------------------- helpers

    /// <summary>
    /// Checks every document of a rendered kubeadm configuration against kubeadm's Go-type schema of its apiVersion
    /// (failing with <paramref name="context"/> and the errors) and returns the documents' kinds in order.
    /// </summary>
    internal static List<string> CheckKubeadmSchemas(string yaml, string context)
    {
        var schemas = new Dictionary<string, JsonObject>
        {
            [KubeadmVersions.V1Beta4] = Schema("kubeadm-v1beta4.json"),
            [KubeadmVersions.V1Beta3] = Schema("kubeadm-v1beta3.json"),
            ["kubelet.config.k8s.io/v1beta1"] = Schema("kubelet-v1beta1.json"),
        };
        var kinds = new List<string>();
        foreach (var doc in KubeadmConfigRenderer.SplitDocuments(yaml))
        {
            var stream = new YamlStream();
            stream.Load(new StringReader(doc));
            var root = (YamlMappingNode)stream.Documents[0].RootNode;
            var apiVersion = ((YamlScalarNode)root["apiVersion"]).Value!;
            var kind = ((YamlScalarNode)root["kind"]).Value!;
            kinds.Add(kind);
            var schema = schemas[apiVersion];
            Assert.Equal(apiVersion, schema["group"]!.GetValue<string>());
            var errors = new List<string>();
            CheckAgainstSchema(schema, kind, root, kind, errors);
            Assert.True(errors.Count == 0, $"{context}{apiVersion} {kind}:\n{string.Join("\n", errors)}\n---\n{doc}");
        }
        return kinds;
    }

    private static JsonObject Schema(string file)
        => JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "kubeadm-schema", file)))!.AsObject();

    /// <summary>Checks a YAML node against a type of the extracted Go schema; appends a message per mismatch.</summary>
    internal static void CheckAgainstSchema(JsonObject schema, string type, YamlNode node, string path, List<string> errors)
    {
        if (type.StartsWith("[]"))
        {
            if (node is not YamlSequenceNode seq) { errors.Add($"{path}: expected a list ({type})"); return; }
            var i = 0;
            foreach (var item in seq) CheckAgainstSchema(schema, type[2..], item, $"{path}[{i++}]", errors);
            return;
        }
        if (type.StartsWith("map[string]"))
        {
            if (node is not YamlMappingNode map) { errors.Add($"{path}: expected a map ({type})"); return; }
            foreach (var (k, v) in map) CheckAgainstSchema(schema, type["map[string]".Length..], v, $"{path}.{k}", errors);
            return;
        }
        switch (type)
        {
            case "string" or "duration" or "time" or "quantity":
                if (node is not YamlScalarNode) errors.Add($"{path}: expected a scalar ({type})");
                return;
            case "bool":
                if (node is not YamlScalarNode b || !bool.TryParse(b.Value, out _)) errors.Add($"{path}: expected a bool");
                return;
            case "int":
                if (node is not YamlScalarNode n || !long.TryParse(n.Value, out _)) errors.Add($"{path}: expected an integer");
                return;
            case "object":
                return;
        }
        var def = schema["types"]![type]?.AsObject();
        if (def is null) { errors.Add($"{path}: type {type} is not in the schema"); return; }
        if (node is not YamlMappingNode mapping) { errors.Add($"{path}: expected an object ({type})"); return; }
        var fields = def["fields"]!.AsObject();
        foreach (var (k, v) in mapping)
        {
            var key = ((YamlScalarNode)k).Value!;
            if (!fields.TryGetPropertyValue(key, out var field)) { errors.Add($"{path}.{key}: {type} has no field '{key}'"); continue; }
            CheckAgainstSchema(schema, field!["type"]!.GetValue<string>(), v, $"{path}.{key}", errors);
        }
    }

    private static (int, string) CloudInitSchema(string userData)
    {
        var file = Path.Combine(Directory.CreateTempSubdirectory("cloud-init-").FullName, "user-data");
        File.WriteAllText(file, userData);
        Assert.True(File.Exists("/usr/bin/cloud-init"), "cloud-init is not installed (scripts/test installs Debian's cloud-init)");
        return Run("cloud-init", ["schema", "--config-file", file]);
    }

    private static string OpensslVerifyPurpose(string certPem, string purpose, params string[] extra)
        => Fixtures.OpensslVerify(Ca.CertificatePem, certPem, ["-purpose", purpose, .. extra]);

    private static string Sh(string command)
    {
        var (code, text) = Run("bash", ["-c", command]);
        Assert.True(code == 0, text);
        return text;
    }

    internal static (int, string) Run(string file, IEnumerable<string> args, IDictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result + stderr.Result);
    }
}
