using System.Diagnostics;
using Magnetar.Bootstrap.Pki;
using Magnetar.Conductor;
using Microsoft.Extensions.Logging.Abstractions;

namespace Magnetar.Tests;

/// <summary>
/// Magnetar's client of its clusters' Kubernetes APIs (<see cref="KubernetesClusterApi"/>, on the KubernetesClient
/// package) against a stand-in for kube-apiserver with TLS both ways: health, the failures it must tell apart
/// (down, refused handshake, foreign serving certificate, slow), and cordon / eviction / deletion of nodes.
/// </summary>
public sealed class ClusterApiTests : IAsyncLifetime
{
    private const string ClusterUuid = "uuid";
    private static readonly CertificateAuthorityMaterial Ca = ClusterPki.CreateCertificateAuthority("c", ClusterUuid);
    private static readonly CertificateAuthorityMaterial OtherCa = ClusterPki.CreateCertificateAuthority("other", "other-uuid");
    private static readonly IssuedCertificate ClientCertificate = ClusterPki.IssueCertificate(Ca, "magnetar", ["system:masters"], CertificatePurpose.Client, null, TimeSpan.FromHours(1));

    private readonly KubernetesClusterApi _api = new(NullLogger<KubernetesClusterApi>.Instance);
    private KubernetesApiStandIn _server = null!;

    public async Task InitializeAsync() => _server = await KubernetesApiStandIn.StartAsync(Ca);

    public async Task DisposeAsync()
    {
        _api.Dispose();
        await _server.DisposeAsync();
    }

    private static ClusterApiAccess Access(string url, IssuedCertificate? client = null, string? caPem = null)
    {
        client ??= ClientCertificate;
        return new ClusterApiAccess(ClusterUuid, new Uri(url), caPem ?? Ca.CertificatePem, client.CertificatePem, client.PrivateKeyPem);
    }

    private ClusterApiAccess Access() => Access(_server.Url);

    private static void AssertUnreachable(string detail, ClusterApiHealth health)
    {
        Assert.False(health.Reachable);
        Assert.False(health.Ready);
        Assert.Equal(detail, health.Detail);
        Assert.Empty(health.Nodes);
    }

    private static void AssertDrain(bool drained, bool nodeMissing, string[] remaining, string? blocked, DrainProgress drain)
    {
        Assert.Equal(drained, drain.Drained);
        Assert.Equal(nodeMissing, drain.NodeMissing);
        Assert.Equal(remaining, drain.RemainingPods);
        Assert.Equal(blocked, drain.Blocked);
    }

    [Fact]
    public async Task Health_lists_the_nodes_with_their_readiness_and_kubelet_versions()
    {
        _server.AddNode("c-master-0", "v1.32.1");
        _server.AddNode("c-node-1", "v1.32.1", ready: false);
        _server.AddNode("c-node-0", "v1.31.4");

        var health = await _api.GetHealthAsync(Access(), default);

        Assert.True(health.Reachable, health.Detail);
        Assert.True(health.Ready);
        Assert.Null(health.Detail);
        Assert.Equal(
        [
            new KubeNode("c-master-0", true, "KubeletReady", "v1.32.1", false),
            new KubeNode("c-node-0", true, "KubeletReady", "v1.31.4", false),
            new KubeNode("c-node-1", false, "KubeletNotReady", "v1.32.1", false),
        ], health.Nodes);
        Assert.All(_server.ClientSubjects, s => Assert.Equal("O=system:masters, CN=magnetar", s));

        _server.SetNodeReady("c-node-1", true);
        _server.RemoveNode("c-node-0");
        health = await _api.GetHealthAsync(Access(), default);
        Assert.Equal(["c-master-0", "c-node-1"], health.Nodes.Select(n => n.Name));
        Assert.All(health.Nodes, n => Assert.True(n.Ready));
    }

    [Fact]
    public async Task Calls_share_one_connection_until_the_access_changes()
    {
        _server.AddNode("c-master-0", "v1.32.1");
        for (var i = 0; i < 3; i++) Assert.True((await _api.GetHealthAsync(Access(), default)).Ready);
        Assert.Equal(6, _server.Requests.Count); // readyz + nodes, three times
        Assert.Equal(1, _server.Connections);

        // A renewed client certificate: a new client, a new connection, and it is the new certificate that is shown.
        var renewed = ClusterPki.IssueCertificate(Ca, "magnetar-renewed", ["system:masters"], CertificatePurpose.Client, null, TimeSpan.FromHours(1));
        Assert.True((await _api.GetHealthAsync(Access(_server.Url, renewed), default)).Ready);
        Assert.Equal(2, _server.Connections);
        Assert.Equal("O=system:masters, CN=magnetar-renewed", _server.ClientSubjects[^1]);
    }

