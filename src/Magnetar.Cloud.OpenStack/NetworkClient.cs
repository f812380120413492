using System.Net;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;

namespace Magnetar.Cloud.OpenStack;

public sealed record Network(string Id, string Name, string? Description, string Status, [property: JsonPropertyName("router:external")] bool External, List<string>? Subnets, List<string>? Tags);
public sealed record Subnet(string Id, string Name, string NetworkId, string Cidr, string? Description, List<string>? Tags);
public sealed record ExternalGateway(string? NetworkId);
public sealed record Router(string Id, string Name, string? Description, string Status, ExternalGateway? ExternalGatewayInfo, List<string>? Tags);
public sealed record FixedIp(string SubnetId, string IpAddress);
public sealed record Port(string Id, string Name, string NetworkId, string DeviceId, string DeviceOwner, string Status, List<FixedIp>? FixedIps, List<string>? Tags);
public sealed record SecurityGroupRule(string Id, string Direction, string Ethertype, string? Protocol, int? PortRangeMin, int? PortRangeMax,
    string? RemoteIpPrefix, string? RemoteGroupId);
public sealed record SecurityGroup(string Id, string Name, string? Description, List<SecurityGroupRule>? SecurityGroupRules, List<string>? Tags);
public sealed record FloatingIp(string Id, string FloatingIpAddress, string? FixedIpAddress, string? PortId, string FloatingNetworkId, string Status, string? Description, List<string>? Tags);

/// <summary>A rule to ensure on a security group (direction ingress, IPv4).</summary>
public sealed record RuleSpec(string? Protocol, int? PortMin, int? PortMax, string? RemoteIpPrefix, string? RemoteGroupId)
{
    public bool Matches(SecurityGroupRule r) => r.Direction == "ingress" && r.Ethertype == "IPv4" && r.Protocol == Protocol
        && r.PortRangeMin == PortMin && r.PortRangeMax == PortMax && r.RemoteIpPrefix == RemoteIpPrefix && r.RemoteGroupId == RemoteGroupId;
    public override string ToString() => $"{Protocol ?? "any"} {(PortMin is null ? "" : PortMin == PortMax ? $"{PortMin} " : $"{PortMin}-{PortMax} ")}from {RemoteIpPrefix ?? RemoteGroupId}";
}

