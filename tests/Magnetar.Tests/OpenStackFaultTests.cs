using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Magnetar.Cloud.OpenStack;
using static Magnetar.Tests.OpenStackIntegrationTests;

namespace Magnetar.Tests;

/// <summary>
/// Cloud faults against the real all-in-one: <see cref="CloudFaults"/> in the driver's HTTP pipeline makes calls fail,
/// lose their answers after the cloud executed them, arrive late, or shows a resource in ERROR; everything else is the
/// real cloud. Expected: retries or adoption where the fault is transient, a precise reason where it is not, and a
/// delete that leaves nothing either way.
/// </summary>
[Trait("Category", "Integration")]
public sealed class OpenStackFaultTests
{
    [OpenStackFact]
    public async Task A_load_balancer_in_error_fails_the_cluster_naming_octavia_and_the_failed_cluster_deletes_cleanly()
    {
        var faults = new CloudFaults(seed: 1);
        // Octavia's answers about load balancers say ERROR where the real one is ACTIVE.
        faults.Rules.Add(new CloudFaults.Rule("lb-error", "GET", "^/v2/lbaas/loadbalancers", CloudFaults.Kind.Rewrite)
        {
            RewriteBody = body => Regex.Replace(body, "\"provisioning_status\":\\s*\"ACTIVE\"", "\"provisioning_status\": \"ERROR\""),
        });
        var (host, env) = await StartAsync(faults);
        await using var _ = host;
        var view = TenantView(env);
        if (!await view.HasLoadBalancerServiceAsync()) return; // an all-in-one without Octavia has no load balancer to fail
        var c = await TenantAsync(host, env);
        var template = await c.PostJson("/v1/clustertemplates", """
            {"name": "lb-error", "image_id": "fedora-coreos-40", "external_network_id": "public", "coe": "kubernetes",
             "flavor_id": "m1.tiny", "master_flavor_id": "m1.tiny", "network_driver": "calico", "master_lb_enabled": true, "floating_ip_enabled": false}
            """).ExpectAsync(201);
        var uuid = (string)(await c.PostJson("/v1/clusters", $$"""{"name": "lberr", "cluster_template_id": "{{template["uuid"]}}", "node_count": 1}""").ExpectAsync(202))["uuid"]!;
        var cluster = await WaitWhileAsync(c, uuid, "CREATE_IN_PROGRESS");
        Assert.Equal("CREATE_FAILED", (string?)cluster["status"]);
        Assert.Matches($"^octavia: load balancer {Regex.Escape(OpenStackCloudProvider.LoadBalancerName(uuid))} \\(id [0-9a-f-]{{36}}\\) went to ERROR", (string)cluster["status_reason"]!);
        Assert.True(faults.Rules[0].Hits > 0);

        await DeleteAndCheckAsync(c, view, uuid);
        await c.DeleteAsync($"/v1/clustertemplates/{template["uuid"]}");
    }

