using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using Magnetar.Bootstrap.Pki;

namespace Magnetar.Tests;

/// <summary>
/// CA rotation on a running cluster (<c>PATCH /v1/certificates</c>) and certificate renewals, played by test nodes: each node's agent
/// (<c>magnetar-node task</c>, what magnetar-node-agent.timer runs) asks Magnetar for its step, carries it out on the
/// files kubeadm would have left on it, and reports. kubeadm, systemctl and kubectl's API-server calls are stand-ins
/// that log what they were asked (no such binaries or cluster here); every certificate is checked with openssl, every
/// kubeconfig the script edited is read back by the real kubectl, and kubelet.conf is used by it against stand-in API
/// servers that accept exactly the client CAs a node's ca.crt names. Magnetar is SIGKILLed mid-rotation once.
/// </summary>
public sealed partial class NodeBootstrapTests
{
    private sealed record Node(string Name, string Role, TestNode Files);

    [Fact]
    public async Task Ca_rotation_and_certificate_renewals_reach_every_node_through_its_agent()
    {
        var r1 = await CreateCluster("r1", masters: 2, workers: 2);
        var booted = await BringUp(r1, 4);
        var nodes = booted.Select(b => new Node(b.Key, b.Value.File("etc/magnetar/node.env").Split('\n').Single(l => l.StartsWith("MAGNETAR_ROLE=")).Split('=')[1], b.Value))
            .OrderBy(n => n.Role == "init" ? 0 : n.Role == "worker" ? 2 : 1).ThenBy(n => n.Name, StringComparer.Ordinal).ToList();
        var init = nodes[0];
        Assert.Equal("init", init.Role);
        var oldCaPem = await CaPem(r1);
        var oldCa = new CertificateAuthorityMaterial(init.Files.File("etc/kubernetes/pki/ca.crt"), init.Files.File("etc/kubernetes/pki/ca.key"));
        Assert.Equal(Thumbprints(oldCaPem), Thumbprints(oldCa.CertificatePem));
        var stubs = WriteStubs(oldCa);
        foreach (var n in nodes) LayOutKubeadmFiles(n, oldCa);
        var oldAdmin = ClientCertificate(init, "etc/kubernetes/admin.conf");
        var kubeBefore = await ClusterConfig("r1", "-before");

        // ---- the rotation starts: UPDATE_IN_PROGRESS as Magnum's; the API now hands out both CAs.
        Assert.Equal(r1, (await Api(HttpMethod.Patch, $"/v1/certificates/{r1}", null, HttpStatusCode.Accepted))["uuid"]!.GetValue<string>());
        var show = await Api(HttpMethod.Get, $"/v1/clusters/{r1}", null, HttpStatusCode.OK);
        Assert.Equal("UPDATE_IN_PROGRESS", show["status"]!.GetValue<string>());
        var both = await CaPem(r1);
        Assert.Equal(2, Thumbprints(both).Count);
        Assert.Equal(Thumbprints(oldCaPem)[0], Thumbprints(both)[0]);
        var newCaThumb = Thumbprints(both)[1];
        // Nothing may change the cluster's nodes while its CA is between two states.
        await Api(HttpMethod.Post, $"/v1/clusters/{r1}/actions/resize", new JsonObject { ["node_count"] = 3 }, HttpStatusCode.BadRequest);

        // ---- step 1, trust: every node's ca.crt and kubeconfigs trust both CAs; control-plane nodes still sign with the old one.
        await RunStep(nodes, "trust", stubs);
        foreach (var n in nodes)
        {
            Assert.Equal([Thumbprints(oldCaPem)[0], newCaThumb], Thumbprints(n.Files.File("etc/kubernetes/pki/ca.crt")));
            foreach (var conf in Kubeconfigs(n)) Assert.Equal([Thumbprints(oldCaPem)[0], newCaThumb], KubeconfigCaThumbprints(n.Files.File(conf)));
            var log = n.Files.File("stub.log");
            Assert.Contains("systemctl restart kubelet", log);
            if (n.Role != "worker")
            {
                Assert.Equal(Pub(n.Files.Path("etc/kubernetes/pki/ca.key")), Pub(n.Files.Path("etc/kubernetes/pki/ca.crt"), cert: true)); // the first certificate is ca.key's
                Assert.True(File.Exists(n.Files.Path("etc/kubernetes/manifests/kube-apiserver.yaml")), "the static pod manifests are back");
                Assert.Contains("get --raw /readyz", log);
            }
        }
        await WaitFor(r1, c => c["status_reason"]!.GetValue<string>().Contains("step reissue"));
        // Every node trusts the new CA now: client certificates come from it (the old CA's would die with the rotation).
        var kubeDuring = await ClusterConfig("r1", "-during");
        var (duringCa, duringCert) = KubeconfigCredentials(File.ReadAllText(kubeDuring));
        Assert.Equal([Thumbprints(oldCaPem)[0], newCaThumb], Thumbprints(duringCa));

        // ---- step 2, reissue: control-plane nodes take the new CA key and renew with kubeadm; every kubelet gets new certificates.
        // Magnetar is SIGKILLed and restarted once the first control-plane node is through: the rotation carries on.
        await RunStep(nodes, "reissue", stubs, afterFirst: async () =>
        {
            await _server!.KillAsync();
            await _server.StartAsync();
        });
        var newCa = new CertificateAuthorityMaterial(init.Files.File("etc/kubernetes/pki/ca.crt"), init.Files.File("etc/kubernetes/pki/ca.key"));
        Assert.Equal(newCaThumb, Thumbprints(newCa.CertificatePem)[0]);
        var newCaPem = CertPem(newCa.CertificatePem, 0);
        Assert.Equal("OK", Fixtures.OpensslVerify(newCaPem, duringCert, "-purpose", "sslclient"));
        // The lead restarted the workloads once the controller managers published both CAs, before any API server changed certificates.
        var initLog = init.Files.File("stub.log");
        Assert.Contains("-n kube-system get configmap kube-root-ca.crt", initLog);
        Assert.Contains("-n kube-system rollout restart deployment", initLog);
        Assert.True(initLog.IndexOf("rollout restart", StringComparison.Ordinal) < initLog.IndexOf("kubeadm certs renew all", StringComparison.Ordinal));
        Assert.DoesNotContain("rollout restart", nodes[1].Files.File("stub.log"));
        await using var serveOld = await ApiServerStandIn.StartAsync(oldCa, clientCaPem: both);
        await using var serveNew = await ApiServerStandIn.StartAsync(newCa, clientCaPem: both);
        foreach (var n in nodes)
        {
            Assert.Equal([newCaThumb, Thumbprints(oldCaPem)[0]], Thumbprints(n.Files.File("etc/kubernetes/pki/ca.crt")));
            if (n.Role != "worker")
            {
                Assert.Contains("kubeadm certs renew all", n.Files.File("stub.log"));
                Assert.Equal(Pub(n.Files.Path("etc/kubernetes/pki/ca.key")), Pub(n.Files.Path("etc/kubernetes/pki/ca.crt"), cert: true));
                Assert.Equal("600", Mode(n.Files.Path("etc/kubernetes/pki/ca.key")));
            }
            else Assert.False(File.Exists(n.Files.Path("etc/kubernetes/pki/ca.key")), "a worker never receives a CA key");
            // The kubelet's client certificate (kubelet.conf now names the file) and serving certificate are the new CA's.
            var kubelet = ReadKubeconfig(n.Files.File("etc/kubernetes/kubelet.conf")).Users.Single().UserCredentials;
            Assert.Equal(("/var/lib/kubelet/pki/kubelet-client-current.pem", "/var/lib/kubelet/pki/kubelet-client-current.pem", null, null),
                (kubelet.ClientCertificate, kubelet.ClientKey, kubelet.ClientCertificateData, kubelet.ClientKeyData));
            var client = n.Files.File("var/lib/kubelet/pki/kubelet-client-current.pem");
            Assert.Equal("OK", Fixtures.OpensslVerify(newCaPem, CertPem(client, 0), "-purpose", "sslclient"));
            Assert.Equal($"O=system:nodes, CN=system:node:{n.Name}", Fixtures.Subject(CertPem(client, 0)));
            Assert.Equal("600", Mode(n.Files.Path("var/lib/kubelet/pki/kubelet-client-current.pem")));
            Assert.Equal("OK", Fixtures.OpensslVerify(newCaPem, n.Files.File("var/lib/kubelet/pki/kubelet-serving.crt"), "-purpose", "sslserver", "-verify_hostname", n.Name));
            Assert.Equal(Pub(n.Files.Path("var/lib/kubelet/pki/kubelet-serving.key")), Pub(n.Files.Path("var/lib/kubelet/pki/kubelet-serving.crt"), cert: true));
            // Mid-rotation, a kubelet reaches API servers of either certificate, and both accept it.
            foreach (var server in new[] { serveOld, serveNew })
            {
                var (rc, output) = KubectlAs(n, "etc/kubernetes/kubelet.conf", server.Url);
                Assert.True(rc == 0, $"{n.Name}'s kubelet.conf mid-rotation: {output}");
            }
        }
        Assert.Equal($"O=system:nodes, CN=system:node:{nodes[^1].Name}", serveNew.Clients.Last());
        await WaitFor(r1, c => c["status_reason"]!.GetValue<string>().Contains("step finish"));

        // ---- step 3, finish: the old CA is trusted nowhere; cluster-info carries the new one.
        await RunStep(nodes, "finish", stubs);
        show = await WaitFor(r1, c => c["status"]!.GetValue<string>() != "UPDATE_IN_PROGRESS");
        Assert.Equal("UPDATE_COMPLETE", show["status"]!.GetValue<string>());
        Assert.Equal("CA rotation completed: the cluster's 4 node(s) trust only the new CA", show["status_reason"]!.GetValue<string>());
        Assert.Equal([newCaThumb], Thumbprints(await CaPem(r1)));
        Assert.Equal(1L, Scalar($"SELECT COUNT(*) FROM cluster_cas WHERE ClusterUuid = '{r1}' AND CaType LIKE 'kubernetes%'"));
        var clusterInfo = k8s.KubernetesYaml.Deserialize<k8s.Models.V1ConfigMap>(init.Files.File("applied.yaml"));
        Assert.Equal(("cluster-info", "kube-public"), (clusterInfo.Metadata.Name, clusterInfo.Metadata.NamespaceProperty));
        Assert.Equal([newCaThumb], KubeconfigCaThumbprints(clusterInfo.Data["kubeconfig"]));
        Assert.Contains("server: https://10.0.0.10:6443", clusterInfo.Data["kubeconfig"]);
        Assert.False(File.Exists(nodes[1].Files.Path("applied.yaml")), "only the lead publishes cluster-info");
        await using var finished = await ApiServerStandIn.StartAsync(newCa, clientCaPem: newCaPem);
        await using var oldServer = await ApiServerStandIn.StartAsync(oldCa, clientCaPem: newCaPem);
        foreach (var n in nodes)
        {
            Assert.Equal([newCaThumb], Thumbprints(n.Files.File("etc/kubernetes/pki/ca.crt")));
            foreach (var conf in Kubeconfigs(n))
            {
                Assert.Equal([newCaThumb], KubeconfigCaThumbprints(n.Files.File(conf)));
                var (viewRc, view) = BootstrapArtifactTests.Run("kubectl", ["config", "view", "--raw", "--kubeconfig", n.Files.Path(conf)]);
                Assert.True(viewRc == 0, $"kubectl cannot read {n.Name}'s {conf}: {view}");
                Assert.Contains("certificate-authority-data: " + Convert.ToBase64String(System.Text.Encoding.ASCII.GetBytes(File.ReadAllText(n.Files.Path("etc/kubernetes/pki/ca.crt")))), view);
            }
            var (rc, output) = KubectlAs(n, "etc/kubernetes/kubelet.conf", finished.Url);
            Assert.True(rc == 0, $"{n.Name}'s kubelet.conf after the rotation: {output}");
            (rc, output) = KubectlAs(n, "etc/kubernetes/kubelet.conf", oldServer.Url);
            Assert.True(rc != 0, $"{n.Name} still trusts a server of the old CA: {output}");
            Assert.False(Directory.Exists(n.Files.Path("etc/magnetar/task")), "the task's files (the CA key) are removed");
        }
        // The kubeconfig of before the rotation is refused now; the one issued mid-rotation works.
        var (code, text) = BootstrapArtifactTests.Run("kubectl", ["--kubeconfig", kubeBefore, "--server", finished.Url, "get", "--raw", "/version"]);
        Assert.True(code != 0, "a kubeconfig of the old CA still works: " + text);
        (code, text) = BootstrapArtifactTests.Run("kubectl", ["--kubeconfig", kubeDuring, "--server", finished.Url, "get", "--raw", "/version"]);
        Assert.True(code == 0, "the kubeconfig issued mid-rotation: " + text);
        Assert.NotEqual("OK", Fixtures.OpensslVerify(newCaPem, oldAdmin, "-purpose", "sslclient"));
        // Events name each node's step, in the order they happened: control-plane nodes one at a time, then the workers.
        var order = Strings($"SELECT Message FROM cluster_events WHERE ClusterUuid = '{r1}' AND Reason = 'NodeCaRotation' ORDER BY Id");
        Assert.Equal(CaRotationOrder(nodes), order);

        // ---- a failing step stops the rotation with the node's own words; rotating again resumes it, with the same new CA.
        var rotated = Thumbprints(await CaPem(r1))[0];
        await Api(HttpMethod.Patch, $"/v1/certificates/{r1}", null, HttpStatusCode.Accepted);
        var next = Thumbprints(await CaPem(r1))[1];
        var (failCode, failText) = await init.Files.RunWith(StubEnv(stubs, failSystemctl: true), "task");
        Assert.Equal(5, failCode);
        show = await WaitFor(r1, c => c["status"]!.GetValue<string>() != "UPDATE_IN_PROGRESS");
        Assert.Equal("UPDATE_FAILED", show["status"]!.GetValue<string>());
        var reason = show["status_reason"]!.GetValue<string>();
        Assert.StartsWith($"CA rotation stopped at step trust: node {init.Name} (init) failed at step trust with exit code 5; last log lines:\n", reason);
        Assert.Contains("Job for kubelet.service failed", reason);
        Assert.Contains("rotating the CA again resumes at this step", reason);
        var refused = await Api(HttpMethod.Post, $"/v1/clusters/{r1}/actions/resize", new JsonObject { ["node_count"] = 3 }, HttpStatusCode.BadRequest);
        Assert.Contains("unfinished CA rotation (stopped at step trust)", refused["errors"]![0]!["detail"]!.GetValue<string>());
        await Api(HttpMethod.Patch, $"/v1/certificates/{r1}", null, HttpStatusCode.Accepted);
        Assert.StartsWith("CA rotation resumed at step trust by ", Strings($"SELECT Message FROM cluster_events WHERE ClusterUuid = '{r1}' AND Reason = 'CaRotation' ORDER BY Id").Last());
        Assert.Equal([rotated, next], Thumbprints(await CaPem(r1)));
        // Nobody answers: the step times out, naming whom it waited for.
        show = await WaitFor(r1, c => c["status"]!.GetValue<string>() != "UPDATE_IN_PROGRESS", RotationStepTimeoutSeconds + 60);
        Assert.Equal("UPDATE_FAILED", show["status"]!.GetValue<string>());
        Assert.StartsWith($"CA rotation stopped at step trust: no node completed it within {RotationStepTimeoutSeconds} seconds; waiting for {init.Name}",
            show["status_reason"]!.GetValue<string>());
        await Api(HttpMethod.Patch, $"/v1/certificates/{r1}", null, HttpStatusCode.Accepted);
        foreach (var step in new[] { "trust", "reissue", "finish" })
        {
            foreach (var n in nodes) File.Delete(n.Files.Path($"var/log/magnetar/ca-{step}.log"));
            await RunStep(nodes, step, stubs);
            if (step != "finish") await WaitFor(r1, c => c["status_reason"]!.GetValue<string>().Contains("step " + CaRotationNext(step)));
        }
        show = await WaitFor(r1, c => c["status"]!.GetValue<string>() != "UPDATE_IN_PROGRESS");
        Assert.Equal("UPDATE_COMPLETE", show["status"]!.GetValue<string>());
        Assert.Equal([next], Thumbprints(await CaPem(r1)));
        foreach (var n in nodes) Assert.Equal([next], Thumbprints(n.Files.File("etc/kubernetes/pki/ca.crt")));

        // ---- the kubelet does not renew a serving certificate it was given: the agent is handed a new one when a third
        // of its validity is left (the database is moved 265 days on for one worker; nobody else is due).
        var worker = nodes[^1];
        var servingBefore = worker.Files.File("var/lib/kubelet/pki/kubelet-serving.crt");
        string Renewed(Node n) => n.Files.Path("var/log/magnetar/kubelet-serving-renewed.log");
        foreach (var n in nodes) Assert.Equal(0, (await n.Files.RunWith(StubEnv(stubs), "task")).Item1);
        Assert.All(nodes, n => Assert.False(File.Exists(Renewed(n)), $"{n.Name} renewed a certificate that is not due"));
        static long In(int days) => (long)new Microsoft.EntityFrameworkCore.Storage.ValueConversion.DateTimeOffsetToBinaryConverter().ConvertToProvider(DateTimeOffset.UtcNow.AddDays(days))!;
        Execute($"UPDATE node_states SET ServingCertificateExpiresAt = {In(100)} WHERE ClusterUuid = '{r1}' AND NodeName = '{worker.Name}'");
        // The first attempt fails (the kubelet does not restart): a Warning event, and the renewal is still due.
        Assert.Equal(5, (await worker.Files.RunWith(StubEnv(stubs, failSystemctl: true), "task")).Item1);
        Assert.Equal($"node {worker.Name}: renewing the kubelet serving certificate failed with exit code 5: Job for kubelet.service failed because the control process exited with error code.",
            Strings($"SELECT Message FROM cluster_events WHERE ClusterUuid = '{r1}' AND Reason = 'KubeletServingCertificate' AND Type = 'Warning'").Single());
        File.Delete(Renewed(worker));
        foreach (var n in nodes) Assert.Equal(0, (await n.Files.RunWith(StubEnv(stubs), "task")).Item1);
        Assert.All(nodes, n => Assert.Equal(n == worker, File.Exists(Renewed(n))));
        var servingAfter = worker.Files.File("var/lib/kubelet/pki/kubelet-serving.crt");
        Assert.NotEqual(servingBefore, servingAfter);
        Assert.Equal("OK", Fixtures.OpensslVerify(CertPem(await CaPem(r1), 0), servingAfter, "-purpose", "sslserver", "-verify_hostname", worker.Name));
        Assert.Equal(Pub(worker.Files.Path("var/lib/kubelet/pki/kubelet-serving.key")), Pub(worker.Files.Path("var/lib/kubelet/pki/kubelet-serving.crt"), cert: true));
        Assert.Equal("600", Mode(worker.Files.Path("var/lib/kubelet/pki/kubelet-serving.key")));
        Assert.EndsWith("systemctl restart kubelet", worker.Files.File("stub.log").TrimEnd());
        Assert.Equal($"node {worker.Name}: kubelet serving certificate renewed",
            Strings($"SELECT Message FROM cluster_events WHERE ClusterUuid = '{r1}' AND Reason = 'KubeletServingCertificate' AND Type = 'Normal'").Single());
        File.Delete(Renewed(worker));
        Assert.Equal(0, (await worker.Files.RunWith(StubEnv(stubs), "task")).Item1);
        Assert.False(File.Exists(Renewed(worker)), "renewed twice: the new certificate's expiry was not recorded");

        // ---- kubeadm's control-plane certificates (one year) are renewed before they expire (90 days), one control-plane
        // node at a time, the one whose certificates expire first: here the second, then the first. Workers have none.
        string CpRenewed(Node n) => n.Files.Path("var/log/magnetar/control-plane-certs-renewed.log");
        Assert.Equal(2L, Scalar($"SELECT COUNT(*) FROM node_states WHERE ClusterUuid = '{r1}' AND ControlPlaneCertificatesExpireAt IS NOT NULL"));
        Execute($"UPDATE node_states SET ControlPlaneCertificatesExpireAt = {In(60)} WHERE ClusterUuid = '{r1}' AND NodeName = '{nodes[0].Name}'");
        Execute($"UPDATE node_states SET ControlPlaneCertificatesExpireAt = {In(30)} WHERE ClusterUuid = '{r1}' AND NodeName = '{nodes[1].Name}'");
        foreach (var n in nodes) File.WriteAllText(n.Files.Path("stub.log"), "");
        foreach (var n in new[] { nodes[0], nodes[1], nodes[0] }.Concat(nodes.Skip(2)))
            Assert.Equal(0, (await n.Files.RunWith(StubEnv(stubs), "task")).Item1);
        foreach (var n in nodes.Take(2))
        {
            Assert.True(File.Exists(CpRenewed(n)), $"{n.Name} did not renew its control-plane certificates");
            Assert.Equal(1, n.Files.File("stub.log").Split('\n').Count(l => l == "kubeadm certs renew all"));
            Assert.True(File.Exists(n.Files.Path("etc/kubernetes/manifests/kube-apiserver.yaml")), "the static pod manifests are back");
            Assert.Contains("get --raw /readyz", n.Files.File("stub.log"));
        }
        Assert.All(nodes.Skip(2), n => Assert.Equal("", n.Files.File("stub.log")));
        Assert.Equal([$"node {nodes[1].Name}: control-plane certificates renewed", $"node {nodes[0].Name}: control-plane certificates renewed"],
            Strings($"SELECT Message FROM cluster_events WHERE ClusterUuid = '{r1}' AND Reason = 'ControlPlaneCertificates' ORDER BY Id"));
        File.Delete(CpRenewed(nodes[0]));
        Assert.Equal(0, (await nodes[0].Files.RunWith(StubEnv(stubs), "task")).Item1);
        Assert.False(File.Exists(CpRenewed(nodes[0])), "renewed twice: the new expiry was not recorded");

        // ---- a node added after the rotation joins with the new CA.
        await Api(HttpMethod.Post, $"/v1/clusters/{r1}/actions/resize", new JsonObject { ["node_count"] = 3 }, HttpStatusCode.Accepted);
        var added = (await WaitForServers(r1, 5)).Single(s => !booted.ContainsKey(s.Name));
        var addedNode = TestNode.Boot(added.UserData, Path.Combine(_dir, "nodes", added.Name));
        await addedNode.Ok("fetch");
        Assert.Equal([next], Thumbprints(KubeconfigCredentials(addedNode.File("etc/kubernetes/magnetar/join.conf")).Ca));
        Assert.Equal("OK", Fixtures.OpensslVerify(CertPem(await CaPem(r1), 0), addedNode.File("var/lib/kubelet/pki/kubelet-serving.crt"), "-purpose", "sslserver"));
    }

