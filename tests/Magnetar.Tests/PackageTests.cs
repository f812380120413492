using System.Text.Json.Nodes;

namespace Magnetar.Tests;

/// <summary>
/// The Debian package (issue #16): <c>scripts/package-deb</c> builds it; it is installed with dpkg on a Debian bookworm
/// that boots under systemd (a node of tests/nodebed: no .NET on it), where its postinst makes the system user and
/// starts the unit; the real <c>openstack coe</c> CLI on the host then works against it through a published port;
/// remove keeps the state, purge takes everything.
/// </summary>
[Trait("Category", "Integration")]
public sealed class PackageTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("package-").FullName;
    private readonly NodeBed _bed;

    public PackageTests() => _bed = new NodeBed(_dir);

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await _bed.DisposeAsync();
        try { Directory.Delete(_dir, true); } catch { }
    }

    [BootedNodeFact]
    public async Task The_deb_installs_on_bookworm_its_unit_serves_the_cli_and_purge_leaves_nothing()
    {
        var out_ = Directory.CreateDirectory(Path.Combine(_dir, "out")).FullName;
        var (code, text) = BootstrapArtifactTests.Run(Path.Combine(NodeBed.RepoRoot(), "scripts", "package-deb"), [out_]);
        Assert.True(code == 0, text);
        var deb = Path.GetFileName(text.Split('\n').Last(l => l.StartsWith(out_ + "/") && l.EndsWith(".deb")));
        Assert.Matches(@"^magnetar_0\.1\.0~git\d{12}\.[0-9a-f]+_amd64\.deb$", deb);
        var contents = BootstrapArtifactTests.Run("dpkg-deb", ["--contents", Path.Combine(out_, deb)]).Item2;
        Assert.Contains("./usr/bin/magnetar -> ../lib/magnetar/magnetar", contents);
        Assert.DoesNotContain("BuildHost-", contents);

        _bed.Prepare();
        var port = MagnetarProcess.FreePort();
        var userData = Path.Combine(_dir, "user-data");
        await File.WriteAllTextAsync(userData, "#cloud-config\n{}\n");
        _bed.Bed(["boot", "pkg", userData, "--instance-id", $"pkg-{_bed.Run}", "--volume", $"{out_}:/mnt/pkg", "--publish", port.ToString()]);
        string Node(params string[] command) => _bed.Exec("pkg", command);
        Node("cloud-init", "status", "--wait");

        // dpkg -i: the postinst makes the user and starts the unit, which migrates and serves on its default address.
        var install = _bed.Bed(["exec", "pkg", "dpkg", "-i", $"/mnt/pkg/{deb}"], check: false);
        Assert.True(install.Code == 0, install.Output);
        await WaitUntil(() => _bed.Test("pkg", "curl", "-sf", "http://127.0.0.1:9511/healthz"), "the unit to serve on 127.0.0.1:9511");
        var verify = _bed.Bed(["exec", "pkg", "systemd-analyze", "verify", "/lib/systemd/system/magnetar.service"], check: false);
        Assert.True(verify.Code == 0 && verify.Output.Trim() == "", "systemd-analyze verify: " + verify.Output);
        Assert.Equal("enabled", Node("systemctl", "is-enabled", "magnetar").Trim());
        Assert.Equal("magnetar", Node("ps", "-o", "user=", "-C", "magnetar").Trim());
        var modes = Node("stat", "-c", "%n %U:%G %a", "/var/lib/magnetar", "/var/lib/magnetar/secret.key", "/var/lib/magnetar/magnetar.db", "/etc/magnetar/magnetar.json");
        Assert.Contains("/var/lib/magnetar magnetar:magnetar 750", modes);
        Assert.Contains("/var/lib/magnetar/secret.key magnetar:magnetar 600", modes);
        Assert.Contains("/var/lib/magnetar/magnetar.db magnetar:magnetar 600", modes);
        Assert.Contains("/etc/magnetar/magnetar.json root:magnetar 640", modes);
        // The sandbox: nothing outside its state directory is writable to the service.
        Assert.Contains("ProtectSystem=strict", Node("systemctl", "show", "-p", "ProtectSystem", "magnetar"));
        // The journal has each line with its level (the systemd console formatter), and no secret.
        var journal = Node("journalctl", "-u", "magnetar", "-o", "json", "--no-pager");
        var ready = journal.Split('\n').Where(l => l.StartsWith('{')).Select(l => JsonNode.Parse(l)!)
            .First(j => j["MESSAGE"]?.ToString().Contains("Database ready (sqlite)") == true);
        Assert.Equal("6", ready["PRIORITY"]!.ToString());
        Assert.Contains("Starting magnetar.service", Node("journalctl", "-u", "magnetar", "--no-pager"));

        // The operator's configuration: the published port, a public URL the host's CLI reaches, a quick simulated cloud.
        await File.WriteAllTextAsync(Path.Combine(_dir, "magnetar.json"), $$"""
            // as an operator edits it
            {
              "urls": "http://127.0.0.1:{{port}}",
              "Logging": { "Console": { "FormatterName": "systemd" } },
              "Magnetar": { "PublicUrl": "http://127.0.0.1:{{port}}", "Cloud": { "Simulated": { "StepDelayMs": 50 } } }
            }
            """);
        _bed.Bed(["exec", "pkg", "sh", "-c", $"cat > /etc/magnetar/magnetar.json <<'EOF'\n{await File.ReadAllTextAsync(Path.Combine(_dir, "magnetar.json"))}\nEOF"]);
        Node("systemctl", "restart", "magnetar");
        await WaitUntil(() => _bed.Test("pkg", "curl", "-sf", $"http://127.0.0.1:{port}/healthz"), $"the unit to serve on :{port}");
        var openrc = Path.Combine(_dir, "openrc-demo");
        await File.WriteAllTextAsync(openrc, Node("cat", "/var/lib/magnetar/openrc-demo"));
        var env = OpenStackCli.ReadOpenrc(openrc);
        Assert.Equal($"http://127.0.0.1:{port}/identity/v3", env["OS_AUTH_URL"].TrimEnd('/'));
        var journalText = Node("journalctl", "-u", "magnetar", "--no-pager");
        Assert.DoesNotContain(env["OS_PASSWORD"], journalText);

        // The CLI flow from the host, through the published port.
        async Task<JsonNode> Coe(params string[] args)
        {
            var r = await OpenStackCli.ExecAsync("openstack", _dir, env, ["coe", .. args]);
            Assert.True(r.ExitCode == 0, $"openstack coe {string.Join(' ', args)}: {r.Stderr}{r.Stdout}");
            return OpenStackCli.Output(r, args);
        }
        await Coe("cluster", "template", "create", "k8s", "--coe", "kubernetes", "--image", "fedora-coreos-40", "--external-network", "public",
            "--flavor", "m1.small", "--master-flavor", "m1.medium", "--network-driver", "calico", "-f", "json");
        await Coe("cluster", "create", "c1", "--cluster-template", "k8s", "--node-count", "1");
        await WaitUntil(async () => (await Coe("cluster", "show", "c1", "-f", "json"))["status"]!.GetValue<string>() == "CREATE_COMPLETE", "c1 to be CREATE_COMPLETE");
        Assert.Single((await Coe("cluster", "list", "-f", "json")).AsArray());
        await Coe("cluster", "delete", "c1");
        await WaitUntil(async () => (await Coe("cluster", "list", "-f", "json")).AsArray().Count == 0, "c1 to be deleted");

        // remove: the service stops and its unit goes, the state stays (a reinstall finds it); purge: everything goes.
        _bed.Bed(["exec", "pkg", "dpkg", "-r", "magnetar"]);
        Assert.False(_bed.Test("pkg", "systemctl", "is-active", "--quiet", "magnetar"), "the service still runs after dpkg -r");
        Assert.False(_bed.Test("pkg", "test", "-e", "/lib/systemd/system/magnetar.service"));
        Assert.True(_bed.Test("pkg", "test", "-s", "/var/lib/magnetar/secret.key"), "dpkg -r removed the secret key");
        _bed.Bed(["exec", "pkg", "dpkg", "--purge", "magnetar"]);
        foreach (var path in new[] { "/var/lib/magnetar", "/etc/magnetar", "/usr/lib/magnetar", "/usr/bin/magnetar" })
            Assert.False(_bed.Test("pkg", "test", "-e", path), $"{path} is left after purge");
        Assert.False(_bed.Test("pkg", "getent", "passwd", "magnetar"), "the magnetar user is left after purge");
    }

    private Task WaitUntil(Func<bool> done, string what) => WaitUntil(() => Task.FromResult(done()), what);

    private async Task WaitUntil(Func<Task<bool>> done, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (!await done())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}\n" +
                _bed.Bed(["exec", "pkg", "journalctl", "-u", "magnetar", "-n", "60", "--no-pager"], check: false).Output);
            await Task.Delay(1000);
        }
    }
}
