using System.Security.Cryptography;
using System.Text;

namespace Magnetar.Bootstrap.Secrets;

/// <summary>Keys for secrets at rest: id → 32 random bytes (base64). New values use the active key.</summary>
public sealed class SecretProtectionOptions
{
    public string ActiveKeyId { get; set; } = "";
    public Dictionary<string, string> Keys { get; set; } = new();
}

/// <summary>A protected value could not be read: unknown key, wrong purpose or tampered.</summary>
public sealed class SecretUnprotectException(string message, Exception? inner = null) : Exception(message, inner);

public interface ISecretProtector
{
    string Protect(string plaintext, string purpose);
    string Unprotect(string protectedValue, string purpose);
}

/// <summary>AES-256-GCM; the purpose is authenticated data. Format: <c>mg1:&lt;keyId&gt;:&lt;base64url(nonce|ciphertext|tag)&gt;</c>.</summary>
public sealed class AesGcmSecretProtector : ISecretProtector
{
    private const string Prefix = "mg1";
    private readonly Dictionary<string, byte[]> _keys;
    private readonly string _active;

    public AesGcmSecretProtector(SecretProtectionOptions options)
    {
        _keys = options.Keys.ToDictionary(k => k.Key, k => Convert.FromBase64String(k.Value));
        foreach (var (id, key) in _keys)
        {
            if (key.Length != 32) throw new ArgumentException($"secret key '{id}' must be 32 bytes");
            if (id.Contains(':')) throw new ArgumentException($"secret key id '{id}' must not contain ':'");
        }
        _active = options.ActiveKeyId;
        if (!_keys.ContainsKey(_active)) throw new ArgumentException($"active secret key '{_active}' is not configured");
    }

    public string Protect(string plaintext, string purpose)
    {
        var plain = Encoding.UTF8.GetBytes(plaintext);
        var buffer = new byte[12 + plain.Length + 16];
        var nonce = buffer.AsSpan(0, 12);
        RandomNumberGenerator.Fill(nonce);
        using var aes = new AesGcm(_keys[_active], 16);
        aes.Encrypt(nonce, plain, buffer.AsSpan(12, plain.Length), buffer.AsSpan(12 + plain.Length), Encoding.UTF8.GetBytes(purpose));
        return $"{Prefix}:{_active}:{Base64Url(buffer)}";
    }

    public string Unprotect(string protectedValue, string purpose)
    {
        var parts = protectedValue.Split(':');
        if (parts.Length != 3 || parts[0] != Prefix) throw new SecretUnprotectException("not a protected value");
        if (!_keys.TryGetValue(parts[1], out var key)) throw new SecretUnprotectException($"unknown secret key '{parts[1]}'");
        byte[] buffer;
        try { buffer = FromBase64Url(parts[2]); }
        catch (FormatException e) { throw new SecretUnprotectException("corrupt protected value", e); }
        if (buffer.Length < 28) throw new SecretUnprotectException("corrupt protected value");
        var plain = new byte[buffer.Length - 28];
        try
        {
            using var aes = new AesGcm(key, 16);
            aes.Decrypt(buffer.AsSpan(0, 12), buffer.AsSpan(12, plain.Length), buffer.AsSpan(12 + plain.Length), plain, Encoding.UTF8.GetBytes(purpose));
        }
        catch (AuthenticationTagMismatchException e)
        {
            throw new SecretUnprotectException("protected value was tampered with or belongs to another purpose", e);
        }
        return Encoding.UTF8.GetString(plain);
    }

    private static string Base64Url(byte[] b) => Convert.ToBase64String(b).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    private static byte[] FromBase64Url(string s)
    {
        var t = s.Replace('-', '+').Replace('_', '/');
        return Convert.FromBase64String(t + new string('=', (4 - t.Length % 4) % 4));
    }
}

/// <summary>Standalone mode: one random key kept in a 0600 file in the data directory.</summary>
public static class KeyFile
{
    public static SecretProtectionOptions LoadOrCreate(string path)
    {
        if (!File.Exists(path))
        {
            var tmp = path + ".tmp";
            File.WriteAllText(tmp, "k1:" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)) + "\n");
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(tmp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            File.Move(tmp, path);
        }
        var options = new SecretProtectionOptions();
        foreach (var line in File.ReadAllLines(path).Where(l => l.Contains(':')))
        {
            var i = line.IndexOf(':');
            options.Keys[line[..i].Trim()] = line[(i + 1)..].Trim();
            options.ActiveKeyId = line[..i].Trim(); // the last line is the active key: append a line to rotate
        }
        return options;
    }
}