    // ---------------------------------------------------------------- rotation helpers

    /// <summary>
    /// Runs the agent of every node for <paramref name="step"/>: first out of turn (the workers, the second control-plane
    /// node: Magnetar hands them nothing while a control-plane node before them has the step to do), then in turn.
    /// </summary>
    private async Task RunStep(List<Node> nodes, string step, string stubs, Func<Task>? afterFirst = null)
    {
        var controlPlane = nodes.Where(n => n.Role != "worker").ToList();
        var workers = nodes.Where(n => n.Role == "worker").ToList();
        string Log(Node n) => n.Files.Path($"var/log/magnetar/ca-{step}.log");
        foreach (var n in workers.Concat(controlPlane.Skip(1)))
        {
            var (rc, output) = await n.Files.RunWith(StubEnv(stubs), "task");
            Assert.True(rc == 0, $"{n.Name}: magnetar-node task with nothing to do exited {rc}: {output}");
            Assert.False(File.Exists(Log(n)), $"{n.Name} was handed step {step} out of turn");
        }
        foreach (var n in controlPlane.Concat(workers))
        {
            var (rc, output) = await n.Files.RunWith(StubEnv(stubs), "task");
            Assert.True(rc == 0, $"{n.Name}: magnetar-node task exited {rc}: {output}\n{(File.Exists(Log(n)) ? File.ReadAllText(Log(n)) : "")}");
            Assert.True(File.Exists(Log(n)), $"{n.Name} was not handed step {step}");
            if (afterFirst is not null && n == controlPlane[0]) await afterFirst();
        }
    }

