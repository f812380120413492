using System.Collections.Concurrent;
using Magnetar.Bootstrap.Secrets;
using Magnetar.Cloud;
using Magnetar.Domain;
using Magnetar.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Magnetar.Conductor;

/// <summary>
/// Keeps every idle cluster's <c>health_status</c> and <c>health_status_reason</c> current, as Magnum's periodic health
/// check does (same reason shape: <c>{"api": "ok", "&lt;node&gt;.Ready": "True"}</c>), from what can be known: the API
/// server's <c>/readyz</c> and Node objects (reached with Magnetar's own client certificate of the cluster CA), the
/// nodes' agents' heartbeats, and the cloud's servers. Transitions are events and metrics. With the label
/// <c>auto_healing_enabled=true</c> it starts replacing a worker that stayed unhealthy (server gone, ERROR or SHUTOFF,
/// NotReady, silent) for longer than the grace time, through the same machinery as upgrades — within guards: not when
/// too large a share of its nodegroup is unhealthy at once (a partition or an outage), one node per cluster per
/// interval, and every decision an event. One replica runs it at a time (a lease in <c>singleton_leases</c>); it reads
/// clusters in batches (a few queries and one cloud call per batch), so that idle clusters cost little.
/// </summary>
public sealed class HealthMonitor(
    IDbContextFactory<MagnetarDbContext> dbFactory,
    ICloudProvider cloud,
    IClusterApi clusterApi,
    ClusterApiAccessProvider apiAccess,
    ISecretProtector secrets,
    BootstrapOptions bootstrapOptions,
    HealthOptions options,
    ConductorIdentity identity,
    ReconcileSignal signal,
    TimeProvider time,
    ILogger<HealthMonitor> logger) : BackgroundService
{
    public const string LeaseName = "health-monitor";
    public const string ApiNotChecked = "not checked (Magnetar does not reach cluster APIs here)";
    private static readonly string[] JudgedStatuses =
    [
        ClusterStatus.CreateComplete, ClusterStatus.UpdateComplete, ClusterStatus.UpdateFailed, ClusterStatus.ResumeComplete,
        ClusterStatus.RestoreComplete, ClusterStatus.RollbackComplete, ClusterStatus.CheckComplete, ClusterStatus.AdoptComplete,
    ];
    /// <summary>The last guard decision per cluster, so that a refusal to heal is an event once, not every sweep.</summary>
    private readonly ConcurrentDictionary<string, string> _lastGuard = new();

    /// <summary>What the last sweep did (for tests and the benchmark).</summary>
    public SweepStats? LastSweep { get; private set; }

    public sealed record SweepStats(int Clusters, int Unhealthy, int Unknown, int UnhealthyNodes, int Transitions, int Healings, TimeSpan Duration);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!options.Enabled) return;
        var interval = TimeSpan.FromSeconds(Math.Max(1, options.IntervalSeconds));
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (await HoldLeaseAsync(interval * 3, stoppingToken))
                {
                    var sweep = LastSweep = await SweepAsync(stoppingToken);
                    logger.LogInformation("Health sweep: {Clusters} clusters in {Ms:F0} ms ({Unhealthy} unhealthy, {Unknown} unknown, {Nodes} unhealthy nodes, {Transitions} transitions, {Healings} nodes to heal)",
                        sweep.Clusters, sweep.Duration.TotalMilliseconds, sweep.Unhealthy, sweep.Unknown, sweep.UnhealthyNodes, sweep.Transitions, sweep.Healings);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { break; }
            catch (Exception ex) { logger.LogError(ex, "Health sweep failed; trying again in {Interval}", interval); }
            try { await Task.Delay(interval, time, stoppingToken); }
            catch (OperationCanceledException) { break; }
        }
    }

    /// <summary>Takes or keeps the monitor's lease (a conditional UPDATE: one replica wins); false when another replica holds it.</summary>
    private async Task<bool> HoldLeaseAsync(TimeSpan duration, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var now = time.GetUtcNow();
        var until = now + duration;
        if (!await db.SingletonLeases.AnyAsync(l => l.Name == LeaseName, ct))
        {
            db.SingletonLeases.Add(new SingletonLease { Name = LeaseName });
            try { await db.SaveChangesAsync(ct); } catch (DbUpdateException) { /* another replica inserted it */ }
        }
        return await db.SingletonLeases
            .Where(l => l.Name == LeaseName && (l.Owner == identity.Owner || l.ExpiresAt == null || l.ExpiresAt < now))
            .ExecuteUpdateAsync(u => u.SetProperty(l => l.Owner, identity.Owner).SetProperty(l => l.ExpiresAt, until), ct) == 1;
    }

    /// <summary>One look at every idle cluster, batch by batch.</summary>
    public async Task<SweepStats> SweepAsync(CancellationToken ct)
    {
        var started = time.GetTimestamp();
        int clusters = 0, unhealthy = 0, unknown = 0, unhealthyNodes = 0, transitions = 0, healings = 0;
        long lastId = 0;
        while (true)
        {
            await using var db = await dbFactory.CreateDbContextAsync(ct);
            var page = await db.Clusters.AsNoTracking()
                .Where(c => c.Id > lastId && c.Operation == null && JudgedStatuses.Contains(c.Status))
                .OrderBy(c => c.Id).Take(options.BatchSize).ToListAsync(ct);
            if (page.Count == 0) break;
            lastId = page[^1].Id;
            var batch = await JudgeBatchAsync(db, page, ct);
            clusters += page.Count;
            unhealthy += batch.Count(j => j.Status == HealthStatus.Unhealthy);
            unknown += batch.Count(j => j.Status == HealthStatus.Unknown);
            unhealthyNodes += batch.Sum(j => j.Unhealthy.Count);
            transitions += await RecordAsync(db, page, batch, ct);
            healings += await HealAsync(db, page, batch, ct);
            if (page.Count < options.BatchSize) break;
        }
        ConductorMetrics.RecordHealthSweep(unhealthy, unknown, unhealthyNodes);
        return new SweepStats(clusters, unhealthy, unknown, unhealthyNodes, transitions, healings, time.GetElapsedTime(started));
    }

    private sealed record UnhealthyNode(NodeBootstrapState State, string Why, bool ServerGone);

    private sealed record Judgement(string Status, Dictionary<string, string> Reason, List<UnhealthyNode> Unhealthy, List<NodeBootstrapState> Nodes);

    private async Task<List<Judgement>> JudgeBatchAsync(MagnetarDbContext db, List<Cluster> page, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var uuids = page.Select(c => c.Uuid).ToList();
        var states = (await db.NodeStates.AsNoTracking().Where(s => uuids.Contains(s.ClusterUuid)).ToListAsync(ct))
            .Where(s => !InitMarker.Is(s)).ToLookup(s => s.ClusterUuid);
        var credentials = cloud.Name == "simulated" ? new Dictionary<string, ClusterCloudCredential>()
            : await db.CloudCredentials.AsNoTracking().Where(c => uuids.Contains(c.ClusterUuid)).ToDictionaryAsync(c => c.ClusterUuid, ct);
        var refs = page.Select(c => new ClusterRef(c.Uuid, c.Name, c.ProjectId, credentials.TryGetValue(c.Uuid, out var row)
            ? new CloudCredential(row.CredentialId, secrets.Unprotect(row.ProtectedSecret, ClusterReconciler.CloudCredentialPurpose(c.Uuid)), row.UserId) : null)).ToList();
        var servers = await cloud.ObserveServersAsync(refs, ct);

        // The clusters' APIs, several at a time (the credentials are resolved first: one database context is not shared).
        var api = new ConcurrentDictionary<string, ClusterApiHealth>();
        if (apiAccess.Enabled)
        {
            var accesses = new List<ClusterApiAccess>();
            foreach (var c in page)
                if (await apiAccess.GetAsync(db, c, ct) is { } a) accesses.Add(a);
                else api[c.Uuid] = ClusterApiHealth.Unreachable("the cluster has no API address");
            await Parallel.ForEachAsync(accesses, new ParallelOptions { MaxDegreeOfParallelism = options.MaxParallelApiChecks, CancellationToken = ct },
                async (a, token) => api[a.ClusterUuid] = await clusterApi.GetHealthAsync(a, token));
        }

        var heartbeat = TimeSpan.FromSeconds(options.HeartbeatTimeoutSeconds);
        var judgements = new List<Judgement>(page.Count);
        foreach (var c in page)
        {
            var nodes = states[c.Uuid].Where(s => s.RetireStep is null).OrderBy(s => s.NodeName, StringComparer.Ordinal).ToList();
            var cloudServers = servers.TryGetValue(c.Uuid, out var list) ? list.ToDictionary(s => s.Name) : null;
            var apiHealth = api.GetValueOrDefault(c.Uuid);
            // The API answered /readyz but not the node list (Detail says why): nodes are then judged without it.
            var kubeNodes = apiHealth is { Reachable: true } && !(apiHealth.Nodes.Count == 0 && apiHealth.Detail is not null)
                ? apiHealth.Nodes.ToDictionary(n => n.Name) : null;
            var reason = new Dictionary<string, string>
            {
                ["api"] = apiHealth is null ? ApiNotChecked
                    : !apiHealth.Reachable ? $"unreachable: {apiHealth.Detail}"
                    : apiHealth.Ready ? "ok" : $"not ready: {apiHealth.Detail}",
            };
            if (cloudServers is null) reason["cloud"] = "the cluster's servers could not be listed";
            var bad = new List<UnhealthyNode>();
            foreach (var s in nodes)
            {
                string? why = null;
                var gone = false;
                var server = cloudServers?.GetValueOrDefault(s.NodeName);
                if (cloudServers is not null && server is null && s.CreatedAt < now - TimeSpan.FromSeconds(10)) { why = "server gone"; gone = true; }
                else if (server is not null && server.Status != "ACTIVE") why = $"server {server.Status}";
                else if (kubeNodes is not null && !kubeNodes.TryGetValue(s.NodeName, out _) && s.Phase == NodePhases.Ready) why = "no Node object in the cluster's API";
                else if (kubeNodes?.GetValueOrDefault(s.NodeName) is { Ready: false } k) why = $"NotReady ({k.ReadyReason ?? "no reason given"})";
                else if (bootstrapOptions.ReadinessFromReports && s.Phase == NodePhases.Ready
                         && (s.LastSeenAt ?? s.LastReportAt) is { } seen && now - seen > heartbeat)
                    why = $"silent: its agent last asked for work {(int)(now - seen).TotalSeconds} s ago";
                reason[$"{s.NodeName}.Ready"] = why is null ? "True" : "False";
                if (why is not null)
                {
                    reason[$"{s.NodeName}.reason"] = why;
                    bad.Add(new UnhealthyNode(s, why, gone));
                }
            }
            var status = apiHealth is { Reachable: false } || (cloudServers is null && apiHealth is null) ? HealthStatus.Unknown
                : bad.Count > 0 || apiHealth is { Ready: false } ? HealthStatus.Unhealthy : HealthStatus.Healthy;
            judgements.Add(new Judgement(status, reason, bad, nodes));
        }
        return judgements;
    }

    /// <summary>Writes what changed: the clusters' health, the nodes' unhealthy-since marks, events for transitions.</summary>
    private async Task<int> RecordAsync(MagnetarDbContext db, List<Cluster> page, List<Judgement> judgements, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var transitions = 0;
        // One commit for the batch's changes (an outage that changes many clusters at once costs one disk flush, not
        // hundreds, on SQLite); PostgreSQL's retrying execution strategy allows no transaction of the caller's, and needs none.
        await using var tx = db.Database.CreateExecutionStrategy().RetriesOnFailure ? null : await db.Database.BeginTransactionAsync(ct);
        for (var i = 0; i < page.Count; i++)
        {
            var (c, j) = (page[i], judgements[i]);
            var changed = c.HealthStatus != j.Status || !SameReason(c.HealthStatusReason, j.Reason);
            if (changed)
            {
                await db.Clusters.Where(x => x.Id == c.Id && x.Operation == null)
                    .ExecuteUpdateAsync(u => u.SetProperty(x => x.HealthStatus, j.Status).SetProperty(x => x.HealthStatusReason, j.Reason), ct);
            }
            if (c.HealthStatus != j.Status)
            {
                transitions++;
                ConductorMetrics.RecordHealthTransition(j.Status);
                var why = j.Status == HealthStatus.Healthy ? "every node Ready, API ok"
                    : string.Join("; ", j.Reason.Where(r => r.Key == "api" && r.Value != "ok" || r.Key == "cloud" || r.Key.EndsWith(".reason", StringComparison.Ordinal))
                        .Select(r => r.Key.EndsWith(".reason", StringComparison.Ordinal) ? $"{r.Key[..^7]}: {r.Value}" : $"{r.Key}: {r.Value}"));
                db.ClusterEvents.Add(new ClusterEvent
                {
                    ClusterUuid = c.Uuid, At = now, Type = j.Status == HealthStatus.Healthy ? "Normal" : "Warning", Reason = "HealthChanged",
                    Message = $"health {c.HealthStatus ?? "not known"} → {j.Status}: {why}",
                });
                logger.LogInformation("Cluster {Cluster} ({Uuid}) health {From} → {To}: {Why}", c.Name, c.Uuid, c.HealthStatus, j.Status, why);
            }
            var bad = j.Unhealthy.ToDictionary(u => u.State.Id);
            foreach (var s in j.Nodes)
            {
                var nowBad = bad.GetValueOrDefault(s.Id);
                if (nowBad is null && s.UnhealthySince is not null)
                    await db.NodeStates.Where(x => x.Id == s.Id).ExecuteUpdateAsync(u => u.SetProperty(x => x.UnhealthySince, (DateTimeOffset?)null).SetProperty(x => x.UnhealthyReason, (string?)null), ct);
                else if (nowBad is not null && (s.UnhealthySince is null || s.UnhealthyReason != nowBad.Why))
                {
                    var since = s.UnhealthySince ?? now;
                    await db.NodeStates.Where(x => x.Id == s.Id).ExecuteUpdateAsync(u => u.SetProperty(x => x.UnhealthySince, since).SetProperty(x => x.UnhealthyReason, nowBad.Why), ct);
                    s.UnhealthySince = since;
                }
            }
        }
        await db.SaveChangesAsync(ct);
        if (tx is not null) await tx.CommitAsync(ct);
        return transitions;
    }

    private static bool SameReason(Dictionary<string, string>? a, Dictionary<string, string> b)
        => a is not null && a.Count == b.Count && a.All(kv => b.TryGetValue(kv.Key, out var v) && v == kv.Value);

    /// <summary>Auto-healing: at most one node per cluster, when the label asks for it and the guards allow it.</summary>
    private async Task<int> HealAsync(MagnetarDbContext db, List<Cluster> page, List<Judgement> judgements, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var healed = 0;
        for (var i = 0; i < page.Count; i++)
        {
            var (c, j) = (page[i], judgements[i]);
            if (j.Unhealthy.Count == 0 || !Labels.Flag(c.Labels, "auto_healing_enabled", false)) { _lastGuard.TryRemove(c.Uuid, out _); continue; }
            if (c.Status is not (ClusterStatus.CreateComplete or ClusterStatus.UpdateComplete)) continue; // a failed operation waits for its owner
            var grace = TimeSpan.FromSeconds(int.TryParse(c.Labels.GetValueOrDefault("auto_healing_unhealthy_seconds"), out var g) && g >= 0 ? g : options.UnhealthySeconds);
            var maxShare = int.TryParse(c.Labels.GetValueOrDefault("auto_healing_max_unhealthy_percent"), out var p) && p is >= 0 and <= 100 ? p : options.MaxUnhealthyPercent;
            var due = j.Unhealthy.Where(u => u.State.UnhealthySince is { } since && now - since >= grace).ToList();
            if (due.Count == 0) continue;

            // Every due worker of the cluster is replaced in one healing operation (a server left in ERROR would fail any
            // other operation on the cluster); guards first: the share of a nodegroup, control-plane nodes, the rate limit.
            string? guard = null;
            var picks = new List<UnhealthyNode>();
            foreach (var u in due.OrderBy(u => u.State.Role == NodeRoles.Worker ? 0 : 1).ThenBy(u => u.State.NodeName, StringComparer.Ordinal))
            {
                var group = j.Nodes.Where(n => n.NodeGroup == u.State.NodeGroup).ToList();
                var badInGroup = j.Unhealthy.Count(x => x.State.NodeGroup == u.State.NodeGroup);
                if (u.State.Role != NodeRoles.Worker)
                {
                    // One control-plane node at a time, alone, and only while the others keep etcd's quorum: a healthy
                    // member removes the dead one first, then its successor joins.
                    var controlPlane = j.Nodes.Count(n => n.Role != NodeRoles.Worker);
                    var badControlPlane = j.Unhealthy.Count(x => x.State.Role != NodeRoles.Worker);
                    if (!bootstrapOptions.ReadinessFromReports)
                        guard ??= $"control-plane node {u.State.NodeName} is unhealthy ({u.Why}); control-plane nodes are replaced only where nodes report (their agents remove etcd members)";
                    else if (controlPlane < 3)
                        guard ??= $"control-plane node {u.State.NodeName} is unhealthy ({u.Why}) and is not replaced automatically: with {controlPlane} control-plane node(s) " +
                                  "no healthy etcd member would be left to keep the cluster's data; restore the node, or rebuild the cluster from a backup";
                    else if (badControlPlane * 2 >= controlPlane)
                        guard ??= $"{badControlPlane} of {controlPlane} control-plane nodes are unhealthy: etcd has lost its quorum or is about to, and replacing " +
                                  "a member would not restore it; nothing is replaced";
                    else if (picks.Count == 0 && !(c.LastHealAt is { } cpLast && now - cpLast < TimeSpan.FromSeconds(options.HealIntervalSeconds)))
                    {
                        picks.Add(u);
                        break; // alone
                    }
                    continue;
                }
                if (badInGroup * 100 > maxShare * group.Count)
                    guard ??= $"{badInGroup} of {group.Count} nodes of nodegroup {u.State.NodeGroup} are unhealthy (more than {maxShare} %): likely a network " +
                              "partition or a cloud outage, which replacing nodes would not mend; nothing is replaced";
                else if (c.LastHealAt is { } lastHeal && now - lastHeal < TimeSpan.FromSeconds(options.HealIntervalSeconds))
                    guard ??= $"node {u.State.NodeName} is due for replacement; waiting for the healing rate limit (one healing every {options.HealIntervalSeconds} s)";
                else picks.Add(u);
            }
            if (guard is not null && (!_lastGuard.TryGetValue(c.Uuid, out var last) || last != guard))
            {
                _lastGuard[c.Uuid] = guard;
                ConductorMetrics.RecordHealing("withheld");
                db.ClusterEvents.Add(new ClusterEvent { ClusterUuid = c.Uuid, At = now, Type = "Warning", Reason = "AutoHealingWithheld", Message = guard });
                await db.SaveChangesAsync(ct);
            }
            if (picks.Count == 0) continue;
            if (await StartHealingAsync(c.Id, picks, now, ct)) { healed += picks.Count; ConductorMetrics.RecordHealing("started"); }
        }
        return healed;
    }

    /// <summary>
    /// Marks the nodes for replacement (a node whose server is gone is forgotten instead: the next pass makes a new one;
    /// one whose server is not ACTIVE goes at once) and starts the cluster's "heal" operation, which the conductor
    /// carries out like an upgrade.
    /// </summary>
    private async Task<bool> StartHealingAsync(long clusterId, List<UnhealthyNode> nodes, DateTimeOffset now, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var cluster = await db.Clusters.Include(c => c.NodeGroups).FirstOrDefaultAsync(c => c.Id == clusterId, ct);
        if (cluster is null || cluster.Operation is not null) return false;
        var ids = nodes.Select(n => n.State.Id).ToList();
        var states = await db.NodeStates.Where(s => ids.Contains(s.Id)).ToDictionaryAsync(s => s.Id, ct);
        var access = await apiAccess.GetAsync(db, cluster, ct);
        var what = new List<string>();
        foreach (var node in nodes)
        {
            if (!states.TryGetValue(node.State.Id, out var state)) continue;
            var how = $"{NodeReplacer.HealingReason} {node.Why} for {(int)(now - node.State.UnhealthySince!.Value).TotalSeconds} s";
            if (state.Role != NodeRoles.Worker)
            {
                // A control-plane node's etcd member goes first (a healthy member's agent removes it), then its server.
                state.RetireReason = how;
                state.RetireStep = NodeRetireSteps.LeaveEtcd;
                state.RetireStepAt = now;
            }
            else if (node.ServerGone)
            {
                // Nothing to drain or delete: forget it, and its credentials; a new server is made in its place.
                await db.NodeCredentials.Where(c => c.ClusterUuid == cluster.Uuid && c.NodeName == state.NodeName).ExecuteDeleteAsync(ct);
                db.NodeStates.Remove(state);
                if (access is not null) await clusterApi.DeleteNodeAsync(access, state.NodeName, ct);
            }
            else
            {
                state.RetireReason = how;
                // A server that is not ACTIVE serves nothing: it goes at once (its successor is made in the same pass).
                if (node.Why.StartsWith("server ", StringComparison.Ordinal)) { state.RetireStep = NodeRetireSteps.Remove; state.RetireStepAt = now; }
            }
            foreach (var ng in cluster.NodeGroups.Where(n => n.Name == state.NodeGroup)) { ng.Status = ClusterStatus.UpdateInProgress; ng.UpdatedAt = now; }
            db.ClusterEvents.Add(new ClusterEvent { ClusterUuid = cluster.Uuid, At = now, Type = "Warning", Reason = "AutoHealing", Message = $"replacing node {state.NodeName}: {how}" });
            what.Add($"{state.NodeName} ({node.Why})");
        }
        if (what.Count == 0) return false;
        cluster.Status = ClusterStatus.UpdateInProgress;
        cluster.StatusReason = "auto-healing: replacing " + string.Join(", ", what);
        cluster.Operation = ClusterOperations.Heal;
        cluster.OperationStartedAt = now;
        cluster.NextReconcileAt = now;
        cluster.LastHealAt = now;
        cluster.ProgressAt = null;
        cluster.UpdatedAt = now;
        try { await db.SaveChangesAsync(ct); }
        catch (DbUpdateConcurrencyException) { return false; } // the tenant started something meanwhile: look again next sweep
        logger.LogWarning("Cluster {Cluster} ({Uuid}): auto-healing replaces {Nodes}", cluster.Name, cluster.Uuid, string.Join(", ", what));
        signal.Poke();
        return true;
    }
}