    [Fact]
    public async Task A_failing_readyz_is_reachable_but_not_ready_with_the_failed_checks()
    {
        _server.AddNode("c-master-0", "v1.32.1");
        _server.ReadyzOk = false;

        var health = await _api.GetHealthAsync(Access(), default);

        Assert.True(health.Reachable);
        Assert.False(health.Ready);
        Assert.Equal("[-]etcd failed: reason withheld\nreadyz check failed", health.Detail); // the failed check, not the passed ones
        Assert.Equal("c-master-0", Assert.Single(health.Nodes).Name);

        _server.ReadyzOk = true;
        health = await _api.GetHealthAsync(Access(), default);
        Assert.True(health.Ready);
        Assert.Null(health.Detail);
    }

    [Fact]
    public async Task A_stopped_api_server_is_unreachable_at_once_and_reachable_again_when_it_comes_back()
    {
        _server.AddNode("c-master-0", "v1.32.1");
        var access = Access();
        Assert.True((await _api.GetHealthAsync(access, default)).Ready); // a pooled connection exists
        var port = _server.Port;
        await _server.StopAsync();

        var clock = Stopwatch.StartNew();
        var health = await _api.GetHealthAsync(access, default);
        clock.Stop();

        AssertUnreachable($"connection refused ({_server.Url})", health);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"took {clock.Elapsed}");

