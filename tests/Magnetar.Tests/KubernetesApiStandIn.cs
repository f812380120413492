using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using k8s;
using k8s.Models;
using Magnetar.Bootstrap.Pki;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Logging;

namespace Magnetar.Tests;

/// <summary>
/// A <b>stand-in for kube-apiserver</b>, since no Kubernetes binary runs here: Kestrel on 127.0.0.1 with a serving
/// certificate of the cluster CA (kubeadm's API server names plus 127.0.0.1), client certificates of that CA required,
/// and the few endpoints Magnetar's cluster API client calls, answering in the shapes the API server does (Node and
/// Pod lists, Status objects for errors, the Eviction subresource with its PodDisruptionBudget refusal). The state is
/// in memory, set and read by the test; a stand-in stopped and started again on the same port keeps its URL.
/// </summary>
public sealed class KubernetesApiStandIn : IAsyncDisposable
{
    /// <summary>kube-apiserver's words when an eviction would break a PodDisruptionBudget.</summary>
    public const string DisruptionBudgetMessage = "Cannot evict pod as it would violate the pod's disruption budget.";
    /// <summary>What a failing /readyz answers (the passed checks are listed too, as kube-apiserver does).</summary>
    public const string FailedChecks = "[-]etcd failed: reason withheld\nreadyz check failed";

    public sealed record Node(string Name, bool Ready, string KubeletVersion, bool Unschedulable);
    public sealed record Pod(string Namespace, string Name, string NodeName, string? OwnerKind, bool BlockedByPdb, string Phase, bool Terminating);

    private readonly Lock _gate = new();
    private readonly Dictionary<string, Node> _nodes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Pod> _pods = new(StringComparer.Ordinal); // by namespace/name, in insertion order
    private readonly List<string> _evictions = [];
    private readonly List<string> _deletedNodes = [];
    private readonly ConcurrentDictionary<string, byte> _connections = new();
    private readonly ConcurrentQueue<string> _requests = new();
    private readonly ConcurrentQueue<string> _clients = new();
    private readonly Microsoft.AspNetCore.Builder.WebApplication _app;
    private int _stopped;

    private KubernetesApiStandIn(Microsoft.AspNetCore.Builder.WebApplication app) => _app = app;

    /// <summary>https://127.0.0.1:&lt;port&gt;/</summary>
    public string Url { get; private set; } = "";
    public int Port { get; private set; }
    /// <summary>False: GET /readyz answers 500 with <see cref="FailedChecks"/>.</summary>
    public bool ReadyzOk { get; set; } = true;
    /// <summary>How long every request waits before it is answered (a slow or hung API server).</summary>
    public TimeSpan ResponseDelay { get; set; }
    /// <summary>True: an allowed eviction marks the pod terminating (deletionTimestamp) instead of removing it; <see cref="FinishTerminations"/> removes them.</summary>
    public bool GracefulEvictions { get; set; }

    /// <summary>How many TLS connections served requests.</summary>
    public int Connections => _connections.Count;
    /// <summary>"METHOD path?query" of every request that passed the TLS handshake, in order.</summary>
    public IReadOnlyList<string> Requests => [.. _requests];
    /// <summary>The subjects of the client certificates of the requests, in order.</summary>
    public IReadOnlyList<string> ClientSubjects => [.. _clients];

    public IReadOnlyList<Node> Nodes { get { lock (_gate) return [.. _nodes.Values]; } }
    public IReadOnlyList<Pod> Pods { get { lock (_gate) return [.. _pods.Values]; } }
    /// <summary>namespace/name of each allowed eviction, in order.</summary>
    public IReadOnlyList<string> Evictions { get { lock (_gate) return [.. _evictions]; } }
    public IReadOnlyList<string> DeletedNodes { get { lock (_gate) return [.. _deletedNodes]; } }
    /// <summary>kubernetesVersion in kube-system/kubeadm-config's ClusterConfiguration, and when it was last changed.</summary>
    public string KubeadmKubernetesVersion { get; set; } = "v1.31.1";
    public DateTime? KubeadmConfigChangedAt { get; private set; }
    /// <summary>The image of kube-system/kube-proxy's container (null: no kube-proxy DaemonSet), and when it was last changed.</summary>
    public string? KubeProxyImage { get; set; } = "registry.k8s.io/kube-proxy:v1.31.1";
    public DateTime? KubeProxyChangedAt { get; private set; }
    private int _resourceVersion = 1;

