using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;

namespace Magnetar.Cloud.OpenStack;

public sealed record IdRef(string Id);
public sealed record LoadBalancer(string Id, string Name, string? Description, string VipAddress, string? VipPortId, string ProvisioningStatus,
    string OperatingStatus, List<IdRef>? Listeners, List<IdRef>? Pools, List<string>? Tags);
public sealed record Member(string Id, string Address, int ProtocolPort, string ProvisioningStatus, string? Name);

/// <summary>Octavia v2. Load balancers are created fully populated (listener, pool, health monitor) in one call.</summary>
public sealed class LoadBalancerClient(HttpClient http, KeystoneSession session, ILogger logger)
    : OpenStackServiceClient(http, session, "load-balancer", "octavia", logger)
{
    public Task<List<LoadBalancer>> ListLoadBalancersAsync(string query, CancellationToken ct)
        => ListAsync<LoadBalancer>($"/v2/lbaas/loadbalancers?{query}", "loadbalancers", "list load balancers", ct);

    public Task<LoadBalancer?> GetLoadBalancerAsync(string id, CancellationToken ct)
        => FindAsync<LoadBalancer>($"/v2/lbaas/loadbalancers/{Q(id)}", "loadbalancer", $"show load balancer {id}", ct);

    /// <summary>A TCP load balancer for one port: listener, round-robin pool and TCP health monitor, no members yet.</summary>
    public async Task<LoadBalancer> CreateTcpLoadBalancerAsync(string name, string description, string subnetId, int port, IEnumerable<string> tags, CancellationToken ct)
    {
        var body = new JsonObject
        {
            ["loadbalancer"] = new JsonObject
            {
                ["name"] = name,
                ["description"] = description,
                ["vip_subnet_id"] = subnetId,
                ["tags"] = new JsonArray(tags.Select(t => (JsonNode)t).ToArray()),
                ["listeners"] = new JsonArray(new JsonObject
                {
                    ["name"] = $"{name}-{port}",
                    ["protocol"] = "TCP",
                    ["protocol_port"] = port,
                    ["default_pool"] = new JsonObject
                    {
                        ["name"] = $"{name}-{port}",
                        ["protocol"] = "TCP",
                        ["lb_algorithm"] = "ROUND_ROBIN",
                        ["healthmonitor"] = new JsonObject { ["type"] = "TCP", ["delay"] = 10, ["timeout"] = 5, ["max_retries"] = 3 },
                    },
                }),
            },
        };
        var answer = await SendAsync(HttpMethod.Post, "/v2/lbaas/loadbalancers", body, $"create load balancer {name}", ct, null, HttpStatusCode.Created);
        return Read<LoadBalancer>(answer?["loadbalancer"])!;
    }

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
