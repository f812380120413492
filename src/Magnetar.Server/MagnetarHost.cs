using OpenTelemetry.Metrics;
using Magnetar.Api;
using Magnetar.Autoscaler;
using Magnetar.Bootstrap;
using Magnetar.Bootstrap.Secrets;
using Magnetar.Cloud;
using Magnetar.Cloud.OpenStack;
using Magnetar.Cloud.Simulated;
using Magnetar.Conductor;
using Magnetar.Domain;
using Magnetar.Identity;
using Magnetar.Persistence;
using Magnetar.Server.Standalone;
using Microsoft.EntityFrameworkCore;

namespace Magnetar.Server;

/// <summary>Composition root and command line: <c>serve</c> (default), <c>migrate</c>, <c>user-add</c>, <c>backup</c>, <c>restore</c>, <c>register</c>, <c>import-magnum</c>.</summary>
public static class MagnetarHost
{
    public static async Task<int> RunAsync(string[] args)
    {
        var command = args.Length > 0 && !args[0].StartsWith('-') ? args[0] : "serve";
        var rest = args.Length > 0 && !args[0].StartsWith('-') ? args[1..] : args;
        switch (command)
        {
            case "serve":
            {
                var app = Build(rest, serving: true);
                await app.RunAsync();
                return 0;
            }
            case "migrate":
                return await MigrateCommand.RunAsync(rest);
            case "user-add":
                return UserAdd(rest);
            case "backup":
                return await BackupCommands.BackupAsync(rest);
            case "restore":
                return await BackupCommands.RestoreAsync(rest);
            case "register":
                return await RegisterCommand.RunAsync(rest);
            case "import-magnum":
                return await ImportMagnumCommand.RunAsync(rest);
            case "autoscaler-credential":
                return await AutoscalerCredentialAsync(rest);
            case "help" or "--help" or "-h":
                Console.WriteLine("""
                    usage: magnetar [serve|migrate] [--urls http://127.0.0.1:9511] [--data-dir DIR] [--Magnetar:Section:Key=value ...]
                           magnetar migrate [--check | --force]
                             (--check: the live replicas and whether each pending migration is safe with them, exit 0 or 3;
                              migrate refuses a contract migration a live replica still needs unless --force)
                           magnetar user-add --name NAME --password PASSWORD --project PROJECT --role admin|member|reader [--data-dir DIR]
                             (built-in identity, standalone mode only; run it before 'serve', which reads the users at start)
                           magnetar backup --output FILE [--data-dir DIR] [--Magnetar:Database:...]
                             (a consistent snapshot of the database with the secret key file and the built-in identity, mode 0600)
                           magnetar restore --input FILE [--force] [--data-dir DIR] [--Magnetar:Database:...]
                             (every replica stopped; refuses a database that holds clusters or templates, or another key file, unless --force)
                           magnetar register --public-url URL [--internal-url URL] [--admin-url URL] [--region R] [--replace]
                                    [--service-user magnetar --service-password P --service-project service --role admin]
                                    [--auth-url URL --username U --password P --project P]   (default: an openrc's OS_* variables)
                             (the container-infra service, endpoints and service user in Keystone; idempotent)
                           magnetar import-magnum --connection URL [--apply] [--data-dir DIR] [--Magnetar:Database:...]
                             (cluster templates and quotas from a Magnum 15 database, URL as in magnum.conf's [database]
                              connection; a dry run unless --apply; idempotent; Magnum's Heat clusters are listed, not adopted)
                           magnetar autoscaler-credential --cluster NAME|UUID --output DIR [--data-dir DIR] [--Magnetar:...]
                             (a new client certificate for the cluster's cluster-autoscaler, with the CA and a cloud-config naming
                              the files in DIR: for an autoscaler run outside the cluster; the cluster's addon gets its own)
                    """);
                return 0;
            default:
                Console.Error.WriteLine($"unknown command '{command}' (try: serve, migrate, user-add, backup, restore, register, import-magnum, help)");
                return 2;
        }
    }