/// <summary>Neutron v2.0. Filters are Neutron's exact-match query parameters.</summary>
public sealed class NetworkClient(HttpClient http, KeystoneSession session, ILogger logger)
    : OpenStackServiceClient(http, session, "network", "neutron", logger)
{
    public Task<List<Network>> ListNetworksAsync(string query, CancellationToken ct) => ListAsync<Network>($"/v2.0/networks?{query}", "networks", "list networks", ct);
    public Task<Network?> GetNetworkAsync(string id, CancellationToken ct) => FindAsync<Network>($"/v2.0/networks/{Q(id)}", "network", $"show network {id}", ct);
    public Task<List<Subnet>> ListSubnetsAsync(string query, CancellationToken ct) => ListAsync<Subnet>($"/v2.0/subnets?{query}", "subnets", "list subnets", ct);
    public Task<List<Router>> ListRoutersAsync(string query, CancellationToken ct) => ListAsync<Router>($"/v2.0/routers?{query}", "routers", "list routers", ct);
    public Task<List<Port>> ListPortsAsync(string query, CancellationToken ct) => ListAsync<Port>($"/v2.0/ports?{query}", "ports", "list ports", ct);
    public Task<List<SecurityGroup>> ListSecurityGroupsAsync(string query, CancellationToken ct) => ListAsync<SecurityGroup>($"/v2.0/security-groups?{query}", "security_groups", "list security groups", ct);
    public Task<List<FloatingIp>> ListFloatingIpsAsync(string query, CancellationToken ct) => ListAsync<FloatingIp>($"/v2.0/floatingips?{query}", "floatingips", "list floating IPs", ct);

    public async Task<Network> CreateNetworkAsync(string name, string description, CancellationToken ct)
        => Read<Network>((await Create("networks", "network", new JsonObject { ["name"] = name, ["description"] = description }, $"create network {name}", ct)))!;

    public async Task<Subnet> CreateSubnetAsync(string name, string description, string networkId, string cidr, IReadOnlyList<string> dns, CancellationToken ct)
        => Read<Subnet>(await Create("subnets", "subnet", new JsonObject
        {
            ["name"] = name, ["description"] = description, ["network_id"] = networkId, ["cidr"] = cidr, ["ip_version"] = 4,
            ["dns_nameservers"] = new JsonArray(dns.Select(d => (JsonNode)d).ToArray()),
        }, $"create subnet {name}", ct))!;

    public async Task<Router> CreateRouterAsync(string name, string description, string externalNetworkId, CancellationToken ct)
        => Read<Router>(await Create("routers", "router", new JsonObject
        {
            ["name"] = name, ["description"] = description,
            ["external_gateway_info"] = new JsonObject { ["network_id"] = externalNetworkId },
        }, $"create router {name}", ct))!;

    public async Task AddRouterInterfaceAsync(string routerId, string subnetId, CancellationToken ct)
        => await SendAsync(HttpMethod.Put, $"/v2.0/routers/{Q(routerId)}/add_router_interface", new JsonObject { ["subnet_id"] = subnetId },
            $"attach subnet {subnetId} to router {routerId}", ct, null, HttpStatusCode.OK);

    /// <summary>Detaches a subnet; 404 (already detached or router gone) counts as done.</summary>
    public async Task RemoveRouterInterfaceAsync(string routerId, string subnetId, CancellationToken ct)
    {
        try
        {
            await SendAsync(HttpMethod.Put, $"/v2.0/routers/{Q(routerId)}/remove_router_interface", new JsonObject { ["subnet_id"] = subnetId },
                $"detach subnet {subnetId} from router {routerId}", ct, null, HttpStatusCode.OK);
        }
        catch (OpenStackNotFoundException) { }
    }

    public async Task<SecurityGroup> CreateSecurityGroupAsync(string name, string description, CancellationToken ct)
        => Read<SecurityGroup>(await Create("security-groups", "security_group", new JsonObject { ["name"] = name, ["description"] = description }, $"create security group {name}", ct))!;

    /// <summary>Creates security groups; several in one request (Neutron's bulk create: all or none).</summary>
    public async Task<List<SecurityGroup>> CreateSecurityGroupsAsync(IReadOnlyList<(string Name, string Description)> groups, CancellationToken ct)
    {
        if (groups.Count == 1) return [await CreateSecurityGroupAsync(groups[0].Name, groups[0].Description, ct)];
        var body = new JsonArray(groups.Select(g => (JsonNode)new JsonObject { ["name"] = g.Name, ["description"] = g.Description }).ToArray());
        var made = await SendAsync(HttpMethod.Post, "/v2.0/security-groups", new JsonObject { ["security_groups"] = body },
            $"create security groups {string.Join(", ", groups.Select(g => g.Name))}", ct, null, HttpStatusCode.Created);
        return Read<List<SecurityGroup>>(made?["security_groups"]) ?? throw new InvalidOperationException("Neutron returned no security groups");
    }

    /// <summary>Adds an ingress IPv4 rule; a rule that already exists (409) counts as done.</summary>
    public async Task CreateSecurityGroupRuleAsync(string groupId, RuleSpec rule, CancellationToken ct)
    {
        try { await Create("security-group-rules", "security_group_rule", RuleBody(groupId, rule), $"add rule {rule} to security group {groupId}", ct); }
        catch (OpenStackConflictException) { }
    }

    /// <summary>
    /// Adds ingress IPv4 rules to one group in one request (Neutron's bulk create: all or none; it takes one group per
    /// request). When one of them exists already (409: made by a pass that ran at the same time), each is added on its
    /// own, existing ones counting as done.
    /// </summary>
    public async Task CreateSecurityGroupRulesAsync(string groupId, IReadOnlyList<RuleSpec> rules, CancellationToken ct)
    {
        if (rules.Count == 0) return;
        if (rules.Count == 1) { await CreateSecurityGroupRuleAsync(groupId, rules[0], ct); return; }
        try
        {
            await SendAsync(HttpMethod.Post, "/v2.0/security-group-rules",
                new JsonObject { ["security_group_rules"] = new JsonArray(rules.Select(r => (JsonNode)RuleBody(groupId, r)).ToArray()) },
                $"add {rules.Count} rules to security group {groupId}", ct, null, HttpStatusCode.Created);
        }
        catch (OpenStackConflictException)
        {
            foreach (var rule in rules) await CreateSecurityGroupRuleAsync(groupId, rule, ct);
        }
    }

    private static JsonObject RuleBody(string groupId, RuleSpec rule)
    {
        var body = new JsonObject { ["security_group_id"] = groupId, ["direction"] = "ingress", ["ethertype"] = "IPv4" };
        if (rule.Protocol is not null) body["protocol"] = rule.Protocol;
        if (rule.PortMin is not null) { body["port_range_min"] = rule.PortMin; body["port_range_max"] = rule.PortMax; }
        if (rule.RemoteIpPrefix is not null) body["remote_ip_prefix"] = rule.RemoteIpPrefix;
        if (rule.RemoteGroupId is not null) body["remote_group_id"] = rule.RemoteGroupId;
        return body;
    }

    public async Task<FloatingIp> CreateFloatingIpAsync(string externalNetworkId, string? portId, string description, CancellationToken ct)
    {
        var body = new JsonObject { ["floating_network_id"] = externalNetworkId, ["description"] = description };
        if (portId is not null) body["port_id"] = portId;
        return Read<FloatingIp>(await Create("floatingips", "floatingip", body, $"create floating IP ({description})", ct))!;
    }

    /// <summary>Associates a floating IP with a port (PUT floatingips/{id} port_id): e.g. a node's IP after its server was made again.</summary>
    public async Task<FloatingIp> AssociateFloatingIpAsync(string id, string portId, CancellationToken ct)
        => Read<FloatingIp>((await SendAsync(HttpMethod.Put, $"/v2.0/floatingips/{Q(id)}", new JsonObject { ["floatingip"] = new JsonObject { ["port_id"] = portId } },
            $"associate floating IP {id} with port {portId}", ct, null, HttpStatusCode.OK))?["floatingip"])!;

    /// <summary>Replaces a resource's tags (standard-attr-tag); <paramref name="collection"/> is e.g. "networks".</summary>
    public Task SetTagsAsync(string collection, string id, IEnumerable<string> tags, CancellationToken ct)
        => SendAsync(HttpMethod.Put, $"/v2.0/{collection}/{Q(id)}/tags", new JsonObject { ["tags"] = new JsonArray(tags.Select(t => (JsonNode)t).ToArray()) },
            $"tag {collection} {id}", ct, null, HttpStatusCode.OK);

    public Task<bool> DeleteNetworkAsync(string id, CancellationToken ct) => DeleteAsync($"/v2.0/networks/{Q(id)}", $"delete network {id}", ct);
    public Task<bool> DeleteSubnetAsync(string id, CancellationToken ct) => DeleteAsync($"/v2.0/subnets/{Q(id)}", $"delete subnet {id}", ct);
    public Task<bool> DeleteRouterAsync(string id, CancellationToken ct) => DeleteAsync($"/v2.0/routers/{Q(id)}", $"delete router {id}", ct);
    public Task<bool> DeletePortAsync(string id, CancellationToken ct) => DeleteAsync($"/v2.0/ports/{Q(id)}", $"delete port {id}", ct);
    public Task<bool> DeleteSecurityGroupAsync(string id, CancellationToken ct) => DeleteAsync($"/v2.0/security-groups/{Q(id)}", $"delete security group {id}", ct);
    public Task<bool> DeleteFloatingIpAsync(string id, CancellationToken ct) => DeleteAsync($"/v2.0/floatingips/{Q(id)}", $"delete floating IP {id}", ct);

    private async Task<JsonNode?> Create(string collection, string key, JsonObject body, string operation, CancellationToken ct)
        => (await SendAsync(HttpMethod.Post, $"/v2.0/{collection}", new JsonObject { [key] = body }, operation, ct, null, HttpStatusCode.Created))?[key];
}