    [OpenStackFact]
    public async Task Transient_faults_on_every_service_are_retried_or_adopted_and_delete_under_faults_leaves_nothing()
    {
        var faults = new CloudFaults(seed: 42);
        var cloud = "^/(v2\\.1|compute|v2\\.0|networking|v2/lbaas|v3/[0-9a-f]+/volumes)";
        faults.Rules.AddRange(
        [
            // The cloud executed the create, the answer never came back: the next pass must find it, not make another.
            new CloudFaults.Rule("server create, answer lost", "POST", "/servers$", CloudFaults.Kind.LoseResponse) { MaxHits = 2 },
            new CloudFaults.Rule("network create, answer lost", "POST", "/v2\\.0/networks$", CloudFaults.Kind.LoseResponse) { MaxHits = 1 },
            new CloudFaults.Rule("security group create, answer lost", "POST", "/v2\\.0/security-groups$", CloudFaults.Kind.LoseResponse) { MaxHits = 1 },
            new CloudFaults.Rule("floating IP create, answer lost", "POST", "/v2\\.0/floatingips$", CloudFaults.Kind.LoseResponse) { MaxHits = 1 },
            new CloudFaults.Rule("load balancer create, answer lost", "POST", "/v2/lbaas/loadbalancers$", CloudFaults.Kind.LoseResponse) { MaxHits = 1 },
            // Connections that drop before the request leaves, and services that are briefly unavailable or slow.
            new CloudFaults.Rule("rule create, reset", "POST", "/v2\\.0/security-group-rules$", CloudFaults.Kind.ResetBeforeSend) { MaxHits = 2 },
            new CloudFaults.Rule("reads, 503", "GET", cloud, CloudFaults.Kind.Status) { Probability = 0.15, Status = HttpStatusCode.ServiceUnavailable },
            new CloudFaults.Rule("reads, 500", "GET", cloud, CloudFaults.Kind.Status) { Probability = 0.05, Status = HttpStatusCode.InternalServerError },
            new CloudFaults.Rule("reads, slow", "GET", cloud, CloudFaults.Kind.Delay) { Probability = 0.05, Delay = TimeSpan.FromSeconds(2) },
            new CloudFaults.Rule("deletes, 503", "DELETE", cloud, CloudFaults.Kind.Status) { Probability = 0.3, Status = HttpStatusCode.ServiceUnavailable },
            new CloudFaults.Rule("deletes, answer lost", "DELETE", cloud, CloudFaults.Kind.LoseResponse) { Probability = 0.1, MaxHits = 3 },
        ]);
        var (host, env) = await StartAsync(faults);
        await using var _ = host;
        var view = TenantView(env);
        var withLb = await view.HasLoadBalancerServiceAsync();
        var c = await TenantAsync(host, env);
        var template = await c.PostJson("/v1/clustertemplates", $$"""
            {"name": "faulty", "image_id": "fedora-coreos-40", "external_network_id": "public", "coe": "kubernetes",
             "flavor_id": "m1.tiny", "master_flavor_id": "m1.tiny", "network_driver": "calico",
             "master_lb_enabled": {{(withLb ? "true" : "false")}}, "floating_ip_enabled": true}
            """).ExpectAsync(201);
        var uuid = (string)(await c.PostJson("/v1/clusters", $$"""{"name": "faulty", "cluster_template_id": "{{template["uuid"]}}", "master_count": 1, "node_count": 2}""").ExpectAsync(202))["uuid"]!;
        var cluster = await WaitWhileAsync(c, uuid, "CREATE_IN_PROGRESS");
        Assert.True((string?)cluster["status"] == "CREATE_COMPLETE", $"{cluster["status"]}: {cluster["status_reason"]} (faults: {faults.Summary()})");

        // Exactly what was asked for, despite lost answers: no duplicate server, network, group, address or balancer.
        var servers = await view.Compute.ListServersByTagAsync(OpenStackCloudProvider.Tag(uuid), default);
        Assert.Equal(["faulty-default-master-0", "faulty-default-worker-0", "faulty-default-worker-1"], servers.Select(s => s.Name).Order());
        var resources = await view.ClusterResourcesAsync(uuid, withLb);
        Assert.Equal(1, resources.Count(r => r.StartsWith("network ")));
        Assert.Equal(2, resources.Count(r => r.StartsWith("security group ")));
        Assert.Equal(withLb ? 4 : 3, resources.Count(r => r.StartsWith("floating IP ")));
        Assert.Equal(withLb ? 1 : 0, resources.Count(r => r.StartsWith("load balancer ")));
        foreach (var rule in faults.Rules.Where(r => r.Name.Contains("answer lost") && !r.Name.StartsWith("deletes") && (withLb || !r.Name.StartsWith("load"))))
            Assert.True(rule.Hits > 0, $"the fault '{rule.Name}' never fired: {faults.Summary()}");
        Assert.True(faults.Rules.Single(r => r.Name == "reads, 503").Hits > 0, faults.Summary());

        await DeleteAndCheckAsync(c, view, uuid, withLb);
        Assert.True(faults.Rules.Single(r => r.Name == "deletes, 503").Hits > 0, faults.Summary());
        await c.DeleteAsync($"/v1/clustertemplates/{template["uuid"]}");
    }

