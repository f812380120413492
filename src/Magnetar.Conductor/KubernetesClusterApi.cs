using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Logging;

namespace Magnetar.Conductor;

/// <summary>
/// <see cref="IClusterApi"/> with the KubernetesClient package. One client (one HTTP/2 connection pool) is kept per
/// cluster and reused while the cluster's <see cref="ClusterApiAccess"/> stays the same; a new access (renewed client
/// certificate, rotated CA, other address) gets a new client, and the old one is disposed once its last call ends.
/// The API server's certificate is verified against the cluster CA only — never the system store — and must carry
/// the address it is reached at. Every request is bounded by the request timeout; an API that is down, refuses the
/// TLS handshake or answers with an error is reported in the result, never thrown.
/// </summary>
public sealed partial class KubernetesClusterApi : IClusterApi, IDisposable
{
    public static readonly TimeSpan DefaultRequestTimeout = TimeSpan.FromSeconds(10);
    private const string CordonPatch = """{"spec":{"unschedulable":true}}""";
    private const string MirrorPodAnnotation = "kubernetes.io/config.mirror";
    private const int MaxDetailLines = 5;
    private const int MaxDetailLength = 1000;

    private readonly ILogger<KubernetesClusterApi> _logger;
    private readonly TimeSpan _requestTimeout;
    private readonly ConcurrentDictionary<string, Connection> _connections = new(); // by cluster uuid
    private readonly Lock _gate = new(); // serialises the replacement of a cluster's connection
    private bool _disposed;

    public KubernetesClusterApi(ILogger<KubernetesClusterApi> logger) : this(logger, DefaultRequestTimeout) { }