    /// <summary>A kubelet registers its Node; one registering again (a new server of the same name) updates it, cordon kept.</summary>
    public void AddNode(string name, string kubeletVersion, bool ready = true)
    {
        lock (_gate)
            _nodes[name] = _nodes.TryGetValue(name, out var node) ? node with { Ready = ready, KubeletVersion = kubeletVersion } : new Node(name, ready, kubeletVersion, false);
    }

    public void SetNodeReady(string name, bool ready)
    {
        lock (_gate) _nodes[name] = _nodes[name] with { Ready = ready };
    }

    public void RemoveNode(string name)
    {
        lock (_gate) _nodes.Remove(name);
    }

    /// <summary>
    /// A pod on <paramref name="node"/>. <paramref name="ownerKind"/>: the kind of its controller — "DaemonSet", or
    /// "Node" for a mirror pod (a kubelet's static pod: owned by its Node and annotated kubernetes.io/config.mirror).
    /// <paramref name="blockedByPdb"/>: its eviction is refused as a PodDisruptionBudget refuses it, until <see cref="UnblockPod"/>.
    /// </summary>
    public void AddPod(string ns, string name, string node, string? ownerKind = null, bool blockedByPdb = false, string phase = "Running")
    {
        lock (_gate) _pods.Add($"{ns}/{name}", new Pod(ns, name, node, ownerKind, blockedByPdb, phase, false));
    }

    public void UnblockPod(string ns, string name)
    {
        lock (_gate) _pods[$"{ns}/{name}"] = _pods[$"{ns}/{name}"] with { BlockedByPdb = false };
    }

    /// <summary>The terminating pods' containers stopped: they are gone.</summary>
    public void FinishTerminations()
    {
        lock (_gate)
            foreach (var pod in _pods.Values.Where(p => p.Terminating).ToList()) _pods.Remove($"{pod.Namespace}/{pod.Name}");
    }

