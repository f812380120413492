using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Magnetar.Autoscaler.ExternalGrpc;
using Magnetar.Conductor;
using Magnetar.Domain;
using Magnetar.Persistence;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using NodeGroup = Magnetar.Domain.NodeGroup;
using ProtoNodeGroup = Magnetar.Autoscaler.ExternalGrpc.NodeGroup;

namespace Magnetar.Autoscaler;

/// <summary>
/// The cluster-autoscaler's <c>externalgrpc</c> cloud provider, for one cluster per caller: the cluster named by the
/// caller's client certificate (<see cref="AutoscalerAuthority"/>). Its node groups are the cluster's worker
/// nodegroups (id = nodegroup name) between their min_node_count and max_node_count. A scale-up is a nodegroup
/// resize; a scale-down removes exactly the nodes named (Magnum's resize with nodes_to_remove). The conductor carries
/// them out as any resize; the nodegroup's node_count is the target size from the moment the call returns.
/// </summary>
public sealed class CloudProviderService(
    IDbContextFactory<MagnetarDbContext> dbFactory,
    AutoscalerAuthority authority,
    AutoscalerOptions options,
    BootstrapOptions bootstrap,
    ReconcileSignal signal,
    TimeProvider time,
    ILogger<CloudProviderService> logger) : CloudProvider.CloudProviderBase
{
    /// <summary>The provider id openstack-cloud-controller-manager gives a node: openstack:///&lt;server id&gt;.</summary>
    public const string ProviderIdPrefix = "openstack:///";
    /// <summary>The instance id of a node whose server id is not known yet.</summary>
    public const string PendingIdPrefix = "magnetar:///";
    /// <summary>Labels of the cluster-autoscaler's own vocabulary a nodegroup may carry (per-nodegroup options).</summary>
    public const string ScaleDownUtilizationLabel = "scale_down_utilization_threshold", ScaleDownUnneededLabel = "scale_down_unneeded_time";
    // The autoscaler's instance error classes (cloudprovider.InstanceErrorClass).
    private const int OutOfResourcesErrorClass = 1, OtherErrorClass = 99;

    public override async Task<RefreshResponse> Refresh(RefreshRequest request, ServerCallContext context)
    {
        // Nothing is cached between calls: every answer is read from the database, so a nodegroup's new min/max
        // (openstack coe nodegroup update) is what the next call sees.
        await CallerAsync(context);
        return new RefreshResponse();
    }

    public override async Task<CleanupResponse> Cleanup(CleanupRequest request, ServerCallContext context)
    {
        await CallerAsync(context);
        return new CleanupResponse();
    }

    public override async Task<NodeGroupsResponse> NodeGroups(NodeGroupsRequest request, ServerCallContext context)
    {
        var (cluster, _) = await CallerAsync(context);
        var response = new NodeGroupsResponse();
        response.NodeGroups.AddRange(Scalable(cluster).Select(ToProto));
        return response;
    }

    public override async Task<NodeGroupForNodeResponse> NodeGroupForNode(NodeGroupForNodeRequest request, ServerCallContext context)
    {
        var (cluster, db) = await CallerAsync(context);
        var node = request.Node ?? throw Invalid("node is required");
        var state = await FindNodeAsync(db, cluster, node, context.CancellationToken);
        var group = state is null ? null : Scalable(cluster).FirstOrDefault(g => g.Name == state.NodeGroup);
        // Not ours, or a control-plane node: an empty id tells the autoscaler to leave the node alone.
        return new NodeGroupForNodeResponse { NodeGroup = group is null ? new ProtoNodeGroup { Id = "" } : ToProto(group) };
    }

    public override async Task<NodeGroupTargetSizeResponse> NodeGroupTargetSize(NodeGroupTargetSizeRequest request, ServerCallContext context)
    {
        var (cluster, _) = await CallerAsync(context);
        return new NodeGroupTargetSizeResponse { TargetSize = Group(cluster, request.Id).NodeCount };
    }

    public override async Task<NodeGroupIncreaseSizeResponse> NodeGroupIncreaseSize(NodeGroupIncreaseSizeRequest request, ServerCallContext context)
    {
        if (request.Delta <= 0) throw Invalid($"delta must be positive, not {request.Delta}");
        await ChangeAsync(context, request.Id, (cluster, group, _) =>
        {
            var max = MaxSize(group);
            var target = group.NodeCount + request.Delta;
            if (target > max)
                throw new RpcException(new Status(StatusCode.OutOfRange, $"increasing {group.Name} of cluster {cluster.Name} by {request.Delta} to {target} nodes exceeds its max_node_count ({Max(group)})"));
            var from = group.NodeCount;
            group.NodeCount = target;
            return Task.FromResult(($"autoscaler: +{request.Delta} node{(request.Delta == 1 ? "" : "s")} in {group.Name} ({from} → {target})", true));
        });
        return new NodeGroupIncreaseSizeResponse();
    }

    public override async Task<NodeGroupDeleteNodesResponse> NodeGroupDeleteNodes(NodeGroupDeleteNodesRequest request, ServerCallContext context)
    {
        if (request.Nodes.Count == 0) throw Invalid("no nodes named");
        await ChangeAsync(context, request.Id, async (cluster, group, db) =>
        {
            var names = new List<string>();
            foreach (var node in request.Nodes)
            {
                var state = await FindNodeAsync(db, cluster, node, context.CancellationToken);
                if (state is null || state.NodeGroup != group.Name)
                    throw new RpcException(new Status(StatusCode.NotFound, $"node {Describe(node)} is not a node of {group.Name} in cluster {cluster.Name}"));
                if (!names.Contains(state.NodeName)) names.Add(state.NodeName);
            }
            var already = names.Where(group.NodesToRemove.Contains).ToList();
            var fresh = names.Except(already).ToList();
            var target = group.NodeCount - fresh.Count;
            if (target < group.MinNodeCount)
                throw new RpcException(new Status(StatusCode.FailedPrecondition, $"removing {fresh.Count} node{(fresh.Count == 1 ? "" : "s")} from {group.Name} of cluster {cluster.Name} would leave {target}, below its min_node_count ({group.MinNodeCount})"));
            if (fresh.Count == 0) return ($"", false); // asked again while the first request is carried out
            var from = group.NodeCount;
            group.NodeCount = target;
            group.NodesToRemove = [.. group.NodesToRemove, .. fresh];
            return ($"autoscaler: removing {string.Join(", ", fresh)} from {group.Name} ({from} → {target})", true);
        });
        return new NodeGroupDeleteNodesResponse();
    }

    public override async Task<NodeGroupDecreaseTargetSizeResponse> NodeGroupDecreaseTargetSize(NodeGroupDecreaseTargetSizeRequest request, ServerCallContext context)
    {
        if (request.Delta >= 0) throw Invalid($"delta must be negative, not {request.Delta}");
        await ChangeAsync(context, request.Id, async (cluster, group, db) =>
        {
            var target = group.NodeCount + request.Delta;
            var existing = await db.NodeStates.CountAsync(s => s.ClusterUuid == cluster.Uuid && s.NodeGroup == group.Name
                && !s.NodeName.Contains(InitMarker.Infix) && s.ServerStatus != NodeBootstrapper.Gone && s.RetireStep == null && !group.NodesToRemove.Contains(s.NodeName), context.CancellationToken);
            if (target < existing)
                throw new RpcException(new Status(StatusCode.FailedPrecondition, $"decreasing the target of {group.Name} of cluster {cluster.Name} to {target} would delete existing nodes ({existing} exist): name them with DeleteNodes"));
            if (target < group.MinNodeCount)
                throw new RpcException(new Status(StatusCode.FailedPrecondition, $"decreasing the target of {group.Name} of cluster {cluster.Name} to {target} goes below its min_node_count ({group.MinNodeCount})"));
            var from = group.NodeCount;
            group.NodeCount = target;
            return ($"autoscaler: target of {group.Name} lowered by {-request.Delta} for nodes not yet created ({from} → {target})", true);
        });
        return new NodeGroupDecreaseTargetSizeResponse();
    }

    public override async Task<NodeGroupNodesResponse> NodeGroupNodes(NodeGroupNodesRequest request, ServerCallContext context)
    {
        var (cluster, db) = await CallerAsync(context);
        var group = Group(cluster, request.Id);
        var states = await db.NodeStates.AsNoTracking()
            .Where(s => s.ClusterUuid == cluster.Uuid && s.NodeGroup == group.Name && !s.NodeName.Contains(InitMarker.Infix) && s.ServerStatus != NodeBootstrapper.Gone)
            .OrderBy(s => s.Id).ToListAsync(context.CancellationToken);
        var response = new NodeGroupNodesResponse();
        foreach (var s in states) response.Instances.Add(new Instance { Id = InstanceId(cluster, s), Status = StatusOf(group, s) });
        return response;
    }

    public override async Task<GPULabelResponse> GPULabel(GPULabelRequest request, ServerCallContext context)
    {
        await CallerAsync(context);
        // The label NVIDIA's GPU feature discovery puts on GPU nodes; Magnetar's flavors carry no GPU type of their own.
        return new GPULabelResponse { Label = "nvidia.com/gpu.present" };
    }

    public override async Task<GetAvailableGPUTypesResponse> GetAvailableGPUTypes(GetAvailableGPUTypesRequest request, ServerCallContext context)
    {
        await CallerAsync(context);
        return new GetAvailableGPUTypesResponse(); // none: no nodegroup is a GPU type
    }

    public override async Task<NodeGroupAutoscalingOptionsResponse> NodeGroupGetOptions(NodeGroupAutoscalingOptionsRequest request, ServerCallContext context)
    {
        var (cluster, _) = await CallerAsync(context);
        var group = Group(cluster, request.Id);
        var result = request.Defaults?.Clone() ?? new NodeGroupAutoscalingOptions();
        if (group.Labels.TryGetValue(ScaleDownUtilizationLabel, out var u))
        {
            if (!double.TryParse(u, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var threshold) || threshold is < 0 or > 1)
                throw new RpcException(new Status(StatusCode.FailedPrecondition, $"nodegroup {group.Name}: label {ScaleDownUtilizationLabel}='{u}' is not a number between 0 and 1"));
            result.ScaleDownUtilizationThreshold = threshold;
        }
        if (group.Labels.TryGetValue(ScaleDownUnneededLabel, out var d))
        {
            if (ParseDuration(d) is not { } span)
                throw new RpcException(new Status(StatusCode.FailedPrecondition, $"nodegroup {group.Name}: label {ScaleDownUnneededLabel}='{d}' is not a duration like 10m or 90s"));
            result.ScaleDownUnneededDuration = Duration.FromTimeSpan(span);
        }
        return new NodeGroupAutoscalingOptionsResponse { NodeGroupAutoscalingOptions = result };
    }

    // PricingNodePrice, PricingPodPrice and NodeGroupTemplateNodeInfo answer Unimplemented, which the autoscaler
    // accepts: no prices in a private cloud, and no template node (scale-up from zero nodes is not possible; a group
    // with a node is simulated from that node). The caller is authenticated first, as for every call.
    public override async Task<PricingNodePriceResponse> PricingNodePrice(PricingNodePriceRequest request, ServerCallContext context)
    {
        await CallerAsync(context);
        throw Unimplemented("prices: a private cloud's nodes have none here");
    }

    public override async Task<PricingPodPriceResponse> PricingPodPrice(PricingPodPriceRequest request, ServerCallContext context)
    {
        await CallerAsync(context);
        throw Unimplemented("prices: a private cloud's nodes have none here");
    }

    public override async Task<NodeGroupTemplateNodeInfoResponse> NodeGroupTemplateNodeInfo(NodeGroupTemplateNodeInfoRequest request, ServerCallContext context)
    {
        var (cluster, _) = await CallerAsync(context);
        Group(cluster, request.Id);
        throw Unimplemented("no template node: the autoscaler simulates a nodegroup from one of its nodes (scale-up from zero is not possible)");
    }

    private static RpcException Unimplemented(string why) => new(new Status(StatusCode.Unimplemented, why));

    // ---- the caller and its cluster ----

    private async Task<(Cluster Cluster, MagnetarDbContext Db)> CallerAsync(ServerCallContext context, bool track = false)
    {
        var http = context.GetHttpContext();
        if (http.Connection.LocalPort != options.Port)
            throw new RpcException(new Status(StatusCode.PermissionDenied, "the autoscaler service is served on its own port only"));
        var certificate = http.Connection.ClientCertificate ?? await http.Connection.GetClientCertificateAsync(context.CancellationToken);
        // The certificate is the TLS connection's: once its chain was verified, the connection's later calls (an
        // autoscaler keeps one open) only check that it has not expired since.
        var items = http.Features.Get<IConnectionItemsFeature>()?.Items;
        string? uuid;
        if (items?.TryGetValue(typeof(AuthenticatedConnection), out var cached) == true && cached is AuthenticatedConnection known
            && ReferenceEquals(known.Certificate, certificate) && known.NotAfter > time.GetUtcNow())
            uuid = known.ClusterUuid;
        else
        {
            (uuid, var refusal) = await authority.AuthenticateAsync(certificate, context.CancellationToken);
            if (uuid is null)
            {
                logger.LogWarning("Autoscaler call {Method} from {Remote} refused: {Reason}", context.Method, http.Connection.RemoteIpAddress, refusal);
                throw new RpcException(new Status(StatusCode.Unauthenticated, refusal!));
            }
            if (items is not null) items[typeof(AuthenticatedConnection)] = new AuthenticatedConnection(certificate!, uuid, certificate!.NotAfter.ToUniversalTime());
        }
        var db = await dbFactory.CreateDbContextAsync(context.CancellationToken);
        http.Response.RegisterForDispose(db);
        // Reads (an idle autoscaler's every call) load only what the answers use; changes load the tracked entities.
        var cluster = (track
            ? await db.Clusters.Include(c => c.NodeGroups).AsSplitQuery().FirstOrDefaultAsync(c => c.Uuid == uuid, context.CancellationToken)
            : await db.Clusters.AsNoTracking().Where(c => c.Uuid == uuid).Select(c => new Cluster
            {
                Id = c.Id, Uuid = c.Uuid, Name = c.Name, Labels = c.Labels, Status = c.Status, Operation = c.Operation, CaRotationStep = c.CaRotationStep,
                NodeGroups = c.NodeGroups.Select(n => new NodeGroup
                {
                    Id = n.Id, Uuid = n.Uuid, Name = n.Name, Role = n.Role, DeleteRequested = n.DeleteRequested, NodeCount = n.NodeCount,
                    MinNodeCount = n.MinNodeCount, MaxNodeCount = n.MaxNodeCount, FlavorId = n.FlavorId, Status = n.Status, Labels = n.Labels,
                    NodesToRemove = n.NodesToRemove,
                }).ToList(),
            }).FirstOrDefaultAsync(context.CancellationToken))
            ?? throw new RpcException(new Status(StatusCode.Unauthenticated, $"cluster {uuid} no longer exists: its autoscaler certificate is void"));
        if (!AutoscalingEnabled(cluster))
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"autoscaling is not enabled on cluster {cluster.Name} (label {AutoscalingLabel}=true)"));
        return (cluster, db);
    }

    private sealed record AuthenticatedConnection(System.Security.Cryptography.X509Certificates.X509Certificate2 Certificate, string ClusterUuid, DateTimeOffset NotAfter);

    public const string AutoscalingLabel = "auto_scaling_enabled";
    public static bool AutoscalingEnabled(Cluster cluster) => Labels.Flag(cluster.Labels, AutoscalingLabel, false);

    /// <summary>Worker nodegroups that are not being deleted: what the autoscaler may resize.</summary>
    private static IEnumerable<NodeGroup> Scalable(Cluster cluster)
        => cluster.NodeGroups.Where(n => n.Role != NodeGroupRoles.Master && !n.DeleteRequested).OrderBy(n => n.Id);

    private static NodeGroup Group(Cluster cluster, string id)
        => Scalable(cluster).FirstOrDefault(g => g.Name == id)
           ?? throw new RpcException(new Status(StatusCode.NotFound, $"cluster {cluster.Name} has no worker nodegroup '{id}'"));

    /// <summary>Without a max_node_count the autoscaler may shrink a nodegroup (to its minimum) but not grow it.</summary>
    private static int MaxSize(NodeGroup g) => g.MaxNodeCount ?? g.NodeCount;
    private static string Max(NodeGroup g) => g.MaxNodeCount?.ToString() ?? $"not set, so {g.NodeCount}";

    private static ProtoNodeGroup ToProto(NodeGroup g) => new()
    {
        Id = g.Name,
        MinSize = g.MinNodeCount,
        MaxSize = Math.Max(MaxSize(g), g.MinNodeCount),
        Debug = $"nodegroup {g.Name} ({g.Uuid}): node_count {g.NodeCount}, min_node_count {g.MinNodeCount}, max_node_count {g.MaxNodeCount?.ToString() ?? "None"}, " +
                $"flavor {g.FlavorId ?? "cluster default"}, status {g.Status}",
    };

    private static async Task<NodeBootstrapState?> FindNodeAsync(MagnetarDbContext db, Cluster cluster, ExternalGrpcNode node, CancellationToken ct)
    {
        var serverId = node.ProviderID.StartsWith(ProviderIdPrefix, StringComparison.Ordinal) ? node.ProviderID[ProviderIdPrefix.Length..] : null;
        var pending = node.ProviderID.StartsWith(PendingIdPrefix, StringComparison.Ordinal) ? node.ProviderID[PendingIdPrefix.Length..] : null;
        var nodes = db.NodeStates.AsNoTracking().Where(s => s.ClusterUuid == cluster.Uuid && !s.NodeName.Contains(InitMarker.Infix) && s.ServerStatus != NodeBootstrapper.Gone);
        if (!string.IsNullOrEmpty(serverId)) return await nodes.FirstOrDefaultAsync(s => s.ServerId == serverId, ct);
        // No provider id (no cloud-controller-manager, as on the simulated cloud): the node's name is its server's.
        var name = pending is not null && pending.StartsWith(cluster.Uuid + "/", StringComparison.Ordinal) ? pending[(cluster.Uuid.Length + 1)..] : node.Name;
        return string.IsNullOrEmpty(name) ? null : await nodes.FirstOrDefaultAsync(s => s.NodeName == name, ct);
    }

    private static string InstanceId(Cluster cluster, NodeBootstrapState s)
        => s.ServerId is { Length: > 0 } id ? ProviderIdPrefix + id : $"{PendingIdPrefix}{cluster.Uuid}/{s.NodeName}";

    private InstanceStatus StatusOf(NodeGroup group, NodeBootstrapState s)
    {
        var status = new InstanceStatus();
        if (s.RetireStep is not null || s.RetireReason is not null || group.NodesToRemove.Contains(s.NodeName))
            status.InstanceState = InstanceStatus.Types.InstanceState.InstanceDeleting;
        else if (s.ServerStatus == "ERROR")
        {
            status.InstanceState = InstanceStatus.Types.InstanceState.InstanceCreating;
            status.ErrorInfo = new InstanceErrorInfo { ErrorCode = "SERVER_ERROR", ErrorMessage = $"server of {s.NodeName} is in ERROR", InstanceErrorClass = OutOfResourcesErrorClass };
        }
        else if (s.Failed)
        {
            status.InstanceState = InstanceStatus.Types.InstanceState.InstanceCreating;
            status.ErrorInfo = new InstanceErrorInfo
            {
                ErrorCode = "BOOTSTRAP_FAILED",
                ErrorMessage = $"node {s.NodeName}: {s.Phase} failed" + (s.ExitCode is { } c ? $" with exit code {c}" : ""),
                InstanceErrorClass = OtherErrorClass,
            };
        }
        else
        {
            var running = bootstrap.ReadinessFromReports ? s.Phase == NodePhases.Ready : s.ServerStatus == "ACTIVE";
            status.InstanceState = running ? InstanceStatus.Types.InstanceState.InstanceRunning : InstanceStatus.Types.InstanceState.InstanceCreating;
        }
        return status;
    }

    // ---- changes ----

    /// <summary>
    /// Applies one change to a nodegroup of the caller's cluster and starts (or extends) the cluster's update, retrying
    /// when the conductor saved the cluster in between. Refused while an operation that must not overlap runs.
    /// </summary>
    private async Task ChangeAsync(ServerCallContext context, string id, Func<Cluster, NodeGroup, MagnetarDbContext, Task<(string Event, bool Changed)>> change)
    {
        for (var attempt = 1; ; attempt++)
        {
            var (cluster, db) = await CallerAsync(context, track: true);
            var group = Group(cluster, id);
            EnsureScalable(cluster);
            var (message, changed) = await change(cluster, group, db);
            if (!changed) return;
            var now = time.GetUtcNow();
            group.Status = ClusterStatus.UpdateInProgress;
            group.UpdatedAt = now;
            if (cluster.Operation != ClusterOperations.Update)
            {
                cluster.Operation = ClusterOperations.Update;
                cluster.OperationStartedAt = now;
            }
            cluster.Status = ClusterStatus.UpdateInProgress;
            cluster.StatusReason = message;
            cluster.NextReconcileAt = now;
            cluster.Generation++;
            cluster.UpdatedAt = now;
            db.ClusterEvents.Add(new ClusterEvent { ClusterUuid = cluster.Uuid, At = now, Type = "Normal", Reason = "Autoscaler", Message = message });
            try
            {
                await db.SaveChangesAsync(context.CancellationToken);
            }
            catch (DbUpdateConcurrencyException) when (attempt < 5)
            {
                continue; // the conductor saved the cluster meanwhile: read it again and decide again
            }
            catch (DbUpdateConcurrencyException)
            {
                throw new RpcException(new Status(StatusCode.Aborted, $"cluster {cluster.Name} kept changing while the autoscaler's request was applied; retry"));
            }
            logger.LogInformation("Cluster {Cluster} ({Uuid}): {Message}", cluster.Name, cluster.Uuid, message);
            signal.Poke();
            return;
        }
    }

    /// <summary>
    /// The autoscaler may change a cluster that is idle or in a resize (its own or the tenant's: the conductor converges
    /// on the newest target); never one being created, upgraded, healed, rotated or deleted, nor a failed one.
    /// </summary>
    private static void EnsureScalable(Cluster c)
    {
        string? why = c.Operation switch
        {
            ClusterOperations.Create => "is still being created",
            ClusterOperations.Upgrade => "is being upgraded",
            ClusterOperations.RotateCa => "is rotating its CA",
            ClusterOperations.Heal => "is replacing unhealthy nodes",
            ClusterOperations.Delete => "is being deleted",
            _ => null,
        };
        if (why is null && c.CaRotationStep is not null) why = $"has an unfinished CA rotation (stopped at step {c.CaRotationStep})";
        if (why is null && c.Operation is null && !(c.Status is ClusterStatus.CreateComplete or ClusterStatus.UpdateComplete or ClusterStatus.ResumeComplete or ClusterStatus.RestoreComplete or ClusterStatus.RollbackComplete or ClusterStatus.CheckComplete or ClusterStatus.AdoptComplete))
            why = $"is {c.Status}";
        if (why is not null)
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"cluster {c.Name} {why}: the autoscaler cannot resize it now"));
    }

    private static string Describe(ExternalGrpcNode node) => string.IsNullOrEmpty(node.ProviderID) ? node.Name : $"{node.Name} ({node.ProviderID})";
    private static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));

    /// <summary>A Go-style duration of one unit: 90s, 10m, 1h.</summary>
    private static TimeSpan? ParseDuration(string text)
    {
        if (text.Length < 2 || !int.TryParse(text[..^1], out var n) || n < 0) return null;
        return text[^1] switch { 's' => TimeSpan.FromSeconds(n), 'm' => TimeSpan.FromMinutes(n), 'h' => TimeSpan.FromHours(n), _ => null };
    }
}
