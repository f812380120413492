using System.Data.Common;
using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Text.Json;
using Magnetar.Bootstrap.Secrets;
using Magnetar.Persistence;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Magnetar.Server;

/// <summary>
/// <c>magnetar backup</c> and <c>magnetar restore</c> (issue #16). A backup is one gzip'd tar the operator names, mode
/// 0600 (it holds the key that opens every cluster's CA keys and credentials):
/// <list type="bullet">
/// <item><c>magnetar-backup.json</c>: format, database provider, time, the secret key ids the database's secrets are sealed with;</item>
/// <item><c>database.sqlite</c> — SQLite's online backup API, a consistent copy while replicas write — or
/// <c>database.pgdump</c> — <c>pg_dump --format=custom</c>, one snapshot transaction;</item>
/// <item><c>secret.key</c> and <c>identity.json</c> from the data directory when they are there (keys given in
/// configuration instead are not copied: their ids are recorded, and restore checks that the configuration holds them).</item>
/// </list>
/// Restore wants every replica stopped; it refuses a database that holds clusters or templates, and a data directory
/// whose secret.key differs from the backup's, unless <c>--force</c>.
/// </summary>
internal static class BackupCommands
{
    private const int Format = 1;
    private const string ManifestEntry = "magnetar-backup.json", SqliteEntry = "database.sqlite", PostgresEntry = "database.pgdump";
    private static readonly string[] DataFiles = ["secret.key", "identity.json"];
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    internal sealed record Manifest(int Format, string Provider, DateTimeOffset CreatedAt, List<string> Files, List<string> KeyIds, bool KeysFromConfiguration);

    private sealed class CommandException(string message) : Exception(message);

    public static async Task<int> BackupAsync(string[] args)
    {
        try
        {
            var (output, _, rest) = Options(args, "--output");
            if (File.Exists(output)) throw new CommandException($"{output} exists; name a new file");
            var (dataDir, db, config) = MagnetarHost.Storage(rest);
            var work = Directory.CreateTempSubdirectory("magnetar-backup-").FullName;
            try
            {
                var files = new List<string>();
                if (db.IsPostgres)
                {
                    await PostgresToolAsync("pg_dump", db.ConnectionString!, ["--format=custom", "--no-owner", "--no-privileges", "--file", Path.Combine(work, PostgresEntry)]);
                    files.Add(PostgresEntry);
                }
                else
                {
                    var source = SqliteFile(db);
                    if (!File.Exists(source)) throw new CommandException($"no database at {source} (is --data-dir right?)");
                    using (var from = Sqlite(source, SqliteOpenMode.ReadOnly))
                    using (var to = Sqlite(Path.Combine(work, SqliteEntry), SqliteOpenMode.ReadWriteCreate))
                        from.BackupDatabase(to);
                    files.Add(SqliteEntry);
                }
                foreach (var name in DataFiles.Where(n => File.Exists(Path.Combine(dataDir, n))))
                {
                    File.Copy(Path.Combine(dataDir, name), Path.Combine(work, name));
                    files.Add(name);
                }
                var (keyIds, fromConfig) = KeyIds(config, dataDir);
                var manifest = new Manifest(Format, db.IsPostgres ? "postgres" : "sqlite", DateTimeOffset.UtcNow, files, keyIds, fromConfig);
                await File.WriteAllTextAsync(Path.Combine(work, ManifestEntry), JsonSerializer.Serialize(manifest, Json));

                var partial = output + ".partial";
                await using (var file = new FileStream(partial, new FileStreamOptions
                {
                    Mode = FileMode.CreateNew, Access = FileAccess.Write,
                    UnixCreateMode = OperatingSystem.IsWindows() ? null : UnixFileMode.UserRead | UnixFileMode.UserWrite,
                }))
                await using (var gzip = new GZipStream(file, CompressionLevel.Optimal))
                await using (var tar = new TarWriter(gzip, TarEntryFormat.Pax))
                {
                    foreach (var name in files.Prepend(ManifestEntry)) await tar.WriteEntryAsync(Path.Combine(work, name), name);
                }
                File.Move(partial, output);
                Console.WriteLine($"backup of the {manifest.Provider} database, {string.Join(", ", files.Skip(1))} written to {output} (mode 0600: it holds the secret key)" +
                    (fromConfig ? $"; the secret keys come from configuration (ids {string.Join(", ", keyIds)}) and are not in the backup: keep them with it" : ""));
                return 0;
            }
            finally { Directory.Delete(work, true); }
        }
        catch (CommandException e)
        {
            Console.Error.WriteLine("magnetar backup: " + e.Message);
            return 1;
        }
    }