    /// <summary>
    /// Serves on 127.0.0.1 (any free port, or <paramref name="port"/> — the port of a stopped stand-in, to play an API
    /// server that comes back) with a serving certificate of <paramref name="ca"/>, accepting client certificates of that CA only.
    /// </summary>
    public static async Task<KubernetesApiStandIn> StartAsync(CertificateAuthorityMaterial ca, int port = 0)
    {
        var names = ClusterPki.ApiServerNames("10.254.0.0/16", "cluster.local", ["127.0.0.1"]);
        var serving = ClusterPki.IssueCertificate(ca, "kube-apiserver", [], CertificatePurpose.Server, names, TimeSpan.FromDays(1));
        using var pem = X509Certificate2.CreateFromPem(serving.CertificatePem, serving.PrivateKeyPem);
        var certificate = X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null); // Kestrel wants a persisted key
        var roots = new X509Certificate2Collection();
        roots.ImportFromPem(ca.CertificatePem);
        var builder = Microsoft.AspNetCore.Builder.WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseShutdownTimeout(TimeSpan.FromSeconds(2));
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, port, l => l.UseHttps(new HttpsConnectionAdapterOptions
        {
            ServerCertificate = certificate,
            ClientCertificateMode = ClientCertificateMode.RequireCertificate,
            ClientCertificateValidation = (client, _, _) =>
            {
                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.AddRange(roots);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                chain.ChainPolicy.ApplicationPolicy.Add(new Oid("1.3.6.1.5.5.7.3.2"));
                return chain.Build(client);
            },
        })));
        var app = builder.Build();
        var standIn = new KubernetesApiStandIn(app);
        standIn.Map(app);
        await app.StartAsync();
        standIn.Port = new Uri(app.Urls.First()).Port;
        standIn.Url = $"https://127.0.0.1:{standIn.Port}/";
        return standIn;
    }

    /// <summary>Stops serving (connections are closed; new ones refused). Start a new stand-in on <see cref="Port"/> to come back.</summary>
    public async Task StopAsync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 1) return;
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    public async ValueTask DisposeAsync() => await StopAsync();

    private void Map(Microsoft.AspNetCore.Builder.WebApplication app)
    {
        app.Use(async (http, next) =>
        {
            _connections.TryAdd(http.Connection.Id, 0);
            _requests.Enqueue($"{http.Request.Method} {http.Request.Path}{http.Request.QueryString}");
            _clients.Enqueue(http.Connection.ClientCertificate?.Subject ?? "");
            if (ResponseDelay > TimeSpan.Zero) await Task.Delay(ResponseDelay, http.RequestAborted);
            await next(http);
        });
        app.MapGet("/version", () => Results.Json(new { major = "1", minor = "32", gitVersion = "v1.32.1", platform = "linux/amd64" }));
        app.MapGet("/readyz", () => ReadyzOk
            ? Results.Text("ok", "text/plain; charset=utf-8")
            : Results.Text($"[+]ping ok\n[+]log ok\n{FailedChecks.Split('\n')[0]}\n[+]poststarthook/start-informers ok\n{FailedChecks.Split('\n')[1]}\n",
                "text/plain; charset=utf-8", Encoding.UTF8, 500));
        app.MapGet("/api/v1/nodes", () =>
        {
            lock (_gate)
                return Object(new V1NodeList { ApiVersion = "v1", Kind = "NodeList", Metadata = new V1ListMeta { ResourceVersion = "1" }, Items = [.. _nodes.Values.Select(NodeObject)] });
        });
        app.MapGet("/api/v1/nodes/{name}", (string name) =>
        {
            lock (_gate)
                return _nodes.TryGetValue(name, out var node) ? Object(NodeObject(node)) : NotFound("nodes", name);
        });
        app.MapMethods("/api/v1/nodes/{name}", ["PATCH"], async (string name, HttpRequest request) =>
        {
            var type = request.ContentType?.Split(';')[0].Trim();
            if (type is not ("application/strategic-merge-patch+json" or "application/merge-patch+json" or "application/json-patch+json"))
                return Status(415, "UnsupportedMediaType", $"the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml");
            var patch = JsonNode.Parse(await new StreamReader(request.Body).ReadToEndAsync());
            bool? unschedulable;
            if (type == "application/json-patch+json")
            {
                // [{"op":"replace","path":"/spec/unschedulable","value":true}]
                var op = patch!.AsArray().LastOrDefault(o => (string?)o!["path"] == "/spec/unschedulable");
                unschedulable = op is null ? null : (string?)op["op"] == "remove" ? false : (bool?)op["value"];
            }
            else
            {
                var spec = patch!["spec"];
                unschedulable = spec is JsonObject o && o.ContainsKey("unschedulable") ? (bool?)o["unschedulable"] ?? false : null;
            }
            lock (_gate)
            {
                if (!_nodes.TryGetValue(name, out var node)) return NotFound("nodes", name);
                if (unschedulable is { } u) _nodes[name] = node = node with { Unschedulable = u };
                return Object(NodeObject(node));
            }
        });
        app.MapDelete("/api/v1/nodes/{name}", (string name) =>
        {
            lock (_gate)
            {
                if (!_nodes.Remove(name)) return NotFound("nodes", name);
                _deletedNodes.Add(name);
                return Status(200, null, null, new JsonObject { ["name"] = name, ["kind"] = "nodes", ["uid"] = Uid(name) });
            }
        });
        // kubeadm's ClusterConfiguration (what kubeadm join --control-plane reads) and kube-proxy, both edited by JSON patch.
        app.MapGet("/api/v1/namespaces/kube-system/configmaps/kubeadm-config", () => { lock (_gate) return Json(KubeadmConfig()); });
        app.MapMethods("/api/v1/namespaces/kube-system/configmaps/kubeadm-config", ["PATCH"], async (HttpRequest request) =>
        {
            if (request.ContentType?.StartsWith("application/json-patch+json") != true) return Status(415, "UnsupportedMediaType", "json-patch expected");
            var ops = JsonNode.Parse(await new StreamReader(request.Body).ReadToEndAsync())!.AsArray();
            lock (_gate)
            {
                var doc = KubeadmConfig();
                foreach (var op in ops)
                {
                    if ((string?)op!["op"] == "test" && (string?)op["path"] == "/metadata/resourceVersion" && (string?)op["value"] != (string?)doc["metadata"]!["resourceVersion"])
                        return Status(422, "Invalid", "the server rejected our request due to an error in our request: test failed");
                    if ((string?)op["op"] == "replace" && (string?)op["path"] == "/data/ClusterConfiguration")
                    {
                        var yaml = (string)op["value"]!;
                        var line = yaml.Split('\n').FirstOrDefault(l => l.StartsWith("kubernetesVersion: "));
                        if (line is null) return Status(422, "Invalid", "ClusterConfiguration without kubernetesVersion");
                        KubeadmKubernetesVersion = line["kubernetesVersion: ".Length..].Trim();
                        KubeadmConfigChangedAt = DateTime.UtcNow;
                        _resourceVersion++;
                    }
                }
                return Json(KubeadmConfig());
            }
        });
        app.MapGet("/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy", () =>
        {
            lock (_gate) return KubeProxyImage is null ? NotFound("daemonsets.apps", "kube-proxy") : Json(KubeProxy());
        });
        app.MapMethods("/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy", ["PATCH"], async (HttpRequest request) =>
        {
            var ops = JsonNode.Parse(await new StreamReader(request.Body).ReadToEndAsync())!.AsArray();
            lock (_gate)
            {
                if (KubeProxyImage is null) return NotFound("daemonsets.apps", "kube-proxy");
                foreach (var op in ops.Where(o => (string?)o!["op"] == "replace" && (string?)o["path"] == "/spec/template/spec/containers/0/image"))
                {
                    KubeProxyImage = (string)op!["value"]!;
                    KubeProxyChangedAt = DateTime.UtcNow;
                }
                return Json(KubeProxy());
            }
        });
        app.MapGet("/api/v1/pods", (HttpRequest request) =>
        {
            string? nodeName = null;
            if (request.Query["fieldSelector"].ToString() is { Length: > 0 } selector)
            {
                var parts = selector.Split("==") is { Length: 2 } twice ? twice : selector.Split('=');
                if (parts is not ["spec.nodeName", var value])
                    return Status(400, "BadRequest", $"Unable to find \"/v1, Resource=pods\" that match label selector \"\", field selector \"{selector}\": field label not supported: {selector.Split('=')[0]}");
                nodeName = value;
            }
            lock (_gate)
                return Object(new V1PodList
                {
                    ApiVersion = "v1", Kind = "PodList", Metadata = new V1ListMeta { ResourceVersion = "1" },
                    Items = [.. _pods.Values.Where(p => nodeName is null || p.NodeName == nodeName).Select(PodObject)],
                });
        });
        app.MapPost("/api/v1/namespaces/{ns}/pods/{name}/eviction", async (string ns, string name, HttpRequest request) =>
        {
            var body = JsonNode.Parse(await new StreamReader(request.Body).ReadToEndAsync());
            if ((string?)body?["kind"] != "Eviction" || (string?)body["apiVersion"] is not ("policy/v1" or "policy/v1beta1"))
                return Status(400, "BadRequest", "the body is not an Eviction");
            if ((string?)body["metadata"]?["name"] != name)
                return Status(400, "BadRequest", "name in URL does not match name in Eviction object");
            lock (_gate)
            {
                var key = $"{ns}/{name}";
                if (!_pods.TryGetValue(key, out var pod)) return NotFound("pods", name);
                if (pod.BlockedByPdb)
                    return Status(429, "TooManyRequests", DisruptionBudgetMessage, new JsonObject
                    {
                        ["causes"] = new JsonArray(new JsonObject
                        {
                            ["reason"] = "DisruptionBudget",
                            ["message"] = $"The disruption budget {name}-pdb needs 1 healthy pods and has 1 currently",
                        }),
                    });
                if (!pod.Terminating)
                {
                    _evictions.Add(key);
                    if (GracefulEvictions) _pods[key] = pod with { Terminating = true };
                    else _pods.Remove(key);
                }
                return Status(201, null, null);
            }
        });
    }

    private static V1Node NodeObject(Node node) => new()
    {
        ApiVersion = "v1",
        Kind = "Node",
        Metadata = new V1ObjectMeta
        {
            Name = node.Name, Uid = Uid(node.Name), ResourceVersion = "1", CreationTimestamp = DateTime.UtcNow.Date,
            Labels = new Dictionary<string, string> { ["kubernetes.io/hostname"] = node.Name, ["kubernetes.io/os"] = "linux" },
        },
        Spec = new V1NodeSpec { Unschedulable = node.Unschedulable ? true : null }, // omitted when false, as the API server does
        Status = new V1NodeStatus
        {
            Conditions =
            [
                new V1NodeCondition { Type = "MemoryPressure", Status = "False", Reason = "KubeletHasSufficientMemory" },
                new V1NodeCondition
                {
                    Type = "Ready", Status = node.Ready ? "True" : "False", Reason = node.Ready ? "KubeletReady" : "KubeletNotReady",
                    Message = node.Ready ? "kubelet is posting ready status" : "container runtime network not ready: NetworkReady=false",
                    LastHeartbeatTime = DateTime.UtcNow, LastTransitionTime = DateTime.UtcNow.Date,
                },
            ],
            NodeInfo = new V1NodeSystemInfo
            {
                KubeletVersion = node.KubeletVersion, KubeProxyVersion = node.KubeletVersion, Architecture = "amd64", OperatingSystem = "linux",
                BootID = Uid("boot-" + node.Name), MachineID = "0", SystemUUID = Uid("system-" + node.Name), ContainerRuntimeVersion = "containerd://1.7.24",
                KernelVersion = "6.8.0-51-generic", OsImage = "Ubuntu 24.04.1 LTS",
            },
        },
    };

    private static V1Pod PodObject(Pod pod) => new()
    {
        ApiVersion = "v1",
        Kind = "Pod",
        Metadata = new V1ObjectMeta
        {
            Name = pod.Name, NamespaceProperty = pod.Namespace, Uid = Uid($"{pod.Namespace}/{pod.Name}"), ResourceVersion = "1",
            DeletionTimestamp = pod.Terminating ? DateTime.UtcNow : null,
            DeletionGracePeriodSeconds = pod.Terminating ? 30 : null,
            OwnerReferences = pod.OwnerKind is null ? null :
            [
                new V1OwnerReference
                {
                    ApiVersion = pod.OwnerKind == "Node" ? "v1" : "apps/v1", Kind = pod.OwnerKind, Controller = true,
                    Name = pod.OwnerKind == "Node" ? pod.NodeName : pod.Name.Split('-')[0], Uid = Uid("owner-" + pod.Name),
                },
            ],
            Annotations = pod.OwnerKind == "Node" ? new Dictionary<string, string> { ["kubernetes.io/config.mirror"] = Uid("mirror-" + pod.Name) } : null,
        },
        Spec = new V1PodSpec { NodeName = pod.NodeName, Containers = [new V1Container { Name = "main", Image = "registry.k8s.io/pause:3.10" }] },
        Status = new V1PodStatus { Phase = pod.Phase },
    };

    private JsonObject KubeadmConfig() => new()
    {
        ["apiVersion"] = "v1", ["kind"] = "ConfigMap",
        ["metadata"] = new JsonObject { ["name"] = "kubeadm-config", ["namespace"] = "kube-system", ["resourceVersion"] = _resourceVersion.ToString() },
        ["data"] = new JsonObject
        {
            ["ClusterConfiguration"] = $"apiServer: {{}}\napiVersion: kubeadm.k8s.io/v1beta4\ncontrolPlaneEndpoint: 172.24.1.5:6443\nkind: ClusterConfiguration\nkubernetesVersion: {KubeadmKubernetesVersion}\nnetworking:\n  podSubnet: 10.100.0.0/16\n",
        },
    };

    private JsonObject KubeProxy() => new()
    {
        ["apiVersion"] = "apps/v1", ["kind"] = "DaemonSet",
        ["metadata"] = new JsonObject { ["name"] = "kube-proxy", ["namespace"] = "kube-system" },
        ["spec"] = new JsonObject
        {
            ["selector"] = new JsonObject { ["matchLabels"] = new JsonObject { ["k8s-app"] = "kube-proxy" } },
            ["template"] = new JsonObject { ["spec"] = new JsonObject { ["containers"] = new JsonArray(new JsonObject { ["name"] = "kube-proxy", ["image"] = KubeProxyImage }) } },
        },
    };

    private static IResult Json(JsonObject o) => Results.Text(o.ToJsonString(), "application/json", Encoding.UTF8, 200);

    private static IResult Object<T>(T value) => Results.Text(KubernetesJson.Serialize(value), "application/json", Encoding.UTF8, 200);

    private static IResult NotFound(string resource, string name)
        => Status(404, "NotFound", $"{resource} \"{name}\" not found", new JsonObject { ["name"] = name, ["kind"] = resource });

    /// <summary>A metav1.Status (the client library does not serialise V1Status, so it is written by hand).</summary>
    private static IResult Status(int code, string? reason, string? message, JsonObject? details = null)
    {
        var status = new JsonObject { ["kind"] = "Status", ["apiVersion"] = "v1", ["metadata"] = new JsonObject(), ["status"] = code < 400 ? "Success" : "Failure" };
        if (message is not null) status["message"] = message;
        if (reason is not null) status["reason"] = reason;
        if (details is not null) status["details"] = details;
        status["code"] = code;
        return Results.Text(status.ToJsonString(), "application/json", Encoding.UTF8, code);
    }

    private static string Uid(string seed) => new Guid(MD5.HashData(Encoding.UTF8.GetBytes(seed))).ToString();
}
