using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;

namespace Magnetar.Cloud.OpenStack;

public sealed record IdRef(string Id);
public sealed record LoadBalancer(string Id, string Name, string? Description, string VipAddress, string? VipPortId, string ProvisioningStatus,
    string OperatingStatus, List<IdRef>? Listeners, List<IdRef>? Pools, List<string>? Tags);
public sealed record Pool(string Id, string Name, string ProvisioningStatus, string? HealthmonitorId);
public sealed record Member(string Id, string Address, int ProtocolPort, string ProvisioningStatus, string? Name);

/// <summary>
/// Octavia v2. Each child (listener, pool, health monitor, member) is created on its own while the load balancer is
/// ACTIVE: a fully populated create left the pool out of ACTIVE with the all-in-one's no-op amphorae, and one object
/// per step is what any Octavia provider handles.
/// </summary>
public sealed class LoadBalancerClient(HttpClient http, KeystoneSession session, ILogger logger)
    : OpenStackServiceClient(http, session, "load-balancer", "octavia", logger)
{
    public Task<List<LoadBalancer>> ListLoadBalancersAsync(string query, CancellationToken ct)
        => ListAsync<LoadBalancer>($"/v2/lbaas/loadbalancers?{query}", "loadbalancers", "list load balancers", ct);

    public Task<LoadBalancer?> GetLoadBalancerAsync(string id, CancellationToken ct)
        => FindAsync<LoadBalancer>($"/v2/lbaas/loadbalancers/{Q(id)}", "loadbalancer", $"show load balancer {id}", ct);

    public async Task<LoadBalancer> CreateLoadBalancerAsync(string name, string description, string subnetId, IEnumerable<string> tags, CancellationToken ct)
    {
        var body = new JsonObject
        {
            ["loadbalancer"] = new JsonObject
            {
                ["name"] = name, ["description"] = description, ["vip_subnet_id"] = subnetId,
                ["tags"] = new JsonArray(tags.Select(t => (JsonNode)t).ToArray()),
            },
        };
        var answer = await SendAsync(HttpMethod.Post, "/v2/lbaas/loadbalancers", body, $"create load balancer {name}", ct, null, HttpStatusCode.Created);
        return Read<LoadBalancer>(answer?["loadbalancer"])!;
    }

    public Task CreateTcpListenerAsync(string loadBalancerId, string name, int port, CancellationToken ct)
        => SendAsync(HttpMethod.Post, "/v2/lbaas/listeners", new JsonObject
        {
            ["listener"] = new JsonObject { ["loadbalancer_id"] = loadBalancerId, ["name"] = name, ["protocol"] = "TCP", ["protocol_port"] = port },
        }, $"create listener {name}", ct, null, HttpStatusCode.Created);

    public Task CreateTcpPoolAsync(string listenerId, string name, CancellationToken ct)
        => SendAsync(HttpMethod.Post, "/v2/lbaas/pools", new JsonObject
        {
            ["pool"] = new JsonObject { ["listener_id"] = listenerId, ["name"] = name, ["protocol"] = "TCP", ["lb_algorithm"] = "ROUND_ROBIN" },
        }, $"create pool {name}", ct, null, HttpStatusCode.Created);

    public Task<Pool?> GetPoolAsync(string id, CancellationToken ct) => FindAsync<Pool>($"/v2/lbaas/pools/{Q(id)}", "pool", $"show pool {id}", ct);

    public Task CreateTcpHealthMonitorAsync(string poolId, string name, CancellationToken ct)
        => SendAsync(HttpMethod.Post, "/v2/lbaas/healthmonitors", new JsonObject
        {
            ["healthmonitor"] = new JsonObject { ["pool_id"] = poolId, ["name"] = name, ["type"] = "TCP", ["delay"] = 10, ["timeout"] = 5, ["max_retries"] = 3 },
        }, $"create health monitor {name}", ct, null, HttpStatusCode.Created);

    public Task<List<Member>> ListMembersAsync(string poolId, CancellationToken ct)
        => ListAsync<Member>($"/v2/lbaas/pools/{Q(poolId)}/members", "members", $"list members of pool {poolId}", ct);

    /// <summary>Adds a member (the load balancer must be ACTIVE; it goes PENDING_UPDATE while Octavia applies it).</summary>
    public Task AddMemberAsync(string poolId, string name, string address, int port, string subnetId, CancellationToken ct)
        => SendAsync(HttpMethod.Post, $"/v2/lbaas/pools/{Q(poolId)}/members", new JsonObject
        {
            ["member"] = new JsonObject { ["name"] = name, ["address"] = address, ["protocol_port"] = port, ["subnet_id"] = subnetId },
        }, $"add member {name} ({address}) to pool {poolId}", ct, null, HttpStatusCode.Created);

    public Task<bool> RemoveMemberAsync(string poolId, string memberId, CancellationToken ct)
        => DeleteAsync($"/v2/lbaas/pools/{Q(poolId)}/members/{Q(memberId)}", $"remove member {memberId} from pool {poolId}", ct);

    /// <summary>Deletes a load balancer with everything under it; 404 counts as done.</summary>
    public Task<bool> DeleteLoadBalancerAsync(string id, CancellationToken ct)
        => DeleteAsync($"/v2/lbaas/loadbalancers/{Q(id)}?cascade=true", $"delete load balancer {id}", ct);
}