    public static async Task<int> RestoreAsync(string[] args)
    {
        try
        {
            var (input, force, rest) = Options(args, "--input");
            if (!File.Exists(input)) throw new CommandException($"no backup at {input}");
            var (dataDir, db, config) = MagnetarHost.Storage(rest);
            var work = Directory.CreateTempSubdirectory("magnetar-restore-").FullName;
            try
            {
                try
                {
                    await using var file = File.OpenRead(input);
                    await using var gzip = new GZipStream(file, CompressionMode.Decompress);
                    await TarFile.ExtractToDirectoryAsync(gzip, work, overwriteFiles: false);
                }
                catch (Exception e) when (e is InvalidDataException or IOException or FormatException)
                {
                    throw new CommandException($"{input} is not a Magnetar backup: {e.Message}");
                }
                var manifestFile = Path.Combine(work, ManifestEntry);
                if (!File.Exists(manifestFile)) throw new CommandException($"{input} is not a Magnetar backup (no {ManifestEntry})");
                var manifest = JsonSerializer.Deserialize<Manifest>(await File.ReadAllTextAsync(manifestFile), Json)
                    ?? throw new CommandException($"{input}: {ManifestEntry} is empty");
                if (manifest.Format != Format) throw new CommandException($"{input} is a backup of format {manifest.Format}; this Magnetar reads format {Format}");
                var provider = db.IsPostgres ? "postgres" : "sqlite";
                if (manifest.Provider != provider)
                    throw new CommandException($"the backup holds a {manifest.Provider} database and this configuration names {provider} (Magnetar:Database:Provider)");

                // The database must not hold what the restore would replace.
                var (clusters, templates) = await ContentsAsync(db);
                if (clusters + templates > 0 && !force)
                    throw new CommandException($"the database holds {clusters} cluster(s) and {templates} cluster template(s); restoring would replace them (--force to do so)");

                // The secrets in the backup open only with the keys they were sealed with.
                var keyFile = Path.Combine(dataDir, "secret.key");
                var backupKey = Path.Combine(work, "secret.key");
                var (configured, fromConfig) = KeyIds(config, dataDir, required: false);
                if (fromConfig)
                {
                    var missing = manifest.KeyIds.Except(configured).ToList();
                    if (missing.Count > 0)
                        throw new CommandException($"the backup's secrets are sealed with key(s) {string.Join(", ", missing)}, which Magnetar:Secrets:Keys does not hold");
                }
                else if (!File.Exists(backupKey))
                    throw new CommandException($"the backup has no secret.key (its keys came from configuration: ids {string.Join(", ", manifest.KeyIds)}); configure Magnetar:Secrets:Keys with them first");
                else if (File.Exists(keyFile) && File.ReadAllText(keyFile) != File.ReadAllText(backupKey) && !force)
                    throw new CommandException($"{keyFile} differs from the backup's; the secrets of the database now would no longer open (--force to replace it)");

                Directory.CreateDirectory(dataDir);
                if (db.IsPostgres)
                    await PostgresToolAsync("pg_restore", db.ConnectionString!, ["--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction", Path.Combine(work, PostgresEntry)], dbNameFlag: true);
                else
                {
                    var target = SqliteFile(db);
                    Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                    using var from = Sqlite(Path.Combine(work, SqliteEntry), SqliteOpenMode.ReadOnly);
                    using var to = Sqlite(target, SqliteOpenMode.ReadWriteCreate);
                    from.BackupDatabase(to);
                }
                foreach (var name in DataFiles.Where(n => manifest.Files.Contains(n) && !(fromConfig && n == "secret.key")))
                {
                    var tmp = Path.Combine(dataDir, name + ".restore");
                    File.Copy(Path.Combine(work, name), tmp, overwrite: true);
                    if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(tmp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
                    File.Move(tmp, Path.Combine(dataDir, name), overwrite: true);
                }
                (clusters, templates) = await ContentsAsync(db);
                Console.WriteLine($"restored the backup of {manifest.CreatedAt:u}: {clusters} cluster(s), {templates} cluster template(s); start Magnetar (it migrates the schema if the backup is older)");
                return 0;
            }
            finally { Directory.Delete(work, true); }
        }
        catch (CommandException e)
        {
            Console.Error.WriteLine("magnetar restore: " + e.Message);
            return 1;
        }
    }

    /// <summary>The file option (--output/--input), --force, and the rest for configuration.</summary>
    private static (string File, bool Force, string[] Others) Options(string[] args, string fileOption)
    {
        string? file = null;
        var force = false;
        var rest = new List<string>();
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == fileOption && i + 1 < args.Length) file = args[++i];
            else if (args[i].StartsWith(fileOption + "=")) file = args[i][(fileOption.Length + 1)..];
            else if (args[i] == "--force") force = true;
            else rest.Add(args[i]);
        }
        if (string.IsNullOrWhiteSpace(file)) throw new CommandException($"{fileOption} FILE is required");
        return (Path.GetFullPath(file), force, rest.ToArray());
    }

    /// <summary>The ids of the keys that seal the secrets: Magnetar:Secrets:Keys, else the data directory's key file.</summary>
    private static (List<string> Ids, bool FromConfiguration) KeyIds(IConfiguration config, string dataDir, bool required = true)
    {
        var configured = config.GetSection("Magnetar:Secrets").Get<SecretProtectionOptions>();
        if (configured is { Keys.Count: > 0 }) return (configured.Keys.Keys.Order().ToList(), true);
        var keyFile = Path.Combine(dataDir, "secret.key");
        if (!File.Exists(keyFile))
            return required ? throw new CommandException($"no secret key: neither Magnetar:Secrets:Keys nor {keyFile}") : ([], false);
        return (KeyFile.LoadOrCreate(keyFile).Keys.Keys.Order().ToList(), false);
    }

    private static string SqliteFile(DatabaseOptions db) => Path.GetFullPath(new SqliteConnectionStringBuilder(db.ConnectionString).DataSource);

    private static SqliteConnection Sqlite(string path, SqliteOpenMode mode)
    {
        var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = mode, Pooling = false, DefaultTimeout = 30 }.ToString());
        c.Open();
        return c;
    }

    /// <summary>How many clusters and cluster templates the database holds (0 where the schema is not there yet).</summary>
    private static async Task<(long Clusters, long Templates)> ContentsAsync(DatabaseOptions db)
    {
        DbConnection connection;
        if (db.IsPostgres) connection = new NpgsqlConnection(db.ConnectionString);
        else
        {
            if (!File.Exists(SqliteFile(db))) return (0, 0);
            connection = Sqlite(SqliteFile(db), SqliteOpenMode.ReadOnly);
        }
        await using (connection)
        {
            if (connection.State != System.Data.ConnectionState.Open) await connection.OpenAsync();
            async Task<long> Count(string table)
            {
                await using var cmd = connection.CreateCommand();
                cmd.CommandText = db.IsPostgres
                    ? $"SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = '{table}'"
                    : $"SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '{table}'";
                if (Convert.ToInt64(await cmd.ExecuteScalarAsync()) == 0) return 0;
                cmd.CommandText = $"SELECT COUNT(*) FROM {table}";
                return Convert.ToInt64(await cmd.ExecuteScalarAsync());
            }
            return (await Count("clusters"), await Count("cluster_templates"));
        }
    }

    /// <summary>Runs pg_dump or pg_restore (Debian's postgresql-client) against the configured PostgreSQL.</summary>
    private static async Task PostgresToolAsync(string tool, string connectionString, string[] args, bool dbNameFlag = false)
    {
        var cs = new NpgsqlConnectionStringBuilder(connectionString);
        var psi = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (dbNameFlag) { psi.ArgumentList.Insert(0, "--dbname"); psi.ArgumentList.Insert(1, cs.Database ?? ""); }
        psi.Environment["PGHOST"] = cs.Host ?? "localhost";
        psi.Environment["PGPORT"] = cs.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (cs.Username is not null) psi.Environment["PGUSER"] = cs.Username;
        if (cs.Password is not null) psi.Environment["PGPASSWORD"] = cs.Password;
        if (cs.Database is not null) psi.Environment["PGDATABASE"] = cs.Database;
        Process process;
        try { process = Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception e) { throw new CommandException($"{tool} could not be run ({e.Message}): install Debian's postgresql-client"); }
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();
            if (process.ExitCode != 0) throw new CommandException($"{tool} exited with {process.ExitCode}: {(await stderr).Trim()} {(await stdout).Trim()}".Trim());
        }
    }
}
