using System.Data.Common;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Magnetar.Api;
using Magnetar.Domain;
using Magnetar.Persistence;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using MySqlConnector;

namespace Magnetar.Server;

/// <summary>
/// <c>magnetar import-magnum --connection URL [--apply]</c> (issue #16, "Moving over from Magnum"): reads a Magnum 15
/// database (MySQL/MariaDB) and imports its cluster templates and quotas into Magnetar's database.
/// <list type="bullet">
/// <item>A dry run unless <c>--apply</c>: every template, quota and cluster is listed with what would happen to it.</item>
/// <item>Templates keep Magnum's uuid (clusters, scripts and Terraform state name them by it), owners, flags, labels and
/// every column Magnetar has. One that Magnetar's API would refuse (a COE other than kubernetes, an unsupported network
/// or volume driver, a bad kube_tag…) is skipped with the API's reason; so is one whose name is taken in its project by
/// another Magnetar template. A uuid already in Magnetar is "already present": running the import again imports nothing twice.</item>
/// <item>Quotas are keyed on (project, resource): missing ones are imported, equal ones are unchanged, differing ones are
/// reported and left as Magnetar has them.</item>
/// <item>Magnum's clusters are Heat stacks: they are listed and stay with Magnum (not adopted); nothing is written for them.</item>
/// </list>
/// </summary>
internal static class ImportMagnumCommand
{
    /// <summary>The alembic head of Magnum 15 (Zed): the schema this importer reads.</summary>
    internal const string MagnumSchemaHead = "7da8489d6a68";

    /// <summary>Every other revision of Magnum 15's migrations (magnum/db/sqlalchemy/alembic/versions): older schemas.</summary>
    private static readonly HashSet<string> OlderMagnumRevisions =
    [
        "041d9a0f1159", "049f81f6f584", "04c625aa95ba", "05d3e97de9ee", "085e601a39f6", "14328d6a57e3", "1481f5b560dd", "156ceb17fb0a",
        "1afee1db6cd0", "1c1ff5e56048", "1d045384b966", "1f196a3dabae", "2581ebaf0cb2", "27ad304554e2", "29affeaa2bc2", "2ace4006498",
        "2ae93c9c6191", "2b5f24dd95de", "2d1354bbf76e", "2d8657c0cdc", "33ef79969018", "35cff7c86221", "3a938526b35d", "3b6c4c42adb4",
        "3be65537a94a", "3bea56f25597", "40f325033343", "417917e778f5", "421102d1f2d2", "456126c6c9e9", "461d798132c7", "47380964133d",
        "4956f03cabad", "4e263f236334", "4ea34a59a64c", "52bcaf58fecb", "53882537ac57", "5518af8dbc21", "5793cd26898d", "57fbdf2327a2",
        "592131657ca1", "5977879072a7", "59e7664a8ba1", "5ad410481b88", "5d4caa6e0a42", "68ce16dfd341", "6f21dc920bb", "6f21dc998bb",
        "720f640f43d1", "859fb45df249", "87e62e3c7abc", "95096e2334ee", "966a99e70ff", "9a1539f1cd2c", "a0e7c8450ab1", "a1136d335540",
        "aa0cc27839af", "ac92cbae311c", "adc3b7679ae", "b1f612248cab", "bb42b7cad130", "bc46ba6cf949", "c04e925e65c2", "cbbc65a86986",
        "d072f58ab240", "e0653b2d5271", "e647f5931da8", "e772b2598d9", "ee92b41b8809", "ef08a5e057bd", "f1d8b0ab8b8d", "fb03fdef8919",
        "fcb4efee8f8b",
    ];

    private const string Usage = "usage: magnetar import-magnum --connection URL [--apply] [--data-dir DIR] [--Magnetar:Database:...]\n" +
                                 "  URL: magnum.conf's [database] connection (mysql+pymysql://user:pass@host:3306/magnum?charset=utf8) or a MySqlConnector connection string";

    internal sealed class CommandException(string message) : Exception(message);