    private static string CaRotationNext(string step) => step == "trust" ? "reissue" : "finish";

    private static List<string> CaRotationOrder(List<Node> nodes)
        => new[] { "trust", "reissue", "finish" }.SelectMany(step => nodes.Select(n => $"node {n.Name}: CA rotation step {step} done")).ToList();

    private static Dictionary<string, string> StubEnv(string stubs, bool failSystemctl = false)
    {
        var env = new Dictionary<string, string>
        {
            ["PATH"] = stubs + ":" + Environment.GetEnvironmentVariable("PATH"),
            ["MAGNETAR_RESTART_WAIT"] = "0",
            ["STUB_CLUSTER_INFO"] = Path.Combine(stubs, "cluster-info.yaml"),
        };
        if (failSystemctl) env["STUB_SYSTEMCTL_FAIL"] = "1";
        return env;
    }

    /// <summary>
    /// Stand-ins for what a node has and this machine has not: kubeadm and systemctl log their arguments; kubectl runs
    /// the real kubectl for kubeconfig edits and client-side rendering, and answers the API-server calls as a cluster
    /// would (kube-root-ca.crt holds what the controller manager publishes from its root-ca-file, ca.crt).
    /// </summary>
    private string WriteStubs(CertificateAuthorityMaterial oldCa)
    {
        var dir = Directory.CreateDirectory(Path.Combine(_dir, "stubs")).FullName;
        void Script(string name, string body)
        {
            File.WriteAllText(Path.Combine(dir, name), "#!/bin/bash\nlog=\"$MAGNETAR_NODE_ROOT/stub.log\"\n" + body);
            File.SetUnixFileMode(Path.Combine(dir, name), (UnixFileMode)0b111_101_101);
        }
        Script("kubeadm", "echo \"kubeadm $*\" >>\"$log\"\n");
        Script("systemctl", """
            echo "systemctl $*" >>"$log"
            if [ -n "${STUB_SYSTEMCTL_FAIL:-}" ]; then
              echo "Job for kubelet.service failed because the control process exited with error code." >&2
              exit 5
            fi

            """);
        Script("kubectl", """
            echo "kubectl $*" >>"$log"
            case " $* " in
              *" get --raw /readyz "*) echo ok ;;
              *" configmap kube-root-ca.crt "*) cat "$MAGNETAR_NODE_ROOT/etc/kubernetes/pki/ca.crt" ;;
              *" get namespaces "*) echo "default kube-system" ;;
              *" get deployment "* | *" get daemonset "* | *" get statefulset "*) echo "x.apps/y" ;;
              *" configmap cluster-info "*) cat "$STUB_CLUSTER_INFO" ;;
              *" apply "*) cat >"$MAGNETAR_NODE_ROOT/applied.yaml" ;;
              *" config "*) echo "the node script must not need kubectl config (Debian's kubectl 1.20 panics writing kubeconfigs)" >&2; exit 1 ;;
            esac

            """);
        // kube-public/cluster-info's kubeconfig as kubeadm writes it (a cluster with an empty name).
        File.WriteAllText(Path.Combine(dir, "cluster-info.yaml"), $"""
            apiVersion: v1
            clusters:
            - cluster:
                certificate-authority-data: {Convert.ToBase64String(System.Text.Encoding.ASCII.GetBytes(oldCa.CertificatePem))}
                server: https://10.0.0.10:6443
              name: ""
            contexts: null
            current-context: ""
            kind: Config
            preferences: {"{}"}
            users: null

            """);
        return dir;
    }

