using System.Diagnostics;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace Magnetar.Tests;

/// <summary>
/// The real server as a separate process (<c>magnetar.dll serve</c>): started, killed (SIGKILL, as a crash) and
/// started again on the same data directory. Its output is kept for failure messages.
/// </summary>
public sealed class MagnetarProcess : IAsyncDisposable
{
    private Process? _process;
    private readonly StringBuilder _log = new();
    private readonly string[] _args;

    public string Url { get; }
    public string DataDir { get; }
    public string Log { get { lock (_log) return _log.ToString(); } }

    /// <summary>The server to run: this build's by default, another release's in the rolling-upgrade test.</summary>
    public string Dll { get; init; } = Path.Combine(AppContext.BaseDirectory, "magnetar.dll");

    /// <summary>Environment variables of the server process, beyond the test's own.</summary>
    public Dictionary<string, string> Environment { get; } = [];

    /// <summary>The running server's process id (a restart changes it).</summary>
    public int Pid => _process?.Id ?? 0;
    /// <summary>Whether the started process has ended (false before it was started).</summary>
    public bool HasExited => _process is { HasExited: true };

    public MagnetarProcess(string url, string dataDir, params string[] args)
    {
        Url = url;
        DataDir = dataDir;
        _args = args;
    }

    /// <summary>
    /// A server (not started) with the Magnum API on HTTP and the bootstrap endpoint on HTTPS under a test CA, written
    /// to <c>ca.pem</c> in <paramref name="dir"/> and named as <c>Bootstrap:CaFile</c> so that user-data carries it;
    /// nodes count as ready by their reports. Its data directory is <c>data</c> in <paramref name="dir"/>.
    /// </summary>
    public static (MagnetarProcess Server, string Api, string Bootstrap, string CaFile) WithBootstrapTls(string dir, params string[] args)
    {
        var ca = Bootstrap.Pki.ClusterPki.CreateNamedAuthority("magnetar-test-ca", "test");
        var tls = Bootstrap.Pki.ClusterPki.IssueCertificate(ca, "magnetar", [], Bootstrap.Pki.CertificatePurpose.Server,
            new Bootstrap.Pki.SubjectAlternativeNames(["localhost"], [System.Net.IPAddress.Loopback]), TimeSpan.FromDays(1));
        var caFile = Path.Combine(dir, "ca.pem");
        File.WriteAllText(caFile, ca.CertificatePem);
        File.WriteAllText(Path.Combine(dir, "tls.crt"), tls.CertificatePem);
        File.WriteAllText(Path.Combine(dir, "tls.key"), tls.PrivateKeyPem);
        var api = $"http://127.0.0.1:{FreePort()}";
        var bootstrap = $"https://127.0.0.1:{FreePort()}";
        var server = new MagnetarProcess($"{api};{bootstrap}", Path.Combine(dir, "data"), [
            $"--Kestrel:Certificates:Default:Path={dir}/tls.crt", $"--Kestrel:Certificates:Default:KeyPath={dir}/tls.key",
            $"--Magnetar:Bootstrap:Url={bootstrap}", $"--Magnetar:Bootstrap:CaFile={caFile}",
            "--Magnetar:Bootstrap:NodeReadiness=reports", $"--Magnetar:PublicUrl={api}", .. args]);
        return (server, api, bootstrap, caFile);
    }