    public KubernetesClusterApi(ILogger<KubernetesClusterApi> logger, TimeSpan requestTimeout)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(requestTimeout, TimeSpan.Zero);
        _logger = logger;
        _requestTimeout = requestTimeout;
    }

    public async Task<ClusterApiHealth> GetHealthAsync(ClusterApiAccess access, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            using var lease = Acquire(access);
            var client = lease.Client;
            var (ready, detail) = await BoundedAsync(t => ReadyzAsync(client, t), cancellationToken);
            try
            {
                var list = await BoundedAsync(t => client.CoreV1.ListNodeAsync(cancellationToken: t), cancellationToken);
                var nodes = list.Items.Select(ToKubeNode).OrderBy(n => n.Name, StringComparer.Ordinal).ToList();
                return new ClusterApiHealth(true, ready, detail, nodes);
            }
            catch (Exception e) when (e is HttpOperationException or JsonException)
            {
                // The API answers but will not list nodes (etcd down, RBAC) or not readably: reachable, with no node
                // known — Detail says so, so that an empty list is not read as "no node".
                var failure = $"listing nodes failed: {(e is HttpOperationException refused ? Refusal(refused) : e.Message)}";
                return new ClusterApiHealth(true, ready, detail is null ? failure : $"{detail}\n{failure}", []);
            }
        }
        catch (Exception e) when (!IsCallerCancellation(e, cancellationToken))
        {
            var reason = Reason(e, access, started);
            _logger.LogDebug(e, "Cluster {Uuid}: the API server at {Server} is unreachable: {Reason}", access.ClusterUuid, access.Server, reason);
            return ClusterApiHealth.Unreachable(reason);
        }
    }

    public async Task<DrainProgress> DrainAsync(ClusterApiAccess access, string nodeName, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(nodeName);
        var started = Stopwatch.GetTimestamp();
        var step = "reading the node";
        try
        {
            using var lease = Acquire(access);
            var client = lease.Client;
            var node = await BoundedAsync(t => client.CoreV1.ReadNodeAsync(nodeName, cancellationToken: t), cancellationToken);
            if (node.Spec?.Unschedulable != true)
            {
                step = "cordoning the node";
                await BoundedAsync(t => client.CoreV1.PatchNodeAsync(new V1Patch(CordonPatch, V1Patch.PatchType.StrategicMergePatch), nodeName, cancellationToken: t), cancellationToken);
                _logger.LogInformation("Cluster {Uuid}: node {Node} cordoned", access.ClusterUuid, nodeName);
            }

            step = "listing the node's pods";
            var leaving = await PodsToLeaveAsync(client, nodeName, cancellationToken);
            string? blocked = null;
            var evicted = false;
            // A pod already being deleted needs no eviction: it is waited for (it stays in the list until it is gone).
            foreach (var pod in leaving.Where(p => p.Metadata.DeletionTimestamp is null))
            {
                step = $"evicting {PodId(pod)}";
                try
                {
                    await BoundedAsync(t => client.CoreV1.CreateNamespacedPodEvictionAsync(EvictionOf(pod), pod.Metadata.Name, pod.Metadata.NamespaceProperty, cancellationToken: t), cancellationToken);
                    evicted = true;
                }
                catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
                {
                    evicted = true; // gone already
                }
                catch (HttpOperationException e)
                {
                    // 429: a PodDisruptionBudget does not allow it now (or 500: several budgets match); the other pods still go.
                    blocked ??= $"{PodId(pod)}: {Refusal(e)}";
                }
            }
            if (evicted)
            {
                // An eviction deletes the pod gracefully: it stays until its containers stopped. Ask what is left.
                step = "listing the node's pods";
                leaving = await PodsToLeaveAsync(client, nodeName, cancellationToken);
            }
            var remaining = leaving.Select(PodId).Order(StringComparer.Ordinal).ToList();
            if (evicted) _logger.LogInformation("Cluster {Uuid}: draining node {Node}, {Count} pod(s) left", access.ClusterUuid, nodeName, remaining.Count);
            return new DrainProgress(remaining.Count == 0, false, remaining, remaining.Count == 0 ? null : blocked);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return new DrainProgress(true, true, [], null); // no Node of that name (any more): nothing to drain
        }
        catch (HttpOperationException e)
        {
            _logger.LogWarning("Cluster {Uuid}: draining node {Node}: {Step} failed: {Refusal}", access.ClusterUuid, nodeName, step, Refusal(e));
            return new DrainProgress(false, false, [], $"{step} failed: {Refusal(e)}");
        }
        catch (Exception e) when (!IsCallerCancellation(e, cancellationToken))
        {
            var reason = Reason(e, access, started);
            _logger.LogWarning("Cluster {Uuid}: node {Node} not drained: the API server at {Server} is unreachable: {Reason}", access.ClusterUuid, nodeName, access.Server, reason);
            return new DrainProgress(false, false, [], $"the cluster's API server could not be reached: {reason}");
        }
    }

    public async Task<bool> DeleteNodeAsync(ClusterApiAccess access, string nodeName, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(nodeName);
        var started = Stopwatch.GetTimestamp();
        try
        {
            using var lease = Acquire(access);
            // The answer is a Status for a Node (or the deleted Node; the client keeps that as the Status's object view).
            await BoundedAsync(t => lease.Client.CoreV1.DeleteNodeAsync(nodeName, cancellationToken: t), cancellationToken);
            _logger.LogInformation("Cluster {Uuid}: Node object {Node} deleted", access.ClusterUuid, nodeName);
            return true;
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return true;
        }
        catch (HttpOperationException e)
        {
            _logger.LogWarning("Cluster {Uuid}: deleting Node object {Node} was refused: {Refusal}", access.ClusterUuid, nodeName, Refusal(e));
            return false;
        }
        catch (Exception e) when (!IsCallerCancellation(e, cancellationToken))
        {
            _logger.LogWarning("Cluster {Uuid}: Node object {Node} not deleted: the API server at {Server} is unreachable: {Reason}",
                access.ClusterUuid, nodeName, access.Server, Reason(e, access, started));
            return false;
        }
    }

    public Task<string?> SetKubeadmKubernetesVersionAsync(ClusterApiAccess access, string version, CancellationToken cancellationToken)
        => EditAsync(access, $"api/v1/namespaces/kube-system/configmaps/{KubeadmConfigMap}", "kube-system/kubeadm-config", missingIsFine: false, doc =>
        {
            var yaml = doc["data"]?["ClusterConfiguration"]?.GetValue<string>();
            if (yaml is null) return (null, "kube-system/kubeadm-config has no ClusterConfiguration");
            var edited = KubernetesVersionLine().Replace(yaml, $"kubernetesVersion: {version}", 1);
            if (edited == yaml) return KubernetesVersionLine().IsMatch(yaml) ? (null, null) : (null, "its ClusterConfiguration has no kubernetesVersion");
            return ($$"""[{"op":"test","path":"/metadata/resourceVersion","value":{{JsonSerializer.Serialize(doc["metadata"]?["resourceVersion"]?.GetValue<string>())}}},{"op":"replace","path":"/data/ClusterConfiguration","value":{{JsonSerializer.Serialize(edited)}}}]""", null);
        }, cancellationToken);

    public Task<string?> SetKubeProxyVersionAsync(ClusterApiAccess access, string version, CancellationToken cancellationToken)
        => EditAsync(access, "apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy", "kube-system/kube-proxy", missingIsFine: true, doc =>
        {
            var containers = doc["spec"]?["template"]?["spec"]?["containers"]?.AsArray();
            var index = containers?.Select((c, i) => (c, i)).FirstOrDefault(x => x.c?["name"]?.GetValue<string>() == "kube-proxy").i ?? -1;
            var image = index >= 0 ? containers![index]?["image"]?.GetValue<string>() : null;
            if (image is null) return (null, "kube-system/kube-proxy has no kube-proxy container");
            var colon = image.LastIndexOf(':');
            var wanted = (colon > image.LastIndexOf('/') ? image[..colon] : image) + ":" + version;
            if (wanted == image) return (null, null);
            return ($$"""[{"op":"replace","path":"/spec/template/spec/containers/{{index}}/image","value":{{JsonSerializer.Serialize(wanted)}}}]""", null);
        }, cancellationToken);

    private const string KubeadmConfigMap = "kubeadm-config";

    [System.Text.RegularExpressions.GeneratedRegex(@"^kubernetesVersion:.*$", System.Text.RegularExpressions.RegexOptions.Multiline)]
    private static partial System.Text.RegularExpressions.Regex KubernetesVersionLine();

    /// <summary>
    /// Reads an object as JSON, lets <paramref name="edit"/> decide a JSON patch (null patch: nothing to change; or why
    /// it cannot), and applies it. Raw requests: the typed models reject objects missing fields they declare required.
    /// </summary>
    private async Task<string?> EditAsync(ClusterApiAccess access, string path, string what, bool missingIsFine,
        Func<System.Text.Json.Nodes.JsonNode, (string? Patch, string? Error)> edit, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            using var lease = Acquire(access);
            var client = lease.Client;
            using var get = new HttpRequestMessage(HttpMethod.Get, new Uri(client.BaseUri, path)) { Version = HttpVersion.Version20 };
            using var got = await BoundedAsync(t => client.HttpClient.SendAsync(get, HttpCompletionOption.ResponseContentRead, t), ct);
            if (got.StatusCode == HttpStatusCode.NotFound) return missingIsFine ? null : $"{what} not found";
            var body = await got.Content.ReadAsStringAsync(ct);
            if (!got.IsSuccessStatusCode) return $"reading {what}: {(int)got.StatusCode} {FirstLine(body)}";
            var (patch, error) = edit(System.Text.Json.Nodes.JsonNode.Parse(body)!);
            if (error is not null || patch is null) return error;
            using var put = new HttpRequestMessage(HttpMethod.Patch, new Uri(client.BaseUri, path))
            {
                Version = HttpVersion.Version20,
                Content = new StringContent(patch, System.Text.Encoding.UTF8, "application/json-patch+json"),
            };
            put.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json-patch+json");
            using var patched = await BoundedAsync(t => client.HttpClient.SendAsync(put, HttpCompletionOption.ResponseContentRead, t), ct);
            if (!patched.IsSuccessStatusCode) return $"updating {what}: {(int)patched.StatusCode} {FirstLine(await patched.Content.ReadAsStringAsync(ct))}";
            _logger.LogInformation("Cluster {Uuid}: {What} updated", access.ClusterUuid, what);
            return null;
        }
        catch (Exception e) when (!IsCallerCancellation(e, ct))
        {
            return $"the cluster's API server could not be reached: {Reason(e, access, started)}";
        }

        static string FirstLine(string s) => s.Split('\n', 2)[0] is var l && l.Length > 300 ? l[..300] : s.Split('\n', 2)[0];
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            foreach (var connection in _connections.Values) connection.Retire();
            _connections.Clear();
        }
    }

    /// <summary>GET /readyz with the client's own HttpClient (it is no typed API): 200 → ready; otherwise the failed checks.</summary>
    private static async Task<(bool Ready, string? Detail)> ReadyzAsync(Kubernetes client, CancellationToken ct)
    {
        // HTTP/2 as the typed calls ask for it, so that they all share one connection.
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(client.BaseUri, "readyz")) { Version = HttpVersion.Version20 };
        using var response = await client.HttpClient.SendAsync(request, HttpCompletionOption.ResponseContentRead, ct);
        if (response.StatusCode == HttpStatusCode.OK) return (true, null);
        var body = await response.Content.ReadAsStringAsync(ct);
        return (false, ReadyzDetail(response.StatusCode, body));
    }

    /// <summary>
    /// The failed checks of a /readyz answer ("[-]etcd failed: reason withheld") and its verdict line; kube-apiserver
    /// lists every check, the passed ones ("[+]ping ok") too. A body of another shape: its first lines.
    /// </summary>
    private static string ReadyzDetail(HttpStatusCode status, string body)
    {
        var lines = body.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var failed = lines.Where(l => l.StartsWith("[-]", StringComparison.Ordinal)).ToList();
        var picked = failed.Count > 0 ? [.. failed, .. lines.Where(l => !l.StartsWith('[')).Take(1)] : lines.Take(MaxDetailLines);
        var detail = string.Join('\n', picked);
        if (detail.Length == 0) detail = $"/readyz answered {(int)status} {status}";
        return detail.Length > MaxDetailLength ? detail[..MaxDetailLength] + "…" : detail;
    }

    private async Task<List<V1Pod>> PodsToLeaveAsync(Kubernetes client, string nodeName, CancellationToken ct)
    {
        var pods = await BoundedAsync(t => client.CoreV1.ListPodForAllNamespacesAsync(fieldSelector: $"spec.nodeName={nodeName}", cancellationToken: t), ct);
        return pods.Items.Where(MustLeave).ToList();
    }

    /// <summary>
    /// As kubectl drain decides: pods of a DaemonSet (its controller) stay — the DaemonSet would recreate them on the
    /// cordoned node anyway; mirror pods (static pods of the kubelet) cannot be evicted; finished pods hold nothing.
    /// </summary>
    private static bool MustLeave(V1Pod pod)
    {
        if (pod.Metadata.OwnerReferences?.Any(o => o.Controller == true && o.Kind == "DaemonSet") == true) return false;
        if (pod.Metadata.Annotations?.ContainsKey(MirrorPodAnnotation) == true) return false;
        return pod.Status?.Phase is not ("Succeeded" or "Failed");
    }

    private static V1Eviction EvictionOf(V1Pod pod) => new()
    {
        ApiVersion = "policy/v1",
        Kind = "Eviction",
        Metadata = new V1ObjectMeta { Name = pod.Metadata.Name, NamespaceProperty = pod.Metadata.NamespaceProperty },
    };

    private static string PodId(V1Pod pod) => $"{pod.Metadata.NamespaceProperty}/{pod.Metadata.Name}";

    private static KubeNode ToKubeNode(V1Node node)
    {
        var ready = node.Status?.Conditions?.FirstOrDefault(c => c.Type == "Ready");
        return new KubeNode(node.Metadata.Name, ready?.Status == "True", ready?.Reason, node.Status?.NodeInfo?.KubeletVersion, node.Spec?.Unschedulable == true);
    }

    /// <summary>
    /// Runs one request under the request timeout. The timeout surfaces as a <see cref="TimeoutException"/>, told apart
    /// from the caller's cancellation, which surfaces as the <see cref="OperationCanceledException"/> it is.
    /// </summary>
    private async Task<T> BoundedAsync<T>(Func<CancellationToken, Task<T>> request, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(_requestTimeout);
        try
        {
            return await request(timeout.Token);
        }
        catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
        {
            throw new TimeoutException($"timed out after {Seconds(_requestTimeout)}", e);
        }
    }

    private static bool IsCallerCancellation(Exception e, CancellationToken ct) => e is OperationCanceledException && ct.IsCancellationRequested;

    /// <summary>What a refused request's Status says ("Cannot evict pod as it would violate the pod's disruption budget."), else its HTTP status.</summary>
    private static string Refusal(HttpOperationException e)
    {
        var content = e.Response?.Content;
        if (!string.IsNullOrWhiteSpace(content))
        {
            try
            {
                if (KubernetesJson.Deserialize<V1Status>(content) is { Message.Length: > 0 } status) return status.Message;
            }
            catch (JsonException)
            {
                // not a Status: the status line below
            }
        }
        var code = e.Response?.StatusCode ?? 0;
        return $"{(int)code} {e.Response?.ReasonPhrase ?? code.ToString()}";
    }

    /// <summary>A short reason for a request that got no answer: refused connection, TLS failure, timeout.</summary>
    /// <param name="started">when the call began: a TLS handshake this side completed since then means a new connection was made in it</param>
    private string Reason(Exception e, ClusterApiAccess access, long started)
    {
        if (_disposed) return "Magnetar's cluster API client is shut down";
        var connection = _connections.TryGetValue(access.ClusterUuid, out var c) && c.Access == access ? c : null;
        var tlsFailure = connection?.TakeTlsFailure();
        // Connected and through the handshake as this side sees it, then closed before any answer: with TLS 1.3 a
        // server that refuses the client certificate says so only after the client finished its handshake, so the
        // client learns it when it first uses the connection (HttpClient reports that in several shapes: the HTTP/2
        // preface unanswered, the response ended, the TLS stream disposed). kube-apiserver itself accepts the handshake
        // and answers 401 to a certificate it does not know.
        var refusedAfterHandshake = connection?.ServerVerifiedSince(started) == true
            ? "TLS: the API server closed the connection right after the handshake (does it refuse Magnetar's client certificate?)"
            : null;
        for (var x = e; x is not null; x = x.InnerException)
        {
            switch (x)
            {
                case TimeoutException:
                    return x.Message;
                case SocketException s:
                    return s.SocketErrorCode switch
                    {
                        SocketError.ConnectionRefused => $"connection refused ({access.Server})",
                        SocketError.HostNotFound or SocketError.NoData or SocketError.TryAgain => $"host not found ({access.Server.Host})",
                        SocketError.HostUnreachable or SocketError.NetworkUnreachable => $"no route to {access.Server.Host}",
                        SocketError.TimedOut => $"connection timed out ({access.Server})",
                        SocketError.ConnectionReset => tlsFailure ?? refusedAfterHandshake ?? $"connection reset ({access.Server})",
                        _ => $"{s.Message} ({access.Server})",
                    };
                case AuthenticationException:
                    return tlsFailure ?? $"TLS: {x.Message}";
                case CryptographicException:
                    return $"the cluster's CA or Magnetar's client certificate could not be loaded: {x.Message}";
            }
        }
        return tlsFailure ?? (e is HttpRequestException ? refusedAfterHandshake : null) ?? $"{e.GetType().Name}: {e.Message}";
    }

    private static string Seconds(TimeSpan t) => $"{t.TotalSeconds:0.#} s";

    /// <summary>
    /// The cluster's connection for this access: the cached one while the access is the same, else a new one that
    /// replaces it (the old one is disposed when its last lease ends). Dispose the lease when the call ends.
    /// </summary>
    private Lease Acquire(ClusterApiAccess access)
    {
        if (_connections.TryGetValue(access.ClusterUuid, out var current) && current.Access == access && current.TryEnter())
            return new Lease(current);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_connections.TryGetValue(access.ClusterUuid, out current) && current.Access == access && current.TryEnter())
                return new Lease(current);
            var fresh = new Connection(access, _requestTimeout);
            fresh.TryEnter();
            _connections[access.ClusterUuid] = fresh;
            current?.Retire();
            return new Lease(fresh);
        }
    }

    private readonly struct Lease(Connection connection) : IDisposable
    {
        public Kubernetes Client => connection.Client;
        public void Dispose() => connection.Exit();
    }

    /// <summary>One cluster's client, with the count of the calls using it so that a replaced client is disposed only when idle.</summary>
    private sealed class Connection
    {
        private readonly Lock _lock = new();
        private readonly X509Certificate2Collection _trust = [];
        private int _users;
        private bool _retired;
        private string? _tlsFailure;
        private long _serverVerifiedAt;

        public ClusterApiAccess Access { get; }
        public Kubernetes Client { get; }

        public Connection(ClusterApiAccess access, TimeSpan requestTimeout)
        {
            Access = access;
            _trust.ImportFromPem(access.CaPem); // several CAs while one is rotated
            if (_trust.Count == 0) throw new CryptographicException("the cluster CA PEM holds no certificate");
            Client = new Kubernetes(new KubernetesClientConfiguration
            {
                Host = access.Server.ToString(),
                // The PEMs base64-encoded, as kubeconfig's client-certificate-data: the client makes the certificate in
                // memory (X509Certificate2.CreateFromPem), no file is written.
                ClientCertificateData = Convert.ToBase64String(Encoding.UTF8.GetBytes(access.ClientCertificatePem)),
                ClientCertificateKeyData = Convert.ToBase64String(Encoding.UTF8.GetBytes(access.ClientKeyPem)),
                SkipTlsVerify = false,
                // SslCaCerts stays unset on purpose: with it the client accepts a certificate the *system* store trusts
                // (no policy error → accepted) and overlooks a name mismatch when the chain has errors too. The handler's
                // validation is set below instead; the client leaves it alone when SslCaCerts is null.
                HttpClientTimeout = requestTimeout,
                FirstMessageHandlerSetup = handler =>
                {
                    handler.SslOptions.RemoteCertificateValidationCallback = ValidateServer;
                    handler.ConnectTimeout = requestTimeout;
                },
            });
        }

        /// <summary>The API server's certificate must chain to the cluster CA — only it — and name the address it is reached at.</summary>
        private bool ValidateServer(object sender, X509Certificate? certificate, X509Chain? _, SslPolicyErrors errors)
        {
            string? failure = null;
            if (certificate is null || (errors & SslPolicyErrors.RemoteCertificateNotAvailable) != 0)
                failure = "TLS: the API server sent no certificate";
            else if ((errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0)
                failure = $"TLS: the API server's certificate is not issued for {Access.Server.Host}";
            else
            {
                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.AddRange(_trust);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck; // cluster CAs publish no CRL
                chain.ChainPolicy.ApplicationPolicy.Add(new Oid("1.3.6.1.5.5.7.3.1")); // serverAuth
                var leaf = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
                try
                {
                    if (!chain.Build(leaf))
                    {
                        var status = chain.ChainStatus.Aggregate(X509ChainStatusFlags.NoError, (all, s) => all | s.Status);
                        failure = (status & (X509ChainStatusFlags.UntrustedRoot | X509ChainStatusFlags.PartialChain)) != 0
                            ? "TLS: the API server's certificate is not signed by the cluster CA"
                            : (status & X509ChainStatusFlags.NotTimeValid) != 0
                                ? "TLS: the API server's certificate has expired or is not valid yet"
                                : $"TLS: the API server's certificate is not valid ({string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()))})";
                    }
                }
                finally
                {
                    if (!ReferenceEquals(leaf, certificate)) leaf.Dispose();
                }
            }
            if (failure is null) Volatile.Write(ref _serverVerifiedAt, Stopwatch.GetTimestamp());
            else Volatile.Write(ref _tlsFailure, failure);
            return failure is null;
        }

        /// <summary>This side completed a TLS handshake (accepted the server's certificate) since <paramref name="timestamp"/>.</summary>
        public bool ServerVerifiedSince(long timestamp) => Volatile.Read(ref _serverVerifiedAt) >= timestamp;

        /// <summary>Why the last TLS handshake failed on this side, once.</summary>
        public string? TakeTlsFailure() => Interlocked.Exchange(ref _tlsFailure, null);

        public bool TryEnter()
        {
            lock (_lock)
            {
                if (_retired) return false;
                _users++;
                return true;
            }
        }

        public void Exit()
        {
            lock (_lock)
            {
                if (--_users > 0 || !_retired) return;
            }
            Client.Dispose();
        }

        public void Retire()
        {
            lock (_lock)
            {
                if (_retired) return;
                _retired = true;
                if (_users > 0) return;
            }
            Client.Dispose();
        }
    }
}