    /// <summary>
    /// What kubeadm leaves on a node (written with KubernetesClient's kubeconfig model, as clientcmd writes them): kubeconfigs with the CA embedded (admin,
    /// controller-manager and scheduler on control-plane nodes; kubelet.conf everywhere — embedded credentials on the
    /// first node, the kubelet's certificate file elsewhere, as the TLS bootstrap writes it), static pod manifests,
    /// and on workers the ca.crt kubeadm join writes.
    /// </summary>
    private void LayOutKubeadmFiles(Node n, CertificateAuthorityMaterial ca)
    {
        var kube = n.Files.Path("etc/kubernetes");
        string Issue(string cn, string? group, string name)
        {
            var cert = ClusterPki.IssueCertificate(ca, cn, group is null ? [] : [group], CertificatePurpose.Client, null, TimeSpan.FromDays(365), LeafKey.EcdsaP256);
            var file = Path.Combine(_dir, $"{n.Name}-{name}.pem");
            File.WriteAllText(file, cert.CertificatePem.TrimEnd() + "\n" + cert.PrivateKeyPem.TrimEnd() + "\n");
            return file;
        }
        void Kubeconfig(string file, string cluster, string user, string certFile, bool embed)
        {
            string B64(string text) => Convert.ToBase64String(System.Text.Encoding.ASCII.GetBytes(text));
            var pem = embed ? File.ReadAllText(certFile) : "";
            var credentials = embed
                ? new k8s.KubeConfigModels.UserCredentials { ClientCertificateData = B64(CertPem(pem, 0)), ClientKeyData = B64(pem[pem.IndexOf("-----BEGIN PRIVATE KEY", StringComparison.Ordinal)..]) }
                : new k8s.KubeConfigModels.UserCredentials { ClientCertificate = certFile, ClientKey = certFile };
            File.WriteAllText(file, k8s.KubernetesYaml.Serialize(new k8s.KubeConfigModels.K8SConfiguration
            {
                ApiVersion = "v1", Kind = "Config", CurrentContext = $"{user}@{cluster}",
                Clusters = [new() { Name = cluster, ClusterEndpoint = new() { Server = "https://10.0.0.10:6443", CertificateAuthorityData = B64(ca.CertificatePem) } }],
                Users = [new() { Name = user, UserCredentials = credentials }],
                Contexts = [new() { Name = $"{user}@{cluster}", ContextDetails = new() { Cluster = cluster, User = user } }],
            }));
        }
        if (n.Role != "worker")
        {
            Directory.CreateDirectory(Path.Combine(kube, "manifests"));
            foreach (var m in new[] { "kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd" })
                File.WriteAllText(Path.Combine(kube, "manifests", m + ".yaml"), $"# static pod {m} (kubeadm writes it)\n");
            Kubeconfig(Path.Combine(kube, "admin.conf"), "kubernetes", "kubernetes-admin", Issue("kubernetes-admin", "system:masters", "admin"), embed: true);
            Kubeconfig(Path.Combine(kube, "controller-manager.conf"), "kubernetes", "system:kube-controller-manager", Issue("system:kube-controller-manager", null, "cm"), embed: true);
            Kubeconfig(Path.Combine(kube, "scheduler.conf"), "kubernetes", "system:kube-scheduler", Issue("system:kube-scheduler", null, "scheduler"), embed: true);
        }
        else File.WriteAllText(Path.Combine(Directory.CreateDirectory(Path.Combine(kube, "pki")).FullName, "ca.crt"), ca.CertificatePem);
        var kubeletCert = Issue($"system:node:{n.Name}", "system:nodes", "kubelet");
        if (n.Role == "init") Kubeconfig(Path.Combine(kube, "kubelet.conf"), "kubernetes", $"system:node:{n.Name}", kubeletCert, embed: true);
        else
        {
            File.Copy(kubeletCert, n.Files.Path("var/lib/kubelet/pki/kubelet-client-current.pem"));
            Kubeconfig(Path.Combine(kube, "kubelet.conf"), "default-cluster", "default-auth", "/var/lib/kubelet/pki/kubelet-client-current.pem", embed: false);
        }
        File.WriteAllText(n.Files.Path("stub.log"), "");
    }