    /// <summary>Writes a new autoscaler credential of one cluster (ca.crt, tls.crt, tls.key, cloud-config) into a directory.</summary>
    private static async Task<int> AutoscalerCredentialAsync(string[] args)
    {
        string? cluster = null, output = null;
        var rest = new List<string>();
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "--cluster" && i + 1 < args.Length) cluster = args[++i];
            else if (args[i] == "--output" && i + 1 < args.Length) output = args[++i];
            else rest.Add(args[i]);
        }
        if (cluster is null || output is null)
        {
            Console.Error.WriteLine("usage: magnetar autoscaler-credential --cluster NAME|UUID --output DIR");
            return 2;
        }
        var app = Build([.. rest]);
        var options = app.Services.GetRequiredService<AutoscalerOptions>();
        if (!options.Enabled)
        {
            Console.Error.WriteLine("the autoscaler endpoint is off (set Magnetar:Autoscaler:Port)");
            return 1;
        }
        await using var db = await app.Services.GetRequiredService<IDbContextFactory<MagnetarDbContext>>().CreateDbContextAsync();
        var found = await db.Clusters.AsNoTracking().Where(c => c.Uuid == cluster || c.Name == cluster).Select(c => new { c.Uuid, c.Name, c.ProjectId, c.Labels }).ToListAsync();
        if (found.Count != 1)
        {
            Console.Error.WriteLine(found.Count == 0 ? $"no cluster {cluster}"
                : $"{found.Count} clusters are named {cluster}; name one by uuid: {string.Join(", ", found.Select(c => $"{c.Uuid} (project {c.ProjectId})"))}");
            return 1;
        }
        if (!Labels.Flag(found[0].Labels, CloudProviderService.AutoscalingLabel, false))
        {
            Console.Error.WriteLine($"cluster {found[0].Name} does not have {CloudProviderService.AutoscalingLabel}=true: its autoscaler would be refused");
            return 1;
        }
        var credential = await app.Services.GetRequiredService<AutoscalerAuthority>().IssueAsync(found[0].Uuid, CancellationToken.None);
        Directory.CreateDirectory(output);
        var dir = Path.GetFullPath(output);
        void Write(string name, string content, UnixFileMode mode)
        {
            var path = Path.Combine(dir, name);
            File.WriteAllText(path, content);
            File.SetUnixFileMode(path, mode);
        }
        const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite, Public = Private | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
        Write("ca.crt", credential.CaPem, Public);
        Write("tls.crt", credential.CertificatePem, Public);
        Write("tls.key", credential.PrivateKeyPem, Private);
        Write("cloud-config", credential.CloudConfigYaml(dir), Public);
        Console.WriteLine($"wrote {dir}/cloud-config (cluster {found[0].Name} {found[0].Uuid}, endpoint {credential.Address})");
        return 0;
    }

    /// <summary>Adds a user (and project, role assignment) to the built-in identity of a data directory.</summary>
    private static int UserAdd(string[] args)
    {
        var a = new Dictionary<string, string>();
        for (int i = 0; i + 1 < args.Length; i += 2) a[args[i].TrimStart('-')] = args[i + 1];
        if (!a.TryGetValue("name", out var name) || !a.TryGetValue("password", out var password) || !a.TryGetValue("project", out var project))
        {
            Console.Error.WriteLine("user-add needs --name, --password and --project (and --role, default member)");
            return 2;
        }
        var role = a.GetValueOrDefault("role") ?? "member";
        if (role is not ("admin" or "member" or "reader")) { Console.Error.WriteLine("--role is admin, member or reader"); return 2; }
        var dataDir = ResolveDataDir(a.GetValueOrDefault("data-dir"));
        var created = new BuiltInIdentityStore(dataDir).EnsureUser(name, password, project, role);
        Console.WriteLine(created ? $"user {name} created with role {role} on project {project}" : $"user {name} exists; role {role} on project {project} ensured");
        return 0;
    }

    /// <summary>The data directory: as given (--data-dir / Magnetar:DataDir), else $MAGNETAR_DATA_DIR, else ./.magnetar.</summary>
    private static string ResolveDataDir(string? given)
        => Path.GetFullPath(given ?? Environment.GetEnvironmentVariable("MAGNETAR_DATA_DIR") ?? ".magnetar");

    /// <summary>Where the state lives, read from configuration as <c>serve</c> reads it: the data directory and the database.</summary>
    internal static (string DataDir, DatabaseOptions Database, IConfiguration Config) Storage(string[] args)
    {
        var config = WebApplication.CreateBuilder(new WebApplicationOptions { Args = Normalize(args), ContentRootPath = AppContext.BaseDirectory }).Configuration;
        AddConfigFile(config);
        var dataDir = ResolveDataDir(config["Magnetar:DataDir"]);
        return (dataDir, DatabaseFor(config, dataDir), config);
    }

    /// <summary>
    /// The operator's configuration file, <c>/etc/magnetar/magnetar.json</c> (or <c>$MAGNETAR_CONFIG</c>, which must exist):
    /// read after the built-in appsettings.json and before environment variables and the command line, which override it.
    /// JSON with comments (deploy/etc/magnetar.json documents every key).
    /// </summary>
    internal static void AddConfigFile(ConfigurationManager config)
    {
        var named = Environment.GetEnvironmentVariable("MAGNETAR_CONFIG");
        var path = Path.GetFullPath(string.IsNullOrEmpty(named) ? "/etc/magnetar/magnetar.json" : named);
        var source = new Microsoft.Extensions.Configuration.Json.JsonConfigurationSource
        {
            Path = Path.GetFileName(path), Optional = string.IsNullOrEmpty(named), ReloadOnChange = false,
            FileProvider = Directory.Exists(Path.GetDirectoryName(path)) ? new Microsoft.Extensions.FileProviders.PhysicalFileProvider(Path.GetDirectoryName(path)!) : null,
        };
        if (source.FileProvider is null && !source.Optional) throw new InvalidOperationException($"MAGNETAR_CONFIG names {path}, whose directory does not exist");
        if (source.FileProvider is null) return;
        IConfigurationBuilder builder = config;
        var at = builder.Sources.TakeWhile(s => s is not Microsoft.Extensions.Configuration.EnvironmentVariables.EnvironmentVariablesConfigurationSource).Count();
        builder.Sources.Insert(at, source);
    }

    /// <summary>Magnetar:Database; SQLite in the data directory unless a connection string is given.</summary>
    private static DatabaseOptions DatabaseFor(IConfiguration config, string dataDir)
    {
        var db = config.GetSection("Magnetar:Database").Get<DatabaseOptions>() ?? new DatabaseOptions();
        if (string.IsNullOrEmpty(db.ConnectionString) && !db.IsPostgres)
            db.ConnectionString = $"Data Source={Path.Combine(dataDir, "magnetar.db")};Default Timeout=30;Pooling=True";
        return db;
    }

    /// <summary>Builds the application; the in-process tests call both <see cref="Configure"/> methods on a TestServer host instead.</summary>
    /// <param name="serving">For <c>serve</c>: the database side of the start (<see cref="DatabaseWarmUp"/>) begins on
    /// another core as soon as the services exist, while the pipeline is configured and the host starts.</param>
    public static WebApplication Build(string[] args, bool serving = false)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = Normalize(args), ContentRootPath = AppContext.BaseDirectory });
        AddConfigFile(builder.Configuration);
        Configure(builder);
        var app = builder.Build();
        if (serving) app.Services.GetRequiredService<DatabaseWarmUp>().Start();
        Configure(app);
        return app;
    }

    /// <summary>Maps <c>--data-dir X</c> onto configuration; everything else is standard ASP.NET Core configuration.</summary>
    private static string[] Normalize(string[] args)
    {
        var list = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--data-dir" && i + 1 < args.Length) { list.Add("--Magnetar:DataDir=" + args[++i]); continue; }
            if (args[i].StartsWith("--data-dir=")) { list.Add("--Magnetar:DataDir=" + args[i]["--data-dir=".Length..]); continue; }
            list.Add(args[i]);
        }
        return list.ToArray();
    }

    public static void Configure(WebApplicationBuilder builder)
    {
        var config = builder.Configuration;
        var dataDir = ResolveDataDir(config["Magnetar:DataDir"]);
        Directory.CreateDirectory(dataDir);
        config["Magnetar:DataDir"] = dataDir;

        if (string.IsNullOrEmpty(config["urls"]) && string.IsNullOrEmpty(Environment.GetEnvironmentVariable("ASPNETCORE_URLS")))
            builder.WebHost.UseUrls("http://127.0.0.1:9511");

        var apiOptions = config.GetSection("Magnetar:Api").Get<ApiOptions>() ?? new ApiOptions();
        apiOptions.PublicUrl ??= config["Magnetar:PublicUrl"];
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = apiOptions.MaxRequestBodyBytes;
            // HTTPS from PEM files, re-read when they change (Magnetar:Tls:CertificateFile, Magnetar:Tls:KeyFile).
            var logger = k.ApplicationServices.GetRequiredService<ILoggerFactory>().CreateLogger<ReloadingCertificate>();
            if (ReloadingCertificate.FromConfiguration(config, logger) is { } tls) k.ConfigureHttpsDefaults(tls.Apply);
        });

        builder.Services.AddMagnetarPersistence(DatabaseFor(config, dataDir));
        builder.Services.AddSingleton<DatabaseWarmUp>();

        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddMagnetarIdentity(config);
        // Standalone mode (built-in identity, simulated cloud): read-only compute, network, image and orchestration
        // endpoints over the simulated cloud, in the built-in catalog, for Horizon's forms; clusters then report a stack_id.
        builder.Services.AddStandaloneCloud(config);
        if (Standalone.StandaloneCloud.Enabled(config))
            builder.Services.AddSingleton(new BuiltInCatalogEntries(Standalone.StandaloneCloud.CatalogEntries));
        apiOptions.ClusterStacks = Standalone.StandaloneCloud.Enabled(config);
        builder.Services.AddMagnumApi(apiOptions);
        builder.Services.AddMagnumRateLimits(apiOptions);

        // Secrets at rest (CA keys): keys from configuration, or a key file in the data directory.
        var secretOptions = config.GetSection("Magnetar:Secrets").Get<SecretProtectionOptions>();
        if (secretOptions is null || secretOptions.Keys.Count == 0)
            secretOptions = KeyFile.LoadOrCreate(Path.Combine(dataDir, "secret.key"));
        builder.Services.AddSingleton(secretOptions);
        builder.Services.AddSingleton<ISecretProtector, AesGcmSecretProtector>();
        builder.Services.AddSingleton<IClusterCertificates, ClusterCertificates>();

        // Node bootstrap: where nodes reach Magnetar, and what makes a node ready.
        var bootstrap = config.GetSection("Magnetar:Bootstrap").Get<BootstrapOptions>() ?? new BootstrapOptions();
        bootstrap.Url ??= apiOptions.PublicUrl ?? (config["urls"] ?? Environment.GetEnvironmentVariable("ASPNETCORE_URLS") ?? "http://127.0.0.1:9511").Split(';')[0];

        // The cluster-autoscaler endpoint (externalgrpc), on a listener of its own with client certificates.
        var autoscaler = builder.Services.AddMagnetarAutoscaler(config);
        apiOptions.AutoscalerEnabled = autoscaler.Enabled;
        builder.WebHost.ConfigureKestrel(k => AutoscalerEndpoint.Listen(k, autoscaler,
            (config["urls"] ?? Environment.GetEnvironmentVariable("ASPNETCORE_URLS") ?? "http://127.0.0.1:9511").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            () => k.ApplicationServices.GetRequiredService<AutoscalerAuthority>()));

        // Cloud provider.
        var provider = config["Magnetar:Cloud:Provider"] ?? "simulated";
        // Nothing boots on the simulated cloud: its servers count when ACTIVE unless a test node is configured to play them.
        bootstrap.NodeReadiness ??= provider == "openstack" ? "reports" : "cloud";
        switch (provider)
        {
            case "simulated":
                builder.Services.AddSingleton(config.GetSection("Magnetar:Cloud:Simulated").Get<SimulatedCloudOptions>() ?? new SimulatedCloudOptions());
                builder.Services.AddSingleton<SimulatedCloudFaults>();
                builder.Services.AddSingleton<ICloudProvider, SimulatedCloudProvider>();
                break;
            case "openstack":
                var openstack = OpenStackOptionsFrom(config);
                bootstrap.CloudAuthUrl ??= openstack.AuthUrl;
                bootstrap.CloudRegion ??= openstack.Region;
                builder.Services.AddOpenStackCloud(openstack);
                break;
            default:
                throw new InvalidOperationException($"Unknown cloud provider '{provider}' (Magnetar:Cloud:Provider is simulated or openstack).");
        }
        builder.Services.AddSingleton(bootstrap);
        builder.Services.AddSingleton<IUserDataRenderer, CloudInitUserDataRenderer>();
        builder.Services.AddSingleton<NodeBootstrapper>();

        // Migrations run first: hosted services start in registration order. Then this replica registers (docs/rolling-upgrade.md).
        builder.Services.AddSingleton(config.GetSection("Magnetar:Replicas").Get<ReplicaOptions>() ?? new ReplicaOptions());
        builder.Services.AddHostedService<StartupTasks>();
        builder.Services.AddHostedService<ReplicaRegistration>();

        // Metrics: the driver's OpenStack calls, cluster operation durations, the HTTP server and client, in
        // Prometheus' text format at /metrics (no tenant data; Magnetar:Metrics:Prometheus=false turns it off).
        builder.Services.AddOpenTelemetry().WithMetrics(m => m
            .AddMeter(OpenStackMetrics.MeterName, ConductorMetrics.EnsureCreated(), "Microsoft.AspNetCore.Hosting", "System.Net.Http")
            .AddPrometheusExporter());

        // Conductor.
        var conductor = config.GetSection("Magnetar:Conductor").Get<ConductorOptions>() ?? new ConductorOptions();
        builder.Services.AddSingleton(conductor);
        builder.Services.AddSingleton<ReconcileSignal>();
        builder.Services.AddSingleton<ConductorIdentity>();
        builder.Services.AddScoped<ClusterReconciler>();
        // Clusters' Kubernetes APIs (health, drains): reached on OpenStack; on the simulated cloud no Kubernetes runs.
        conductor.ReachClusterApis ??= provider == "openstack";
        builder.Services.AddSingleton<IClusterApi, KubernetesClusterApi>();
        builder.Services.AddSingleton<ClusterApiAccessProvider>();
        builder.Services.AddSingleton<NodeReplacer>();
        builder.Services.AddSingleton(config.GetSection("Magnetar:Health").Get<HealthOptions>() ?? new HealthOptions());
        if (conductor.Enabled)
        {
            builder.Services.AddHostedService<ConductorService>();
            builder.Services.AddHostedService<ServiceHeartbeat>();
            builder.Services.AddSingleton<HealthMonitor>();
            builder.Services.AddHostedService(sp => sp.GetRequiredService<HealthMonitor>());
        }
    }

    /// <summary>
    /// <c>Magnetar:Cloud:OpenStack</c>, with Keystone's URL and the service user taken from the Keystone identity mode
    /// (<c>Magnetar:Identity:Keystone</c>) where not given: one service user serves both.
    /// </summary>
    private static OpenStackOptions OpenStackOptionsFrom(IConfiguration config)
    {
        var o = config.GetSection("Magnetar:Cloud:OpenStack").Get<OpenStackOptions>() ?? new OpenStackOptions();
        var keystone = config.GetSection("Magnetar:Identity:Keystone").Get<KeystoneOptions>() ?? new KeystoneOptions();
        if (string.IsNullOrEmpty(o.AuthUrl)) o.AuthUrl = keystone.AuthUrl;
        if (string.IsNullOrEmpty(o.Username)) { o.Username = keystone.Username; o.Password = keystone.Password; o.ProjectName = keystone.ProjectName; }
        if (string.IsNullOrEmpty(o.AuthUrl))
            throw new InvalidOperationException("The OpenStack cloud needs Magnetar:Cloud:OpenStack:AuthUrl (or Magnetar:Identity:Keystone:AuthUrl).");
        if (!string.Equals(config["Magnetar:Identity:Mode"], "keystone", StringComparison.OrdinalIgnoreCase))
            throw new InvalidOperationException("The OpenStack cloud needs Magnetar:Identity:Mode=keystone: clusters are provisioned with credentials made from the tenant's Keystone token.");
        return o;
    }

    public static void Configure(WebApplication app)
    {
        app.UseMagnumApi();
        app.UseRouting();
        app.UseTokenAuthentication();
        app.UseMagnumRateLimits(app.Services.GetRequiredService<ApiOptions>());
        app.MapGet("/healthz", () => Results.Text("ok"));
        if (app.Configuration.GetValue("Magnetar:Metrics:Prometheus", true)) app.MapPrometheusScrapingEndpoint("/metrics");
        app.MapBuiltInIdentity();
        app.MapStandaloneCloud();
        app.MapMagnumApi();
        app.MapMagnetarAutoscaler();
    }
}