    [OpenStackFact]
    public async Task A_server_stuck_in_build_fails_the_cluster_at_its_create_timeout_naming_the_wait_and_it_deletes_cleanly()
    {
        var faults = new CloudFaults(seed: 3);
        // Nova's answers about servers say BUILD where the real ones are ACTIVE: they never finish building.
        faults.Rules.Add(new CloudFaults.Rule("servers stuck in BUILD", "GET", "/servers(/detail|/[0-9a-f-]{36})$", CloudFaults.Kind.Rewrite)
        {
            RewriteBody = body => Regex.Replace(body, "\"status\":\\s*\"ACTIVE\"", "\"status\": \"BUILD\""),
        });
        var (host, env) = await StartAsync(faults);
        await using var _ = host;
        var view = TenantView(env);
        var c = await TenantAsync(host, env);
        var template = await c.PostJson("/v1/clustertemplates", """
            {"name": "stuck", "image_id": "fedora-coreos-40", "external_network_id": "public", "coe": "kubernetes",
             "flavor_id": "m1.tiny", "master_flavor_id": "m1.tiny", "network_driver": "calico", "master_lb_enabled": false, "floating_ip_enabled": false}
            """).ExpectAsync(201);
        var uuid = (string)(await c.PostJson("/v1/clusters", $$"""{"name": "stuck", "cluster_template_id": "{{template["uuid"]}}", "node_count": 1, "create_timeout": 1}""").ExpectAsync(202))["uuid"]!;
        var started = DateTime.UtcNow;
        var cluster = await WaitWhileAsync(c, uuid, "CREATE_IN_PROGRESS");
        Assert.Equal("CREATE_FAILED", (string?)cluster["status"]);
        var reason = (string)cluster["status_reason"]!;
        Assert.StartsWith("timed out after 1 minutes; last progress: ", reason);
        Assert.Matches("stuck-default-(master|worker)-0 BUILD", reason); // names the servers it was waiting for
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromMinutes(2.5), $"{DateTime.UtcNow - started}");
        Assert.True(faults.Rules[0].Hits > 0);
        faults.Rules[0].Enabled = false;
        await DeleteAndCheckAsync(c, view, uuid, withLb: false);
        await c.DeleteAsync($"/v1/clustertemplates/{template["uuid"]}");
    }

    [OpenStackFact]
    public async Task A_credential_keystone_made_but_never_answered_with_is_revoked_and_the_create_leaves_nothing()
    {
        var faults = new CloudFaults(seed: 7);
        faults.Rules.Add(new CloudFaults.Rule("application credential create, answer lost", "POST", "/v3/users/[^/]+/application_credentials$",
            CloudFaults.Kind.LoseResponse) { MaxHits = 1 });
        var (host, env) = await StartAsync(faults);
        await using var _ = host;
        var view = TenantView(env);
        await view.Session.TokenAsync(default);
        var c = await TenantAsync(host, env);
        var template = await c.PostJson("/v1/clustertemplates", """
            {"name": "lost-cred", "image_id": "fedora-coreos-40", "external_network_id": "public", "coe": "kubernetes",
             "flavor_id": "m1.tiny", "master_flavor_id": "m1.tiny", "network_driver": "calico", "master_lb_enabled": false, "floating_ip_enabled": false}
            """).ExpectAsync(201);
        // Other tests create clusters as the same user at the same time: only this test's credentials are looked at.
        async Task<List<string>> Credentials() => (await view.Identity.ListApplicationCredentialsAsync(view.Session.UserId!, null, default))
            .Where(a => a.Name.StartsWith("magnetar-")).Select(a => a.Name).ToList();

        // Keystone made the credential; Magnetar never heard back: 503, no cluster, and no credential left behind.
        var refused = await c.PostJson("/v1/clusters", $$"""{"name": "lost", "cluster_template_id": "{{template["uuid"]}}", "node_count": 0}""");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal(1, faults.Rules[0].Hits);
        var list = await c.GetAsync("/v1/clusters").ExpectAsync(200);
        Assert.DoesNotContain(list["clusters"]!.AsArray(), x => (string?)x!["name"] == "lost");
        var lost = (string)JsonNode.Parse(Assert.Single(faults.Rules[0].LostResponses))!["application_credential"]!["name"]!;
        Assert.StartsWith("magnetar-", lost);
        Assert.DoesNotContain(lost, await Credentials());

        // The name is free again and the next create works.
        var uuid = (string)(await c.PostJson("/v1/clusters", $$"""{"name": "lost", "cluster_template_id": "{{template["uuid"]}}", "node_count": 0}""").ExpectAsync(202))["uuid"]!;
        Assert.Contains(OpenStackCloudProvider.ApplicationCredentialName(uuid), await Credentials());
        await DeleteAndCheckAsync(c, view, uuid, withLb: false);
        Assert.DoesNotContain(OpenStackCloudProvider.ApplicationCredentialName(uuid), await Credentials());
        await c.DeleteAsync($"/v1/clustertemplates/{template["uuid"]}");
    }

    private static async Task<JsonNode> WaitWhileAsync(HttpClient c, string uuid, string status)
    {
        var deadline = DateTime.UtcNow.AddMinutes(5);
        JsonNode cluster;
        do
        {
            cluster = await c.GetAsync($"/v1/clusters/{uuid}").ExpectAsync(200);
            if ((string?)cluster["status"] != status) return cluster;
            await Task.Delay(1000);
        } while (DateTime.UtcNow < deadline);
        throw new TimeoutException($"cluster {uuid} still {status}: {cluster["status_reason"]}");
    }

    private static async Task DeleteAndCheckAsync(HttpClient c, OpenStackTenantView view, string uuid, bool withLb = true)
    {
        await c.DeleteAsync($"/v1/clusters/{uuid}");
        var deadline = DateTime.UtcNow.AddMinutes(5);
        while ((await c.GetAsync($"/v1/clusters/{uuid}")).StatusCode != HttpStatusCode.NotFound)
        {
            if (DateTime.UtcNow > deadline)
            {
                var last = await c.GetAsync($"/v1/clusters/{uuid}").ExpectAsync(200);
                throw new TimeoutException($"cluster {uuid} not deleted: {last["status"]} {last["status_reason"]}");
            }
            await Task.Delay(1000);
        }
        Assert.Empty(await view.ClusterResourcesAsync(uuid, withLb));
    }
}