    private static IEnumerable<string> Kubeconfigs(Node n)
        => (n.Role == "worker" ? new[] { "kubelet.conf" } : ["admin.conf", "controller-manager.conf", "scheduler.conf", "kubelet.conf"]).Select(f => "etc/kubernetes/" + f);

    /// <summary>kubectl get --raw /version with one of the node's kubeconfigs against a stand-in; a certificate file it names is read under the node's root.</summary>
    private static (int, string) KubectlAs(Node n, string kubeconfig, string server)
    {
        var conf = n.Files.Path(kubeconfig);
        var certFile = ReadKubeconfig(File.ReadAllText(conf)).Users.Single().UserCredentials.ClientCertificate ?? "";
        List<string> args = ["--kubeconfig", conf, "--server", server];
        if (certFile.StartsWith('/')) args.AddRange(["--client-certificate", n.Files.Path(certFile.TrimStart('/')), "--client-key", n.Files.Path(certFile.TrimStart('/'))]);
        return BootstrapArtifactTests.Run("kubectl", [.. args, "get", "--raw", "/version"]);
    }

    private static k8s.KubeConfigModels.K8SConfiguration ReadKubeconfig(string yaml) => k8s.KubernetesYaml.Deserialize<k8s.KubeConfigModels.K8SConfiguration>(yaml);

