using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;

namespace Magnetar.Server.Standalone;

public sealed class StoredKeypair
{
    public string Name { get; set; } = "";
    public string Type { get; set; } = "ssh";
    public string PublicKey { get; set; } = "";
    public string Fingerprint { get; set; } = "";
    public long Id { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}

/// <summary>
/// The standalone compute API's keypairs, per user as Nova keeps them, in <c>keypairs.json</c> in the data directory
/// (written atomically, mode 0600). Only public keys are kept: a generated private key is returned once and forgotten.
/// </summary>
public sealed partial class KeypairStore
{
    private sealed class Document
    {
        public long NextId { get; set; } = 1;
        public Dictionary<string, List<StoredKeypair>> Users { get; set; } = new();
    }

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.Never };
    private readonly object _lock = new();
    private readonly string _path;
    private readonly TimeProvider _time;
    private Document _doc;

    public KeypairStore(string dataDir, TimeProvider time)
    {
        _time = time;
        Directory.CreateDirectory(dataDir);
        _path = Path.Combine(dataDir, "keypairs.json");
        _doc = File.Exists(_path) ? JsonSerializer.Deserialize<Document>(File.ReadAllText(_path), Json) ?? new Document() : new Document();
    }

    public IReadOnlyList<StoredKeypair> List(string userId)
    {
        lock (_lock) return _doc.Users.TryGetValue(userId, out var l) ? l.OrderBy(k => k.Name, StringComparer.Ordinal).ToList() : [];
    }

    public StoredKeypair? Find(string userId, string name)
    {
        lock (_lock) return _doc.Users.TryGetValue(userId, out var l) ? l.FirstOrDefault(k => k.Name == name) : null;
    }

    /// <summary>Adds a keypair; false when the user already has one of this name.</summary>
    public bool TryAdd(string userId, StoredKeypair keypair)
    {
        lock (_lock)
        {
            if (!_doc.Users.TryGetValue(userId, out var l)) _doc.Users[userId] = l = new List<StoredKeypair>();
            if (l.Any(k => k.Name == keypair.Name)) return false;
            keypair.Id = _doc.NextId++;
            keypair.CreatedAt = _time.GetUtcNow();
            l.Add(keypair);
            Save();
            return true;
        }
    }

    public bool Remove(string userId, string name)
    {
        lock (_lock)
        {
            if (!_doc.Users.TryGetValue(userId, out var l) || l.RemoveAll(k => k.Name == name) == 0) return false;
            Save();
            return true;
        }
    }

    private void Save()
    {
        var tmp = _path + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(_doc, Json));
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(tmp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.Move(tmp, _path, overwrite: true);
    }

    /// <summary>Nova's rule for keypair names: 1 to 255 of letters, digits, space, '_', '-', '.', '@'.</summary>
    public static bool ValidName(string name) => name.Length is >= 1 and <= 255 && SafeName().IsMatch(name) && name.Trim() == name;

    [GeneratedRegex(@"^[a-zA-Z0-9 _\-\.@]+$")]
    private static partial Regex SafeName();

    /// <summary>A new RSA 2048 key as Nova generates one: OpenSSH public key, PKCS#1 PEM private key, MD5 fingerprint.</summary>
    public static (string PublicKey, string PrivateKey, string Fingerprint) Generate()
    {
        using var rsa = RSA.Create(2048);
        var p = rsa.ExportParameters(false);
        var blob = new MemoryStream();
        void Write(byte[] data)
        {
            Span<byte> len = stackalloc byte[4];
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(len, data.Length);
            blob.Write(len);
            blob.Write(data);
        }
        byte[] MpInt(byte[] v) => v.Length > 0 && (v[0] & 0x80) != 0 ? [0, .. v] : v;
        Write(Encoding.ASCII.GetBytes("ssh-rsa"));
        Write(MpInt(p.Exponent!));
        Write(MpInt(p.Modulus!));
        var bytes = blob.ToArray();
        return ($"ssh-rsa {Convert.ToBase64String(bytes)} Generated-by-Nova", rsa.ExportRSAPrivateKeyPem() + "\n", Fingerprint(bytes));
    }

    /// <summary>Parses an OpenSSH public key line; its fingerprint, or null when it is not one.</summary>
    public static string? ImportFingerprint(string publicKey)
    {
        var parts = publicKey.Trim().Split(' ', 3, StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length < 2) return null;
        if (parts[0] is not ("ssh-rsa" or "ssh-ed25519" or "ssh-dss" or "ecdsa-sha2-nistp256" or "ecdsa-sha2-nistp384" or "ecdsa-sha2-nistp521")) return null;
        byte[] blob;
        try { blob = Convert.FromBase64String(parts[1]); }
        catch (FormatException) { return null; }
        // the blob starts with its own key type
        if (blob.Length < 4 + parts[0].Length) return null;
        var len = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(blob);
        if (len != parts[0].Length || Encoding.ASCII.GetString(blob, 4, len) != parts[0]) return null;
        return Fingerprint(blob);
    }

    private static string Fingerprint(byte[] blob) => string.Join(':', MD5.HashData(blob).Select(b => b.ToString("x2")));
}