    /// <summary>A Magnum cluster template row, as read.</summary>
    private sealed record MagnumTemplate(string Uuid, string? Name, string? ProjectId, string? UserId, string? Coe, bool Public, bool Hidden,
        ClusterTemplate? Mapped, string? Problem);

    private sealed record MagnumQuota(string ProjectId, string Resource, int? HardLimit);

    private sealed record MagnumCluster(string Uuid, string? Name, string? ProjectId, string? Status, string? StackId);

    public static async Task<int> RunAsync(string[] args)
    {
        string? connection = null;
        var apply = false;
        var rest = new List<string>();
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "--connection" && i + 1 < args.Length) connection = args[++i];
            else if (args[i].StartsWith("--connection=", StringComparison.Ordinal)) connection = args[i]["--connection=".Length..];
            else if (args[i] == "--apply") apply = true;
            else if (args[i] is "--help" or "-h") { Console.WriteLine(Usage); return 0; }
            else if (args[i].StartsWith('-') && !args[i].Contains(':') && !args[i].Contains("__") && args[i] != "--data-dir" && !args[i].StartsWith("--data-dir=", StringComparison.Ordinal))
            {
                // A misspelt --apply must not quietly become a dry run (nor a configuration key).
                Console.Error.WriteLine($"magnetar import-magnum: unknown option {args[i]}\n" + Usage);
                return 2;
            }
            else rest.Add(args[i]);
        }
        if (string.IsNullOrWhiteSpace(connection))
        {
            Console.Error.WriteLine("magnetar import-magnum: --connection URL is required (magnum.conf's [database] connection)\n" + Usage);
            return 2;
        }
        string? password = null;
        try
        {
            var source = ParseConnection(connection);
            password = source.Password;
            var (_, db, config) = MagnetarHost.Storage(rest.ToArray());
            var autoscaler = (config.GetSection("Magnetar:Autoscaler").Get<Magnetar.Autoscaler.AutoscalerOptions>() ?? new()).Enabled;
            var magnum = await ReadMagnumAsync(source);
            await ImportAsync(magnum, db, apply, autoscaler);
            return 0;
        }
        catch (CommandException e)
        {
            Console.Error.WriteLine("magnetar import-magnum: " + Scrub(e.Message, password));
            return 1;
        }
        catch (Exception e) when (e is DbException or InvalidOperationException or IOException or UnauthorizedAccessException or TimeoutException)
        {
            // Magnetar's configuration or its own database (SQLite file, PostgreSQL) could not be read or written.
            Console.Error.WriteLine("magnetar import-magnum: " + Scrub(e.Message.Split('\n')[0].Trim(), password));
            return 1;
        }
        catch (Exception e)
        {
            // Anything else is a bug of this command: still one line, no stack trace, no password.
            Console.Error.WriteLine($"magnetar import-magnum: failed ({e.GetType().Name}): " + Scrub(e.Message.Split('\n')[0].Trim(), password));
            return 1;
        }
    }

    private static string Scrub(string message, string? password)
        => string.IsNullOrEmpty(password) ? message : message.Replace(password, "***", StringComparison.Ordinal);

    // ---------------------------------------------------------------- the connection URL

    /// <summary>
    /// SQLAlchemy's URL as magnum.conf holds it (<c>mysql+pymysql://user:pass@host:port/db?charset=utf8</c>, also
    /// <c>mysql://</c>, <c>mariadb://</c>; user and password percent-encoded; <c>?unix_socket=</c>, <c>ssl_ca</c>,
    /// <c>ssl_cert</c>, <c>ssl_key</c>), or a MySqlConnector connection string. Errors never echo the password.
    /// </summary>
    internal static MySqlConnectionStringBuilder ParseConnection(string text)
    {
        text = text.Trim();
        MySqlConnectionStringBuilder b;
        var scheme = text.IndexOf("://", StringComparison.Ordinal);
        if (scheme >= 0)
        {
            var dialect = text[..scheme].ToLowerInvariant();
            var main = dialect.Split('+')[0];
            if (main is not ("mysql" or "mariadb"))
                throw new CommandException($"--connection: '{dialect}://' is not a MySQL/MariaDB URL (Magnum's database is MySQL or MariaDB: mysql+pymysql://USER:PASSWORD@HOST:3306/magnum)");
            b = new MySqlConnectionStringBuilder();
            var rest = text[(scheme + 3)..];
            string query = "";
            var q = rest.IndexOf('?');
            if (q >= 0) { query = rest[(q + 1)..]; rest = rest[..q]; }
            var slash = rest.IndexOf('/');
            var authority = slash >= 0 ? rest[..slash] : rest;
            var database = slash >= 0 ? rest[(slash + 1)..] : "";
            var at = authority.LastIndexOf('@');
            var hostPort = at >= 0 ? authority[(at + 1)..] : authority;
            if (at >= 0)
            {
                var userInfo = authority[..at];
                var colon = userInfo.IndexOf(':');
                b.UserID = Unescape(colon >= 0 ? userInfo[..colon] : userInfo);
                if (colon >= 0) b.Password = Unescape(userInfo[(colon + 1)..]);
            }
            string host;
            string? port = null;
            if (hostPort.StartsWith('['))
            {
                var close = hostPort.IndexOf(']');
                if (close < 0) throw new CommandException("--connection: the URL's host has an unclosed '['");
                host = hostPort[1..close];
                if (close + 1 < hostPort.Length)
                {
                    if (hostPort[close + 1] != ':') throw new CommandException("--connection: the URL's host is not HOST[:PORT]");
                    port = hostPort[(close + 2)..];
                }
            }
            else
            {
                var colon = hostPort.LastIndexOf(':');
                host = colon >= 0 ? hostPort[..colon] : hostPort;
                if (colon >= 0) port = hostPort[(colon + 1)..];
            }
            if (port is not null)
            {
                if (!uint.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var p) || p is 0 or > 65535)
                    throw new CommandException($"--connection: the URL's port '{port}' is not a port number");
                b.Port = p;
            }
            b.Server = Unescape(host);
            b.Database = Unescape(database);
            foreach (var pair in query.Split('&', StringSplitOptions.RemoveEmptyEntries))
            {
                var eq = pair.IndexOf('=');
                var key = Unescape(eq >= 0 ? pair[..eq] : pair);
                var value = eq >= 0 ? Unescape(pair[(eq + 1)..]) : "";
                switch (key)
                {
                    case "unix_socket":
                        b.Server = value;
                        b.ConnectionProtocol = MySqlConnectionProtocol.UnixSocket;
                        break;
                    case "ssl_ca": b.SslCa = value; b.SslMode = MySqlSslMode.VerifyCA; break;
                    case "ssl_cert": b.SslCert = value; break;
                    case "ssl_key": b.SslKey = value; break;
                    // charset (MySqlConnector always speaks utf8mb4), plugin, read_default_* and the rest: pymysql's own.
                }
            }
            if (string.IsNullOrEmpty(b.Server)) throw new CommandException("--connection: the URL names no host (mysql+pymysql://USER:PASSWORD@HOST:3306/magnum)");
        }
        else
        {
            if (!text.Contains('=')) throw new CommandException("--connection: neither a URL (mysql+pymysql://USER:PASSWORD@HOST:3306/magnum) nor a connection string (Server=…;Database=…)");
            try { b = new MySqlConnectionStringBuilder(text); }
            catch (Exception e) when (e is ArgumentException or FormatException or InvalidOperationException)
            {
                // The builder's messages name the offending keyword, never the values.
                throw new CommandException("--connection: not a valid MySqlConnector connection string: " + e.Message.Split('\n')[0]);
            }
            if (string.IsNullOrEmpty(b.Server)) throw new CommandException("--connection: the connection string names no Server");
        }
        if (string.IsNullOrEmpty(b.Database)) throw new CommandException("--connection: no database named (Magnum's is usually 'magnum': …/magnum)");
        if (scheme >= 0) b.ConnectionTimeout = 10;
        b.ConvertZeroDateTime = true;
        b.Pooling = false;
        return b;
    }

    private static string Unescape(string s)
    {
        try { return Uri.UnescapeDataString(s); }
        catch (UriFormatException) { throw new CommandException("--connection: the URL has a malformed %-escape"); }
    }

    /// <summary>What an operator may see of the source: user@host:port/database, no password.</summary>
    private static string Describe(MySqlConnectionStringBuilder b)
        => (string.IsNullOrEmpty(b.UserID) ? "" : b.UserID + "@") +
           (b.ConnectionProtocol == MySqlConnectionProtocol.UnixSocket ? b.Server : $"{b.Server}:{b.Port}") + "/" + b.Database;

    // ---------------------------------------------------------------- reading Magnum

    private sealed record MagnumContents(string Source, string Revision, List<MagnumTemplate> Templates, List<MagnumQuota> Quotas, List<MagnumCluster> Clusters);

    private static async Task<MagnumContents> ReadMagnumAsync(MySqlConnectionStringBuilder source)
    {
        var where = Describe(source);
        await using var conn = new MySqlConnection(source.ConnectionString);
        try { await conn.OpenAsync(); }
        catch (Exception e) when (e is MySqlException or DbException or System.Net.Sockets.SocketException or TimeoutException or InvalidOperationException or ArgumentException or IOException)
        {
            throw new CommandException($"cannot connect to Magnum's database {where}: {e.Message.Split('\n')[0].Trim()}");
        }
        try
        {
            var tables = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            await using (var cmd = new MySqlCommand("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()", conn))
            await using (var r = await cmd.ExecuteReaderAsync())
                while (await r.ReadAsync()) tables.Add(r.GetString(0));
            if (!tables.Contains("cluster_template"))
                throw new CommandException($"{where} is not Magnum's database: it has no cluster_template table" +
                                           (tables.Count == 0 ? " (it has no tables at all)" : ""));
            if (!tables.Contains("alembic_version"))
                throw new CommandException($"{where} is not a Magnum database made by magnum-db-manage: it has no alembic_version table");
            var revisions = new List<string>();
            await using (var cmd = new MySqlCommand("SELECT version_num FROM alembic_version", conn))
            await using (var r = await cmd.ExecuteReaderAsync())
                while (await r.ReadAsync()) revisions.Add(r.GetString(0));
            if (revisions.Count != 1)
                throw new CommandException($"{where}: alembic_version holds {revisions.Count} revisions ({string.Join(", ", revisions)}); Magnum 15's schema has one, {MagnumSchemaHead}");
            var revision = revisions[0];
            if (revision != MagnumSchemaHead)
            {
                if (OlderMagnumRevisions.Contains(revision))
                    throw new CommandException($"{where} has Magnum schema revision {revision}, older than Magnum 15's ({MagnumSchemaHead}): upgrade it first with 'magnum-db-manage upgrade'");
                throw new CommandException($"{where} has schema revision {revision}, which is not a Magnum 15 revision: this importer reads Magnum 15's schema (revision {MagnumSchemaHead})");
            }
            if (!tables.Contains("quotas") || !tables.Contains("cluster"))
                throw new CommandException($"{where} lacks Magnum's {(tables.Contains("quotas") ? "cluster" : "quotas")} table although its schema revision is {revision}");

            var templates = new List<MagnumTemplate>();
            await using (var cmd = new MySqlCommand("SELECT * FROM cluster_template ORDER BY id", conn))
            await using (var r = await cmd.ExecuteReaderAsync())
                while (await r.ReadAsync()) templates.Add(MapTemplate(r));
            var quotas = new List<MagnumQuota>();
            await using (var cmd = new MySqlCommand("SELECT project_id, resource, hard_limit FROM quotas ORDER BY id", conn))
            await using (var r = await cmd.ExecuteReaderAsync())
                while (await r.ReadAsync())
                    quotas.Add(new MagnumQuota(Str(r, "project_id") ?? "", Str(r, "resource") ?? "", Int(r, "hard_limit")));
            var clusters = new List<MagnumCluster>();
            await using (var cmd = new MySqlCommand("SELECT uuid, name, project_id, status, stack_id FROM cluster ORDER BY id", conn))
            await using (var r = await cmd.ExecuteReaderAsync())
                while (await r.ReadAsync())
                    clusters.Add(new MagnumCluster(Str(r, "uuid") ?? "", Str(r, "name"), Str(r, "project_id"), Str(r, "status"), Str(r, "stack_id")));
            return new MagnumContents(where, revision, templates, quotas, clusters);
        }
        catch (MySqlException e)
        {
            throw new CommandException($"reading Magnum's database {where} failed: {e.Message.Split('\n')[0].Trim()}");
        }
    }

    private static string? Str(DbDataReader r, string column)
    {
        var v = r[column];
        return v is DBNull or null ? null : Convert.ToString(v, CultureInfo.InvariantCulture);
    }

    private static int? Int(DbDataReader r, string column)
    {
        var v = r[column];
        return v is DBNull or null ? null : Convert.ToInt32(v, CultureInfo.InvariantCulture);
    }

    private static bool Bool(DbDataReader r, string column, bool fallback)
    {
        var v = r[column];
        return v is DBNull or null ? fallback : Convert.ToBoolean(v, CultureInfo.InvariantCulture);
    }

    private static DateTimeOffset? Time(DbDataReader r, string column)
    {
        var v = r[column];
        if (v is not DateTime dt || dt == DateTime.MinValue) return null;
        return new DateTimeOffset(DateTime.SpecifyKind(dt, DateTimeKind.Utc)); // oslo.db stores naive UTC
    }

    /// <summary>
    /// One cluster_template row as Magnetar's entity, checked with the rules Magnetar's API applies to a template
    /// (its schema and <see cref="ClusterTemplatesApi.ValidateTemplate"/>); a row that fails them carries the reason.
    /// Cloud references (image, flavors, network, keypair) are checked when a cluster is created from it, as in Magnum.
    /// </summary>
    private static MagnumTemplate MapTemplate(DbDataReader r)
    {
        var uuid = Str(r, "uuid") ?? "";
        var name = Str(r, "name");
        var projectId = Str(r, "project_id");
        var userId = Str(r, "user_id");
        var coe = Str(r, "coe");
        var isPublic = Bool(r, "public", false);
        var hidden = Bool(r, "hidden", false);
        MagnumTemplate Skip(string why) => new(uuid, name, projectId, userId, coe, isPublic, hidden, null, why);

        if (!Guid.TryParse(uuid, out _)) return Skip($"its uuid '{uuid}' is not a UUID");
        if (string.IsNullOrEmpty(projectId)) return Skip("it has no project_id");
        if (projectId.Length > 64 || (userId?.Length ?? 0) > 64) return Skip("its project_id or user_id is longer than 64 characters");
        if (coe != "kubernetes") return Skip($"its COE is {coe ?? "not set"}: Magnetar runs only kubernetes");

        Dictionary<string, string> labels;
        try { labels = ParseLabels(Str(r, "labels")); }
        catch (FormatException e) { return Skip(e.Message); }

        // The attributes as the API's create body would carry them: the API's own schema checks them.
        var body = new JsonObject();
        void Put(string key, string column) { if (Str(r, column) is { } s) body[key] = s; }
        void PutInt(string key, string column) { if (Int(r, column) is { } i) body[key] = i; }
        body["coe"] = coe;
        Put("name", "name");
        Put("image_id", "image_id");
        Put("flavor_id", "flavor_id");
        Put("master_flavor_id", "master_flavor_id");
        Put("dns_nameserver", "dns_nameserver");
        Put("keypair_id", "keypair_id");
        Put("external_network_id", "external_network_id");
        Put("fixed_network", "fixed_network");
        Put("fixed_subnet", "fixed_subnet");
        Put("network_driver", "network_driver");
        PutInt("apiserver_port", "apiserver_port");
        PutInt("docker_volume_size", "docker_volume_size");
        Put("cluster_distro", "cluster_distro");
        Put("http_proxy", "http_proxy");
        Put("https_proxy", "https_proxy");
        Put("no_proxy", "no_proxy");
        Put("volume_driver", "volume_driver");
        Put("server_type", "server_type");
        Put("insecure_registry", "insecure_registry");
        Put("docker_storage_driver", "docker_storage_driver");
        Put("tags", "tags");
        body["labels"] = new JsonObject(labels.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value))));
        Dictionary<string, object?> v;
        try { v = Schemas.ClusterTemplate.Validate(body); }
        catch (MagnumError e) { return Skip("Magnetar's API would refuse it: " + e.Message); }

        string? S(string k) => v.TryGetValue(k, out var x) ? (string?)x : null;
        int? I(string k) => v.TryGetValue(k, out var x) ? (int?)x : null;
        var t = new ClusterTemplate
        {
            Uuid = uuid.ToLowerInvariant(),
            Name = name ?? "",
            ProjectId = projectId,
            UserId = userId ?? "",
            Coe = coe,
            ImageId = S("image_id") ?? "",
            FlavorId = S("flavor_id"),
            MasterFlavorId = S("master_flavor_id"),
            DnsNameserver = S("dns_nameserver"),
            KeypairId = S("keypair_id"),
            ExternalNetworkId = S("external_network_id"),
            FixedNetwork = S("fixed_network"),
            FixedSubnet = S("fixed_subnet"),
            // Magnum's API fills the network driver in at create; a row without one is shown with Magnetar's default.
            NetworkDriver = S("network_driver"),
            VolumeDriver = S("volume_driver"),
            ApiserverPort = I("apiserver_port"),
            DockerVolumeSize = I("docker_volume_size"),
            DockerStorageDriver = S("docker_storage_driver"),
            ClusterDistro = S("cluster_distro"),
            HttpProxy = S("http_proxy"),
            HttpsProxy = S("https_proxy"),
            NoProxy = S("no_proxy"),
            RegistryEnabled = Bool(r, "registry_enabled", false),
            TlsDisabled = Bool(r, "tls_disabled", false),
            Public = isPublic,
            Hidden = hidden,
            ServerType = S("server_type") ?? "vm",
            InsecureRegistry = S("insecure_registry"),
            MasterLbEnabled = Bool(r, "master_lb_enabled", false),
            FloatingIpEnabled = Bool(r, "floating_ip_enabled", true),
            Tags = S("tags"),
            Driver = null, // Magnum 15's templates have no driver column
            Labels = labels,
            CreatedAt = Time(r, "created_at") ?? DateTimeOffset.UtcNow,
            UpdatedAt = Time(r, "updated_at"),
        };
        try { ClusterTemplatesApi.ValidateTemplate(t); }
        catch (MagnumError e) { return Skip("Magnetar's API would refuse it: " + e.Message); }
        return new MagnumTemplate(t.Uuid, name, projectId, userId, coe, isPublic, hidden, t, null);
    }

    /// <summary>
    /// Magnum's labels column: a JSON object (JSONEncodedDict) of strings as its API stores them; NULL is none. Numbers
    /// and booleans written by other tools are kept as their JSON text; nested values cannot be labels.
    /// </summary>
    internal static Dictionary<string, string> ParseLabels(string? json)
    {
        var labels = new Dictionary<string, string>();
        if (string.IsNullOrWhiteSpace(json)) return labels;
        JsonNode? node;
        try { node = JsonNode.Parse(json); }
        catch (JsonException) { throw new FormatException("its labels are not valid JSON"); }
        if (node is null) return labels;
        if (node is not JsonObject o) throw new FormatException("its labels are not a JSON object");
        foreach (var (k, value) in o)
        {
            labels[k] = value switch
            {
                null => "",
                JsonValue jv when jv.TryGetValue<string>(out var s) => s,
                JsonValue jv when jv.GetValueKind() is JsonValueKind.True or JsonValueKind.False => jv.GetValueKind() == JsonValueKind.True ? "true" : "false",
                JsonValue jv when jv.GetValueKind() == JsonValueKind.Number => jv.ToJsonString(),
                _ => throw new FormatException($"its label '{k}' is not a string but {value.GetValueKind().ToString().ToLowerInvariant()}"),
            };
        }
        return labels;
    }

    // ---------------------------------------------------------------- importing

    private static async Task ImportAsync(MagnumContents magnum, DatabaseOptions dbOptions, bool apply, bool autoscalerEnabled)
    {
        await using var provider = new ServiceCollection().AddMagnetarPersistence(dbOptions).BuildServiceProvider();
        var factory = provider.GetRequiredService<IDbContextFactory<MagnetarDbContext>>();
        var target = dbOptions.IsPostgres ? "PostgreSQL database" : $"SQLite database {SqliteFile(dbOptions)}";

        var o = Console.Out;
        o.WriteLine($"Magnum database {magnum.Source} (schema revision {magnum.Revision}, Magnum 15)");
        o.WriteLine($"Magnetar {target}");
        o.WriteLine(apply ? "Applying: importing into Magnetar's database." : "Dry run: nothing is written (--apply imports).");

        // What Magnetar holds now. A dry run writes nothing, not even the schema: a database not made yet is empty.
        var existingTemplates = new List<ClusterTemplate>();
        var existingQuotas = new List<Quota>();
        var fresh = !dbOptions.IsPostgres && !File.Exists(SqliteFile(dbOptions));
        if (apply)
        {
            if (!dbOptions.IsPostgres) Directory.CreateDirectory(Path.GetDirectoryName(SqliteFile(dbOptions))!);
            await factory.MigrateAsync();
            fresh = false;
        }
        if (!fresh)
        {
            await using var db = await factory.CreateDbContextAsync();
            if (!apply && !(await db.Database.GetAppliedMigrationsAsync()).Any()) fresh = true;
            else
            {
                List<string> pending = apply ? [] : (await db.Database.GetPendingMigrationsAsync()).ToList();
                try
                {
                    existingTemplates = await db.ClusterTemplates.AsNoTracking().ToListAsync();
                    existingQuotas = await db.Quotas.AsNoTracking().ToListAsync();
                }
                catch (DbException) when (pending.Count > 0)
                {
                    throw new CommandException($"Magnetar's database schema is {pending.Count} migration(s) behind: run 'magnetar migrate' first (or --apply, which migrates it)");
                }
            }
        }
        if (fresh) o.WriteLine("Magnetar's database has no schema yet: it is empty (--apply creates it).");

        // Templates.
        var byUuid = existingTemplates.ToDictionary(t => t.Uuid, StringComparer.OrdinalIgnoreCase);
        var toAdd = new List<ClusterTemplate>();
        int present = 0, skipped = 0;
        o.WriteLine();
        o.WriteLine($"Cluster templates ({magnum.Templates.Count} in Magnum):");
        foreach (var m in magnum.Templates)
        {
            var what = $"{m.Uuid}  name '{m.Name}'  project {m.ProjectId ?? "-"}  {(m.Public ? "public" : "private")}{(m.Hidden ? ", hidden" : "")}  coe {m.Coe ?? "-"}";
            if (byUuid.TryGetValue(m.Uuid, out var there))
            {
                present++;
                o.WriteLine($"  already present  {what}" + (there.Name != (m.Name ?? "") || there.ProjectId != m.ProjectId
                    ? $" (in Magnetar as '{there.Name}' of project {there.ProjectId}; not changed)" : ""));
                continue;
            }
            if (m.Mapped is null)
            {
                skipped++;
                o.WriteLine($"  skipped          {what}: {m.Problem}");
                continue;
            }
            var clash = m.Mapped.Name.Length == 0 ? null
                : existingTemplates.FirstOrDefault(t => t.ProjectId == m.Mapped.ProjectId && t.Name == m.Mapped.Name);
            if (clash is not null)
            {
                skipped++;
                o.WriteLine($"  skipped          {what}: project {m.ProjectId} already has a Magnetar template named '{m.Name}' (uuid {clash.Uuid}); rename one of them and import again");
                continue;
            }
            toAdd.Add(m.Mapped);
            o.WriteLine($"  {(apply ? "imported        " : "would import    ")} {what}  labels {m.Mapped.Labels.Count}" +
                        (Labels.Flag(m.Mapped.Labels, "auto_scaling_enabled", false) && !autoscalerEnabled
                            ? "; note: its label auto_scaling_enabled=true makes Magnetar refuse clusters from it until the autoscaler endpoint is on (Magnetar:Autoscaler:Port)"
                            : ""));
        }

        // Quotas.
        var quotasToAdd = new List<Quota>();
        int quotasSame = 0, quotasDiffer = 0, quotasSkipped = 0;
        o.WriteLine();
        o.WriteLine($"Quotas ({magnum.Quotas.Count} in Magnum):");
        var seen = new HashSet<(string, string)>();
        foreach (var q in magnum.Quotas)
        {
            var what = $"project {q.ProjectId}  resource {q.Resource}  hard_limit {q.HardLimit?.ToString(CultureInfo.InvariantCulture) ?? "NULL"}";
            string? problem = string.IsNullOrEmpty(q.ProjectId) ? "it has no project_id"
                : q.Resource != "Cluster" ? $"its resource is '{q.Resource}': Magnum's API (and Magnetar's) knows only Cluster"
                : q.HardLimit is null or < 0 ? "its hard_limit is not a number of clusters ≥ 0"
                : !seen.Add((q.ProjectId, q.Resource)) ? "a second quota for the same project and resource"
                : null;
            if (problem is not null)
            {
                quotasSkipped++;
                o.WriteLine($"  skipped          {what}: {problem}");
                continue;
            }
            var there = existingQuotas.FirstOrDefault(x => x.ProjectId == q.ProjectId && x.Resource == q.Resource);
            if (there is null)
            {
                quotasToAdd.Add(new Quota { ProjectId = q.ProjectId, Resource = q.Resource, HardLimit = q.HardLimit!.Value, CreatedAt = DateTimeOffset.UtcNow });
                o.WriteLine($"  {(apply ? "imported        " : "would import    ")} {what}");
            }
            else if (there.HardLimit == q.HardLimit)
            {
                quotasSame++;
                o.WriteLine($"  unchanged        {what} (Magnetar has the same)");
            }
            else
            {
                quotasDiffer++;
                o.WriteLine($"  differs, left    {what}: Magnetar has hard_limit {there.HardLimit}, which is kept (change it with 'openstack coe quotas update' if Magnum's is wanted)");
            }
        }

        // Clusters: Heat stacks, not adopted.
        o.WriteLine();
        o.WriteLine($"Clusters ({magnum.Clusters.Count} in Magnum): Magnum's clusters are Heat stacks; they stay with Magnum and are not adopted by Magnetar (out of scope), nothing is written for them.");
        foreach (var c in magnum.Clusters)
            o.WriteLine($"  stays with Magnum  {c.Uuid}  name '{c.Name}'  project {c.ProjectId ?? "-"}  status {c.Status ?? "-"}  stack_id {c.StackId ?? "-"}");

        if (apply && (toAdd.Count > 0 || quotasToAdd.Count > 0))
        {
            await using var db = await factory.CreateDbContextAsync();
            db.ClusterTemplates.AddRange(toAdd);
            db.Quotas.AddRange(quotasToAdd);
            try { await db.SaveChangesAsync(); } // one transaction: all or nothing
            catch (DbUpdateException e)
            {
                throw new CommandException($"nothing was imported: writing to Magnetar's database failed ({(e.InnerException ?? e).Message.Split('\n')[0].Trim()}); a template or quota may have been created meanwhile, run the import again");
            }
        }

        o.WriteLine();
        var verb = apply ? "imported" : "would be imported";
        o.WriteLine($"Summary: cluster templates: {toAdd.Count} {verb}, {present} already present, {skipped} skipped; " +
                    $"quotas: {quotasToAdd.Count} {verb}, {quotasSame} unchanged, {quotasDiffer} differ (left as Magnetar has them), {quotasSkipped} skipped; " +
                    $"clusters: {magnum.Clusters.Count} stay with Magnum.");
        if (!apply && (toAdd.Count > 0 || quotasToAdd.Count > 0)) o.WriteLine("Run again with --apply to import.");
    }

    private static string SqliteFile(DatabaseOptions db) => Path.GetFullPath(new SqliteConnectionStringBuilder(db.ConnectionString).DataSource);
}
