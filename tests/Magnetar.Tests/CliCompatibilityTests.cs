using System.Text;
using System.Text.Json.Nodes;

namespace Magnetar.Tests;

/// <summary>
/// Starts the real server as a separate process (magnetar.dll serve, standalone defaults) and drives it with the
/// unmodified OpenStack CLI from Debian (python3-openstackclient 6 + python3-magnumclient 4), then kubectl and openssl.
/// </summary>
public sealed class ServerProcessFixture : IAsyncLifetime
{
    private MagnetarProcess? _server;
    public string DataDir { get; } = Directory.CreateTempSubdirectory("magnetar-cli-").FullName;
    public string Home { get; } = Directory.CreateTempSubdirectory("magnetar-cli-home-").FullName;
    public string Url => _server?.Url ?? "";
    public string Log => _server?.Log ?? "";

    public async Task InitializeAsync()
    {
        _server = new MagnetarProcess($"http://127.0.0.1:{MagnetarProcess.FreePort()}", DataDir,
            "--Magnetar:Cloud:Simulated:StepDelayMs=50", "--Magnetar:Conductor:PollIntervalMs=100");
        await _server.StartAsync(() => File.Exists(Path.Combine(DataDir, "openrc-demo")));
    }

    public async Task DisposeAsync()
    {
        if (_server is not null) await _server.DisposeAsync();
        try { Directory.Delete(DataDir, true); Directory.Delete(Home, true); } catch { }
    }

    public Dictionary<string, string> Openrc(string file) => OpenStackCli.ReadOpenrc(Path.Combine(DataDir, file));
}

public sealed record CommandResult(int ExitCode, string Stdout, string Stderr)
{
    public JsonNode Json => JsonNode.Parse(Stdout) ?? throw new Xunit.Sdk.XunitException("no JSON output");
}

public sealed class CliCompatibilityTests(ServerProcessFixture server) : IClassFixture<ServerProcessFixture>
{
    private async Task<CommandResult> Run(string openrc, params string[] args) => await Exec("openstack", server.Openrc(openrc), args);

    private Task<CommandResult> Exec(string file, Dictionary<string, string>? env, params string[] args) => OpenStackCli.ExecAsync(file, server.Home, env, args, 60);

    private async Task<JsonNode> Ok(string openrc, params string[] args)
    {
        var r = await Run(openrc, args);
        if (r.ExitCode != 0) throw new Xunit.Sdk.XunitException($"openstack {string.Join(' ', args)} failed ({r.ExitCode}): {r.Stderr}\n{r.Stdout}\n--- server log ---\n{server.Log}");
        return OpenStackCli.Output(r, args);
    }