    /// <summary>Starts the server and waits until /healthz answers and <paramref name="ready"/> (if given) holds.</summary>
    public async Task StartAsync(Func<bool>? ready = null)
    {
        var psi = new ProcessStartInfo("dotnet", [Dll, "serve", "--urls", Url, "--data-dir", DataDir, .. _args])
        { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (k, v) in Environment) psi.Environment[k] = v;
        lock (_log) _log.AppendLine($"--- start {DateTime.UtcNow:HH:mm:ss.fff}");
        _process = Process.Start(psi)!;
        _process.OutputDataReceived += (_, e) => { lock (_log) _log.AppendLine(e.Data); };
        _process.ErrorDataReceived += (_, e) => { lock (_log) _log.AppendLine(e.Data); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        using var http = new HttpClient();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited) break;
            try
            {
                if ((await http.GetAsync(Url.Split(';')[0] + "/healthz")).IsSuccessStatusCode && (ready?.Invoke() ?? true)) return;
            }
            catch (HttpRequestException) { }
            await Task.Delay(100);
        }
        throw new InvalidOperationException("server did not start:\n" + Log);
    }

    /// <summary>SIGKILL: no graceful shutdown, leases and half-done passes stay as a crash leaves them.</summary>
    public async Task KillAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        lock (_log) _log.AppendLine($"--- killed {DateTime.UtcNow:HH:mm:ss.fff}");
    }

    /// <summary>
    /// A client of this server's Magnum API, authenticated as a user of the built-in identity from an openrc the server
    /// wrote (standalone mode), speaking the latest microversion.
    /// </summary>
    public async Task<HttpClient> ClientAsync(string openrc = "openrc-demo")
    {
        var api = Url.Split(';')[0];
        var rc = OpenStackCli.ReadOpenrc(Path.Combine(DataDir, openrc));
        using var anonymous = new HttpClient();
        using var auth = await anonymous.PostAsJsonAsync(api + "/identity/v3/auth/tokens",
            Magnetar.Identity.KeystoneRequests.PasswordAuth(rc["OS_USERNAME"], rc["OS_PASSWORD"], rc["OS_PROJECT_NAME"]));
        if (auth.StatusCode != System.Net.HttpStatusCode.Created)
            throw new InvalidOperationException($"token for {openrc}: {(int)auth.StatusCode} {await auth.Content.ReadAsStringAsync()}");
        var client = new HttpClient { BaseAddress = new Uri(api) };
        client.DefaultRequestHeaders.Add("X-Auth-Token", auth.Headers.GetValues("X-Subject-Token").Single());
        client.DefaultRequestHeaders.Add("OpenStack-API-Version", "container-infra latest");
        return client;
    }

    /// <summary>SIGTERM: a graceful stop (in-flight passes are cancelled and their leases handed back).</summary>
    public async Task TerminateAsync()
    {
        if (_process is { HasExited: false })
        {
            using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString()])!) await kill.WaitForExitAsync();
            await _process.WaitForExitAsync();
        }
        lock (_log) _log.AppendLine($"--- terminated {DateTime.UtcNow:HH:mm:ss.fff}");
    }

    public async ValueTask DisposeAsync() => await KillAsync();

    public static int FreePort()
    {
        var l = new TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        var p = ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return p;
    }

    /// <summary>True when nothing listens on 127.0.0.1:<paramref name="port"/>.</summary>
    public static bool PortIsFree(int port)
    {
        try
        {
            var l = new TcpListener(System.Net.IPAddress.Loopback, port);
            l.Start();
            l.Stop();
            return true;
        }
        catch (SocketException) { return false; }
    }
}

/// <summary>The unmodified OpenStack CLI (Debian's python3-openstackclient + python3-magnumclient) in a clean environment.</summary>
public static class OpenStackCli
{
    /// <summary>The <c>export K=V</c> lines of an openrc file.</summary>
    public static Dictionary<string, string> ReadOpenrc(string path)
        => File.ReadAllLines(path).Where(l => l.StartsWith("export ")).Select(l => l[7..].Split('=', 2)).ToDictionary(p => p[0], p => p[1].Trim('"', '\''));

    public static async Task<CommandResult> ExecAsync(string file, string home, Dictionary<string, string>? env, IEnumerable<string> args, int timeoutSeconds = 90)
    {
        var psi = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.Environment["HOME"] = home;
        // python-magnumclient's "cluster config" reads os.environ['SHELL'] (magnumclient/common/utils.py) and dies with
        // KeyError 'SHELL' where it is unset — as under a CI runner; a user's terminal always has it.
        if (string.IsNullOrEmpty(psi.Environment.TryGetValue("SHELL", out var shell) ? shell : null)) psi.Environment["SHELL"] = "/bin/bash";
        foreach (var k in psi.Environment.Keys.Where(k => k.StartsWith("OS_")).ToList()) psi.Environment.Remove(k);
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(timeoutSeconds));
        await p.WaitForExitAsync(cts.Token);
        return new CommandResult(p.ExitCode, await stdout, await stderr);
    }

    /// <summary>Parses a command's JSON output (some commands print a sentence first); the raw text for non-JSON commands.</summary>
    public static JsonNode Output(CommandResult r, IEnumerable<string> args)
    {
        var start = r.Stdout.IndexOfAny(['{', '[']);
        if (start >= 0 && args.Contains("json")) return JsonNode.Parse(r.Stdout[start..])!;
        return JsonValue.Create(r.Stdout)!;
    }
}