    private static string FromBase64(string b64) => System.Text.Encoding.ASCII.GetString(Convert.FromBase64String(b64));

    private static string ClientCertificate(Node n, string kubeconfig) => KubeconfigCredentials(n.Files.File(kubeconfig)).ClientCert;

    private async Task<string> CaPem(string cluster) => (await Api(HttpMethod.Get, $"/v1/certificates/{cluster}", null, HttpStatusCode.OK))["pem"]!.GetValue<string>();

    /// <summary>The SHA-1 thumbprints of the certificates in a PEM text, in order.</summary>
    private static List<string> Thumbprints(string pem)
    {
        var certs = new X509Certificate2Collection();
        certs.ImportFromPem(pem);
        return certs.Select(c => c.Thumbprint).ToList();
    }

    private static string CertPem(string pem, int index)
    {
        var certs = new X509Certificate2Collection();
        certs.ImportFromPem(pem);
        return certs[index].ExportCertificatePem();
    }

    private static List<string> KubeconfigCaThumbprints(string yaml)
        => Thumbprints(FromBase64(ReadKubeconfig(yaml).Clusters.Single().ClusterEndpoint.CertificateAuthorityData));

    private void Execute(string sql)
    {
        using var db = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={_server!.DataDir}/magnetar.db");
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        Assert.Equal(1, cmd.ExecuteNonQuery());
    }

    private List<string> Strings(string sql)
    {
        using var db = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={_server!.DataDir}/magnetar.db;Mode=ReadOnly");
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        var list = new List<string>();
        using var r = cmd.ExecuteReader();
        while (r.Read()) list.Add(r.GetString(0));
        return list;
    }
}