    private async Task<JsonNode> WaitFor(string openrc, string cluster, string status, int seconds = 120)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        JsonNode? last = null;
        while (DateTime.UtcNow < deadline)
        {
            last = await Ok(openrc, "coe", "cluster", "show", cluster, "-f", "json");
            var s = last["status"]!.GetValue<string>();
            if (s == status) return last;
            if (s.EndsWith("_FAILED")) throw new Xunit.Sdk.XunitException($"cluster {cluster} {s}: {last["status_reason"]}");
            await Task.Delay(300);
        }
        throw new Xunit.Sdk.XunitException($"cluster {cluster} did not reach {status}: {last?.ToJsonString()}");
    }

    [Fact]
    public async Task Openstack_coe_cli_drives_the_whole_lifecycle()
    {
        // Templates: a public one by the admin, a private one by the demo user.
        var tpl = await Ok("openrc", "coe", "cluster", "template", "create", "k8s-1.31", "--coe", "kubernetes", "--image", "fedora-coreos-40",
            "--external-network", "public", "--flavor", "m1.small", "--master-flavor", "m1.medium", "--network-driver", "calico",
            "--master-lb-enabled", "--labels", "kube_tag=v1.31.1", "--public", "-f", "json");
        Assert.Equal("k8s-1.31", tpl["name"]!.GetValue<string>());
        Assert.True(tpl["public"]!.GetValue<bool>());
        await Ok("openrc-demo", "coe", "cluster", "template", "create", "k8s-1.32", "--coe", "kubernetes", "--image", "fedora-coreos-40",
            "--external-network", "public", "--flavor", "m1.small", "--labels", "kube_tag=v1.32.2", "-f", "json");
        var list = await Ok("openrc-demo", "coe", "cluster", "template", "list", "-f", "json");
        Assert.Contains(list.AsArray(), t => t!["name"]!.GetValue<string>() == "k8s-1.31");
        Assert.Contains(list.AsArray(), t => t!["name"]!.GetValue<string>() == "k8s-1.32");
        var shown = await Ok("openrc-demo", "coe", "cluster", "template", "show", "k8s-1.32", "-f", "json");
        Assert.Equal("calico", (await Ok("openrc-demo", "coe", "cluster", "template", "show", "k8s-1.31", "-f", "json"))["network_driver"]!.GetValue<string>());
        Assert.Equal("v1.32.2", shown["labels"]!["kube_tag"]!.GetValue<string>());
        var updated = await Ok("openrc-demo", "coe", "cluster", "template", "update", "k8s-1.32", "replace", "labels=kube_tag=v1.32.3,extra=yes", "-f", "json");
        Assert.Equal("v1.32.3", updated["labels"]!["kube_tag"]!.GetValue<string>());
        Assert.Equal("yes", updated["labels"]!["extra"]!.GetValue<string>());
        var added = await Ok("openrc-demo", "coe", "cluster", "template", "update", "k8s-1.32", "add", "http_proxy=http://proxy:3128", "-f", "json");
        Assert.Equal("http://proxy:3128", added["http_proxy"]!.GetValue<string>());
        var again = await Run("openrc-demo", "coe", "cluster", "template", "update", "k8s-1.32", "add", "dns_nameserver=1.1.1.1");
        Assert.Contains("please use 'replace' operation instead", again.Stderr); // the CLI set 8.8.8.8 at create, as with Magnum

        // The error a tenant sees for a missing template.
        var missing = await Run("openrc-demo", "coe", "cluster", "create", "x1", "--cluster-template", "does-not-exist");
        Assert.NotEqual(0, missing.ExitCode);
        Assert.Contains("ClusterTemplate does-not-exist could not be found", missing.Stderr);

        // Cluster lifecycle as the demo user.
        var create = await Ok("openrc-demo", "coe", "cluster", "create", "c1", "--cluster-template", "k8s-1.31", "--node-count", "2");
        Assert.Contains("accepted", create.GetValue<string>());
        var c = await WaitFor("openrc-demo", "c1", "CREATE_COMPLETE");
        Assert.StartsWith("https://", c["api_address"]!.GetValue<string>());
        Assert.Equal(2, c["node_addresses"]!.AsArray().Count);
        Assert.Single(c["master_addresses"]!.AsArray());
        Assert.Equal("v1.31.1", c["coe_version"]!.GetValue<string>());
        Assert.Equal("HEALTHY", c["health_status"]!.GetValue<string>());
        Assert.Equal("v1.31.1", c["labels"]!["kube_tag"]!.GetValue<string>());

        await Ok("openrc-demo", "coe", "cluster", "resize", "c1", "3");
        var resized = await WaitFor("openrc-demo", "c1", "UPDATE_COMPLETE");
        Assert.Equal(3, resized["node_count"]!.GetValue<int>());
        Assert.Equal(3, resized["node_addresses"]!.AsArray().Count);
        await Ok("openrc-demo", "coe", "cluster", "update", "c1", "replace", "node_count=2");
        var patched = await WaitFor("openrc-demo", "c1", "UPDATE_COMPLETE");
        Assert.Equal(2, patched["node_count"]!.GetValue<int>());

        // Kubeconfig: the CLI makes a key, sends a CSR, writes D/config.
        var dir = Directory.CreateTempSubdirectory("kubeconfig-").FullName;
        await Ok("openrc-demo", "coe", "cluster", "config", "c1", "--dir", dir);
        var view = await Exec("kubectl", null, "--kubeconfig", Path.Combine(dir, "config"), "config", "view", "--raw", "-o", "json");
        Assert.Equal(0, view.ExitCode);
        var kc = view.Json;
        Assert.Equal(c["api_address"]!.GetValue<string>(), kc["clusters"]![0]!["cluster"]!["server"]!.GetValue<string>());
        var caPem = Encoding.UTF8.GetString(Convert.FromBase64String(kc["clusters"]![0]!["cluster"]!["certificate-authority-data"]!.GetValue<string>()));
        var certPem = Encoding.UTF8.GetString(Convert.FromBase64String(kc["users"]![0]!["user"]!["client-certificate-data"]!.GetValue<string>()));
        Assert.Equal("OK", Fixtures.OpensslVerify(caPem, certPem));
        var caShow = await Run("openrc-demo", "coe", "ca", "show", "c1");
        Assert.Equal(0, caShow.ExitCode);
        Assert.Contains(caPem.Trim().Split('\n')[1], caShow.Stdout);

        // Nodegroups.
        await Ok("openrc-demo", "coe", "nodegroup", "create", "c1", "ng1", "--node-count", "1", "--min-nodes", "1", "--max-nodes", "3");
        await WaitFor("openrc-demo", "c1", "UPDATE_COMPLETE");
        var ngs = await Ok("openrc-demo", "coe", "nodegroup", "list", "c1", "-f", "json");
        Assert.Equal(["default-master", "default-worker", "ng1"], ngs.AsArray().Select(n => n!["name"]!.GetValue<string>()).Order().ToArray());
        var ng = await Ok("openrc-demo", "coe", "nodegroup", "show", "c1", "ng1", "-f", "json");
        Assert.Equal(3, ng["max_node_count"]!.GetValue<int>());
        await Ok("openrc-demo", "coe", "nodegroup", "delete", "c1", "ng1");
        await WaitFor("openrc-demo", "c1", "UPDATE_COMPLETE");
        Assert.DoesNotContain((await Ok("openrc-demo", "coe", "nodegroup", "list", "c1", "-f", "json")).AsArray(), n => n!["name"]!.GetValue<string>() == "ng1");

        // Upgrade to the demo's newer template (its nodes are replaced by servers of the new version).
        await Ok("openrc-demo", "coe", "cluster", "upgrade", "c1", "k8s-1.32");
        var upgraded = await WaitFor("openrc-demo", "c1", "UPDATE_COMPLETE");
        Assert.Equal("v1.32.3", upgraded["coe_version"]!.GetValue<string>());

        // Stats and services.
        var project = (await Ok("openrc-demo", "token", "issue", "-f", "json"))["project_id"]!.GetValue<string>();
        var stats = await Run("openrc-demo", "coe", "stats", "list", project);
        Assert.Equal("1", Table(stats.Stdout)["clusters"]);
        Assert.Equal("3", Table(stats.Stdout)["nodes"]); // 1 master + 2 workers
        var services = await Ok("openrc", "coe", "service", "list", "-f", "json");
        Assert.Contains(services.AsArray(), s => s!["binary"]!.GetValue<string>() == "magnum-conductor" && s["state"]!.GetValue<string>() == "up");

        // Isolation: the admin project's cluster is invisible to demo.
        await Ok("openrc", "coe", "cluster", "create", "admins", "--cluster-template", "k8s-1.31");
        var hidden = await Run("openrc-demo", "coe", "cluster", "show", "admins");
        Assert.NotEqual(0, hidden.ExitCode);
        Assert.Contains("could not be found", hidden.Stderr);

        // A template in use cannot be deleted; delete the cluster, then it can.
        var inUse = await Run("openrc-demo", "coe", "cluster", "template", "delete", "k8s-1.32");
        Assert.Contains("referenced by one or multiple clusters", inUse.Stdout + inUse.Stderr);
        await Ok("openrc-demo", "coe", "cluster", "delete", "c1");
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while ((await Ok("openrc-demo", "coe", "cluster", "list", "-f", "json")).AsArray().Count > 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "cluster c1 was not deleted");
            await Task.Delay(300);
        }
        await Ok("openrc-demo", "coe", "cluster", "template", "delete", "k8s-1.32");
        var gone = await Ok("openrc-demo", "coe", "cluster", "template", "list", "-f", "json");
        Assert.DoesNotContain(gone.AsArray(), t => t!["name"]!.GetValue<string>() == "k8s-1.32");
    }

    /// <summary>The quota commands print property tables only (no -f json in python-magnumclient 4).</summary>
    private static Dictionary<string, string> Table(string stdout)
        => stdout.Split('\n').Where(l => l.StartsWith("| ") && !l.StartsWith("| Property")).Select(l => l.Split('|', StringSplitOptions.TrimEntries))
            .Where(c => c.Length >= 4).ToDictionary(c => c[1], c => c[2]);

    [Fact]
    public async Task Openstack_coe_quotas()
    {
        var demoProject = (await Ok("openrc-demo", "token", "issue", "-f", "json"))["project_id"]!.GetValue<string>();
        var created = await Run("openrc", "coe", "quotas", "create", "--project-id", demoProject, "--resource", "Cluster", "--hard-limit", "5");
        Assert.Equal(0, created.ExitCode);
        Assert.Equal("5", Table(created.Stdout)["hard_limit"]);
        var shown = await Run("openrc", "coe", "quotas", "show", "--project-id", demoProject, "--resource", "Cluster");
        Assert.Equal("5", Table(shown.Stdout)["hard_limit"]);
        var updated = await Run("openrc", "coe", "quotas", "update", "--project-id", demoProject, "--resource", "Cluster", "--hard-limit", "7");
        Assert.Equal("7", Table(updated.Stdout)["hard_limit"]);
        var list = await Run("openrc", "coe", "quotas", "list", "--all-tenants");
        Assert.Equal(0, list.ExitCode);
        Assert.Contains(list.Stdout.Split('\n'), l => l.Contains(demoProject) && l.Contains("| 7 "));
        var denied = await Run("openrc-demo", "coe", "quotas", "create", "--project-id", demoProject, "--resource", "Cluster", "--hard-limit", "99");
        // python-magnumclient prints the failure and exits 0 here; the message is what a tenant sees.
        Assert.Contains("Policy doesn't allow quota:create to be performed (HTTP 403)", denied.Stdout + denied.Stderr);
        var deleted = await Run("openrc", "coe", "quotas", "delete", "--project-id", demoProject, "--resource", "Cluster");
        Assert.Contains("has been accepted", deleted.Stdout);
        var dflt = await Run("openrc", "coe", "quotas", "show", "--project-id", demoProject, "--resource", "Cluster");
        Assert.Equal("20", Table(dflt.Stdout)["hard_limit"]);
    }
}
