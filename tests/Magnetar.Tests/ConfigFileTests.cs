using System.Text.Json.Nodes;
using Magnetar.Api;
using Magnetar.Bootstrap.Secrets;
using Magnetar.Cloud.OpenStack;
using Magnetar.Conductor;
using Magnetar.Identity;
using Magnetar.Persistence;
using Microsoft.Extensions.Configuration;

namespace Magnetar.Tests;

/// <summary>
/// <c>/etc/magnetar/magnetar.json</c> (issue #16): the documented example binds to the options every key belongs to,
/// with no key the options do not have (a typo would be silently ignored otherwise); the real binary reads a file of
/// that shape — comments included — named by MAGNETAR_CONFIG, and the command line overrides it.
/// </summary>
public sealed class ConfigFileTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("config-").FullName;

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync()
    {
        try { Directory.Delete(_dir, true); } catch { }
        return Task.CompletedTask;
    }

    [Fact]
    public void The_documented_example_names_only_keys_magnetar_reads()
    {
        var file = Path.Combine(NodeBed.RepoRoot(), "deploy", "etc", "magnetar.json");
        var config = new ConfigurationBuilder().AddJsonFile(file).Build();
        void Bind<T>(string section) where T : new()
        {
            Assert.True(config.GetSection(section).Exists(), $"the example has no {section}");
            var options = new T();
            config.GetSection(section).Bind(options, o => o.ErrorOnUnknownConfiguration = true);
        }
        Bind<DatabaseOptions>("Magnetar:Database");
        Bind<SecretProtectionOptions>("Magnetar:Secrets");
        Bind<KeystoneOptions>("Magnetar:Identity:Keystone");
        Bind<OpenStackOptions>("Magnetar:Cloud:OpenStack");
        Bind<BootstrapOptions>("Magnetar:Bootstrap");
        Bind<ConductorOptions>("Magnetar:Conductor");
        Bind<HealthOptions>("Magnetar:Health");
        Bind<ApiOptions>("Magnetar:Api");
        Bind<Magnetar.Autoscaler.AutoscalerOptions>("Magnetar:Autoscaler");
        Bind<ReplicaOptions>("Magnetar:Replicas");
        // The plain keys, each read by MagnetarHost or the hosting layer.
        var known = new[] { "urls", "Magnetar:DataDir", "Magnetar:PublicUrl", "Magnetar:Tls:CertificateFile", "Magnetar:Tls:KeyFile",
            "Magnetar:Identity:Mode", "Magnetar:Cloud:Provider", "Magnetar:Pki:KeyPool", "Magnetar:Pki:KeyPoolDelaySeconds" };
        var bound = new[] { "Magnetar:Database", "Magnetar:Secrets", "Magnetar:Identity:Keystone", "Magnetar:Cloud:OpenStack", "Magnetar:Bootstrap",
            "Magnetar:Conductor", "Magnetar:Health", "Magnetar:Api", "Magnetar:Autoscaler", "Magnetar:Replicas" };
        var leaves = config.AsEnumerable().Where(kv => kv.Value is not null).Select(kv => kv.Key).ToList();
        Assert.All(leaves, k => Assert.True(known.Contains(k) || bound.Any(b => k.StartsWith(b + ":")), $"{k} is not a key Magnetar reads"));
        Assert.Equal("keystone", config["Magnetar:Identity:Mode"]);
        Assert.Equal("postgres", config["Magnetar:Database:Provider"]);
    }

    [Fact]
    public async Task The_binary_reads_the_file_and_the_command_line_overrides_it()
    {
        var file = Path.Combine(_dir, "magnetar.json");
        await File.WriteAllTextAsync(file, """
            // an operator's file: comments and trailing commas are fine
            {
              "Magnetar": {
                "PublicUrl": "http://magnetar.from-file.test:9511", // links in responses
                "Cloud": { "Simulated": { "StepDelayMs": 10, }, },
              },
            }
            """);
        var url = $"http://127.0.0.1:{MagnetarProcess.FreePort()}";
        await using (var server = new MagnetarProcess(url, Path.Combine(_dir, "data")))
        {
            server.Environment["MAGNETAR_CONFIG"] = file;
            await server.StartAsync();
            Assert.StartsWith("http://magnetar.from-file.test:9511/", await SelfLink(url));
        }
        await using (var server = new MagnetarProcess(url, Path.Combine(_dir, "data"), "--Magnetar:PublicUrl=http://from-the-command-line.test:9511"))
        {
            server.Environment["MAGNETAR_CONFIG"] = file;
            await server.StartAsync();
            Assert.StartsWith("http://from-the-command-line.test:9511/", await SelfLink(url));
        }
        // A file named by MAGNETAR_CONFIG must exist: a typo in the unit's environment is not a silent default.
        await using var missing = new MagnetarProcess(url, Path.Combine(_dir, "data"));
        missing.Environment["MAGNETAR_CONFIG"] = Path.Combine(_dir, "nope.json");
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => missing.StartAsync());
        Assert.Contains("nope.json", e.Message);
    }

    private static async Task<string> SelfLink(string url)
    {
        using var http = new HttpClient();
        var root = JsonNode.Parse(await http.GetStringAsync(url + "/"))!;
        return root["versions"]![0]!["links"]![0]!["href"]!.GetValue<string>();
    }
}