        _server = await KubernetesApiStandIn.StartAsync(Ca, port);
        _server.AddNode("c-master-0", "v1.32.1");
        health = await _api.GetHealthAsync(access, default);
        Assert.True(health.Ready, health.Detail);
        Assert.Single(health.Nodes);
    }

    [Fact]
    public async Task A_client_certificate_of_another_ca_is_refused_in_the_handshake()
    {
        _server.AddNode("c-master-0", "v1.32.1");
        var foreign = ClusterPki.IssueCertificate(OtherCa, "magnetar", ["system:masters"], CertificatePurpose.Client, null, TimeSpan.FromHours(1));

        var health = await _api.GetHealthAsync(Access(_server.Url, foreign), default);

        Assert.False(health.Reachable);
        Assert.Equal("TLS: the API server closed the connection right after the handshake (does it refuse Magnetar's client certificate?)", health.Detail);
        Assert.Empty(_server.Requests); // no request got through
    }

    [Fact]
    public async Task A_serving_certificate_of_another_ca_is_not_trusted()
    {
        await using var impostor = await KubernetesApiStandIn.StartAsync(OtherCa);
        impostor.AddNode("c-master-0", "v1.32.1");

        var health = await _api.GetHealthAsync(Access(impostor.Url), default);

        AssertUnreachable("TLS: the API server's certificate is not signed by the cluster CA", health);
        Assert.Empty(impostor.Requests);

        // The impostor's CA trusted instead: the same server is fine — the refusal was about the CA alone.
        var trusting = await _api.GetHealthAsync(Access(impostor.Url, ClusterPki.IssueCertificate(OtherCa, "magnetar", [], CertificatePurpose.Client, null, TimeSpan.FromHours(1)), OtherCa.CertificatePem), default);
        Assert.True(trusting.Ready, trusting.Detail);
    }

    [Fact]
    public async Task A_serving_certificate_without_the_address_reached_is_not_trusted()
    {
        // The stand-in's certificate names 127.0.0.1 and kubernetes.default…, not localhost.
        var health = await _api.GetHealthAsync(Access($"https://localhost:{_server.Port}/"), default);

        Assert.False(health.Reachable);
        Assert.Equal("TLS: the API server's certificate is not issued for localhost", health.Detail);
    }

    [Fact]
    public async Task A_hung_api_server_times_out_and_the_callers_cancellation_is_thrown()
    {
        using var api = new KubernetesClusterApi(NullLogger<KubernetesClusterApi>.Instance, TimeSpan.FromSeconds(1));
        _server.ResponseDelay = TimeSpan.FromSeconds(30);

        var clock = Stopwatch.StartNew();
        var health = await api.GetHealthAsync(Access(), default);
        AssertUnreachable("timed out after 1 s", health);
        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(5));

        var drain = await api.DrainAsync(Access(), "c-node-0", default);
        AssertDrain(false, false, [], "the cluster's API server could not be reached: timed out after 1 s", drain);
        Assert.False(await api.DeleteNodeAsync(Access(), "c-node-0", default));

        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => api.GetHealthAsync(Access(), cancel.Token));
    }

    [Fact]
    public async Task Drain_cordons_evicts_leaves_daemonset_mirror_and_finished_pods_and_reports_a_disruption_budget()
    {
        _server.AddNode("c-node-0", "v1.32.1");
        _server.AddNode("c-node-1", "v1.32.1");
        _server.AddPod("default", "web-1", "c-node-0");
        _server.AddPod("default", "db-0", "c-node-0", ownerKind: "StatefulSet", blockedByPdb: true);
        _server.AddPod("kube-system", "kube-proxy-x2f9k", "c-node-0", ownerKind: "DaemonSet");
        _server.AddPod("kube-system", "etcd-c-node-0", "c-node-0", ownerKind: "Node");
        _server.AddPod("default", "migrate-7kx2p", "c-node-0", ownerKind: "Job", phase: "Succeeded");
        _server.AddPod("default", "web-2", "c-node-1");

        var drain = await _api.DrainAsync(Access(), "c-node-0", default);

        Assert.False(drain.Drained);
        Assert.False(drain.NodeMissing);
        Assert.Equal(["default/db-0"], drain.RemainingPods);
        Assert.Equal("default/db-0: Cannot evict pod as it would violate the pod's disruption budget.", drain.Blocked);
        Assert.Equal(["default/web-1"], _server.Evictions);
        Assert.Equal([true, false], _server.Nodes.Select(n => n.Unschedulable)); // c-node-0 cordoned, c-node-1 not
        Assert.Contains(_server.Requests, r => r.StartsWith("GET /api/v1/pods?fieldSelector=spec.nodeName%3Dc-node-0&", StringComparison.Ordinal));
        Assert.Equal(["default/db-0", "kube-system/kube-proxy-x2f9k", "kube-system/etcd-c-node-0", "default/migrate-7kx2p", "default/web-2"],
            _server.Pods.Select(p => $"{p.Namespace}/{p.Name}"));

        _server.UnblockPod("default", "db-0");
        drain = await _api.DrainAsync(Access(), "c-node-0", default);

        AssertDrain(true, false, [], null, drain);
        Assert.Equal(["default/web-1", "default/db-0"], _server.Evictions);
        Assert.Single(_server.Requests, r => r.StartsWith("PATCH ")); // cordoned once: the second round saw it unschedulable
        Assert.Equal(["kube-system/kube-proxy-x2f9k", "kube-system/etcd-c-node-0", "default/migrate-7kx2p", "default/web-2"],
            _server.Pods.Select(p => $"{p.Namespace}/{p.Name}"));
    }

    [Fact]
    public async Task Drain_waits_for_evicted_pods_until_they_are_gone()
    {
        _server.AddNode("c-node-0", "v1.32.1");
        _server.AddPod("default", "web-1", "c-node-0");
        _server.GracefulEvictions = true;

        var drain = await _api.DrainAsync(Access(), "c-node-0", default);
        Assert.False(drain.Drained);
        Assert.Equal(["default/web-1"], drain.RemainingPods);
        Assert.Null(drain.Blocked);

        drain = await _api.DrainAsync(Access(), "c-node-0", default);
        Assert.False(drain.Drained); // still terminating
        Assert.Equal(["default/web-1"], _server.Evictions); // and not evicted again

        _server.FinishTerminations();
        drain = await _api.DrainAsync(Access(), "c-node-0", default);
        Assert.True(drain.Drained);
        Assert.Empty(drain.RemainingPods);
    }

    [Fact]
    public async Task Drain_of_a_missing_node_has_nothing_to_do_and_of_an_unreachable_api_says_so()
    {
        var drain = await _api.DrainAsync(Access(), "c-node-9", default);
        AssertDrain(true, true, [], null, drain);
        Assert.DoesNotContain(_server.Requests, r => r.StartsWith("PATCH "));

        await _server.StopAsync();
        drain = await _api.DrainAsync(Access(), "c-node-9", default);
        AssertDrain(false, false, [], $"the cluster's API server could not be reached: connection refused ({_server.Url})", drain);
    }

    [Fact]
    public async Task DeleteNode_removes_the_node_and_a_missing_node_counts_as_deleted()
    {
        _server.AddNode("c-node-0", "v1.32.1");
        _server.AddNode("c-node-1", "v1.32.1");

        Assert.True(await _api.DeleteNodeAsync(Access(), "c-node-0", default));
        Assert.Equal(["c-node-1"], _server.Nodes.Select(n => n.Name));
        Assert.Equal(["c-node-0"], _server.DeletedNodes);

        Assert.True(await _api.DeleteNodeAsync(Access(), "c-node-0", default));
        Assert.Equal(["c-node-0"], _server.DeletedNodes);
        Assert.Contains("DELETE /api/v1/nodes/c-node-0", _server.Requests);

        await _server.StopAsync();
        Assert.False(await _api.DeleteNodeAsync(Access(), "c-node-1", default));
    }
}
