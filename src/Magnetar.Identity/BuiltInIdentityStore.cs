using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Magnetar.Identity;

public sealed class IdentityProject
{
    public string Id { get; set; } = "";
    public string Name { get; set; } = "";
    public string DomainId { get; set; } = "default";
}

public sealed class IdentityUser
{
    public string Id { get; set; } = "";
    public string Name { get; set; } = "";
    public string DomainId { get; set; } = "default";
    public string PasswordHash { get; set; } = "";
    /// <summary>project id → role names.</summary>
    public Dictionary<string, List<string>> Roles { get; set; } = new();
}

/// <summary>
/// The built-in identity's users, projects and role assignments (standalone mode only), kept in
/// <c>identity.json</c> in the data directory (written atomically, mode 0600). Passwords are stored as
/// PBKDF2-SHA256 hashes.
/// </summary>
public sealed class BuiltInIdentityStore
{
    public const string DefaultDomainId = "default";
    public const string DefaultDomainName = "Default";
    private const int Iterations = 210_000;

    private sealed class Document
    {
        public List<IdentityProject> Projects { get; set; } = new();
        public List<IdentityUser> Users { get; set; } = new();
    }

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.Never };
    private readonly object _lock = new();
    private readonly string _path;
    private Document _doc;

    public BuiltInIdentityStore(string dataDir)
    {
        Directory.CreateDirectory(dataDir);
        _path = Path.Combine(dataDir, "identity.json");
        _doc = File.Exists(_path) ? JsonSerializer.Deserialize<Document>(File.ReadAllText(_path), Json) ?? new Document() : new Document();
    }

    public IdentityProject EnsureProject(string name)
    {
        lock (_lock)
        {
            var p = _doc.Projects.FirstOrDefault(x => x.Name == name);
            if (p is not null) return p;
            p = new IdentityProject { Id = NewId(), Name = name };
            _doc.Projects.Add(p);
            Save();
            return p;
        }
    }

    /// <summary>Creates the user with this password if missing (returns true), else only ensures the role assignment.</summary>
    public bool EnsureUser(string name, string password, string projectName, params string[] roles)
    {
        var project = EnsureProject(projectName);
        lock (_lock)
        {
            var u = _doc.Users.FirstOrDefault(x => x.Name == name);
            var created = false;
            if (u is null)
            {
                u = new IdentityUser { Id = NewId(), Name = name, PasswordHash = Hash(password) };
                _doc.Users.Add(u);
                created = true;
            }
            if (!u.Roles.TryGetValue(project.Id, out var list)) u.Roles[project.Id] = list = new List<string>();
            foreach (var r in roles) if (!list.Contains(r)) list.Add(r);
            Save();
            return created;
        }
    }

    public IdentityUser? FindUser(string? id, string? name)
    {
        lock (_lock) return _doc.Users.FirstOrDefault(u => (id is not null && u.Id == id) || (id is null && name is not null && u.Name == name));
    }

    public IdentityProject? FindProject(string? id, string? name)
    {
        lock (_lock) return _doc.Projects.FirstOrDefault(p => (id is not null && p.Id == id) || (id is null && name is not null && p.Name == name));
    }

    public IReadOnlyList<IdentityProject> Projects() { lock (_lock) return _doc.Projects.ToList(); }
    public IReadOnlyList<IdentityUser> Users() { lock (_lock) return _doc.Users.ToList(); }

    public IReadOnlyList<string> RolesOf(string userId, string projectId)
    {
        lock (_lock)
        {
            var u = _doc.Users.FirstOrDefault(x => x.Id == userId);
            return u is not null && u.Roles.TryGetValue(projectId, out var r) ? r.ToList() : [];
        }
    }

    public bool VerifyPassword(IdentityUser user, string password)
    {
        var parts = user.PasswordHash.Split('$');
        if (parts.Length != 4 || parts[0] != "pbkdf2-sha256") return false;
        var salt = Convert.FromBase64String(parts[2]);
        var expected = Convert.FromBase64String(parts[3]);
        var actual = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), salt, int.Parse(parts[1]), HashAlgorithmName.SHA256, expected.Length);
        return CryptographicOperations.FixedTimeEquals(actual, expected);
    }

    private static string Hash(string password)
    {
        var salt = RandomNumberGenerator.GetBytes(16);
        var hash = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), salt, Iterations, HashAlgorithmName.SHA256, 32);
        return $"pbkdf2-sha256${Iterations}${Convert.ToBase64String(salt)}${Convert.ToBase64String(hash)}";
    }

    private static string NewId() => Guid.NewGuid().ToString("N");

    private void Save()
    {
        var tmp = _path + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(_doc, Json));
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(tmp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.Move(tmp, _path, overwrite: true);
    }

    /// <summary>
    /// Standalone seeding: projects admin and demo, users admin (admin on admin) and demo (member on demo) with
    /// random passwords on first creation; writes <c>openrc</c> and <c>openrc-demo</c> (0600) for the real
    /// OpenStack CLI. Passwords live only in those files (and hashed in identity.json).
    /// </summary>
    public IReadOnlyList<string> SeedStandalone(string dataDir, string publicBaseUrl)
    {
        var written = new List<string>();
        foreach (var (user, project, role, file) in new[] { ("admin", "admin", "admin", "openrc"), ("demo", "demo", "member", "openrc-demo") })
        {
            var path = Path.Combine(dataDir, file);
            var password = ExistingPassword(path) ?? Convert.ToBase64String(RandomNumberGenerator.GetBytes(18)).Replace('+', 'x').Replace('/', 'y');
            var existing = FindUser(null, user);
            if (existing is not null && !VerifyPassword(existing, password))
            {
                // The openrc was lost or edited: reset the password so the file written now works.
                lock (_lock) { existing.PasswordHash = Hash(password); Save(); }
            }
            EnsureUser(user, password, project, role);
            var rc = new StringBuilder()
                .Append("# Magnetar built-in identity (standalone mode). Source this file, then: openstack coe cluster list\n")
                .Append($"export OS_AUTH_URL={publicBaseUrl}/identity/v3\n")
                .Append($"export OS_USERNAME={user}\n")
                .Append($"export OS_PASSWORD={password}\n")
                .Append($"export OS_PROJECT_NAME={project}\n")
                .Append("export OS_USER_DOMAIN_NAME=Default\n")
                .Append("export OS_PROJECT_DOMAIN_NAME=Default\n")
                .Append("export OS_IDENTITY_API_VERSION=3\n")
                .Append("export OS_AUTH_TYPE=password\n")
                .Append("export OS_REGION_NAME=RegionOne\n")
                .Append("export OS_INTERFACE=public\n");
            var tmp = path + ".tmp";
            File.WriteAllText(tmp, rc.ToString());
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(tmp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            File.Move(tmp, path, overwrite: true);
            written.Add(path);
        }
        return written;
    }

    private static string? ExistingPassword(string openrc)
    {
        if (!File.Exists(openrc)) return null;
        var line = File.ReadAllLines(openrc).FirstOrDefault(l => l.StartsWith("export OS_PASSWORD=", StringComparison.Ordinal));
        return line?["export OS_PASSWORD=".Length..];
    }
}
