using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Magnetar.Identity;

/// <summary>
/// What a built-in token carries. Roles are not in it: they are looked up when the token is validated. A token made
/// from another one (Keystone's token method, e.g. an unscoped token rescoped to a project) keeps its parent's audit
/// id: its audit_ids are [own, parent's], as Keystone's.
/// </summary>
public sealed record TokenPayload(string UserId, string? ProjectId, string[] Methods, DateTimeOffset IssuedAt, DateTimeOffset ExpiresAt, string AuditId,
    string? ParentAuditId = null)
{
    /// <summary>Keystone's audit_ids: the token's own audit id, then (for a token made from a token) its parent's.</summary>
    public string[] AuditIds => ParentAuditId is null ? [AuditId] : [AuditId, ParentAuditId];
}

/// <summary>
/// Fernet-like tokens for the built-in identity: the payload is encrypted and authenticated with AES-256-GCM
/// under a key kept in <c>token.key</c> in the data directory, so tokens stay valid across restarts and
/// cannot be forged or read. Revocation (DELETE /v3/auth/tokens) is by audit id, kept in memory.
/// </summary>
public sealed class BuiltInTokenService
{
    private readonly byte[] _key;
    private readonly TimeProvider _time;
    private readonly HashSet<string> _revoked = new();
    public TimeSpan Lifetime { get; }

    public BuiltInTokenService(string dataDir, TimeProvider time, TimeSpan lifetime)
    {
        _time = time;
        Lifetime = lifetime;
        var path = Path.Combine(dataDir, "token.key");
        if (!File.Exists(path))
        {
            var tmp = path + ".tmp";
            File.WriteAllText(tmp, Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)));
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(tmp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            File.Move(tmp, path);
        }
        _key = Convert.FromBase64String(File.ReadAllText(path).Trim());
    }

    public (string Token, TokenPayload Payload) Issue(string userId, string? projectId, string[] methods, DateTimeOffset? expiresAt = null, string? parentAuditId = null)
    {
        var now = _time.GetUtcNow();
        var payload = new TokenPayload(userId, projectId, methods, now, expiresAt ?? now + Lifetime,
            Convert.ToBase64String(RandomNumberGenerator.GetBytes(16)).TrimEnd('=').Replace('+', '-').Replace('/', '_'), parentAuditId);
        var plain = JsonSerializer.SerializeToUtf8Bytes(payload);
        var buffer = new byte[1 + 12 + plain.Length + 16];
        buffer[0] = 1; // format version
        RandomNumberGenerator.Fill(buffer.AsSpan(1, 12));
        using var aes = new AesGcm(_key, 16);
        aes.Encrypt(buffer.AsSpan(1, 12), plain, buffer.AsSpan(13, plain.Length), buffer.AsSpan(13 + plain.Length), [buffer[0]]);
        return ("mgt" + Convert.ToBase64String(buffer).TrimEnd('=').Replace('+', '-').Replace('/', '_'), payload);
    }

    /// <summary>The payload of a genuine, unexpired, unrevoked token; null otherwise.</summary>
    public TokenPayload? Read(string token)
    {
        if (token.Length < 10 || token.Length > 4096 || !token.StartsWith("mgt", StringComparison.Ordinal)) return null;
        byte[] buffer;
        try
        {
            var t = token[3..].Replace('-', '+').Replace('_', '/');
            buffer = Convert.FromBase64String(t + new string('=', (4 - t.Length % 4) % 4));
        }
        catch (FormatException) { return null; }
        if (buffer.Length < 1 + 12 + 16 + 2 || buffer[0] != 1) return null;
        var plain = new byte[buffer.Length - 29];
        try
        {
            using var aes = new AesGcm(_key, 16);
            aes.Decrypt(buffer.AsSpan(1, 12), buffer.AsSpan(13, plain.Length), buffer.AsSpan(13 + plain.Length), plain, [buffer[0]]);
        }
        catch (CryptographicException) { return null; }
        TokenPayload? payload;
        try { payload = JsonSerializer.Deserialize<TokenPayload>(plain); }
        catch (JsonException) { return null; }
        if (payload is null || payload.ExpiresAt <= _time.GetUtcNow()) return null;
        lock (_revoked) if (_revoked.Contains(payload.AuditId)) return null;
        return payload;
    }

    public void Revoke(TokenPayload payload)
    {
        lock (_revoked) _revoked.Add(payload.AuditId);
    }
}

/// <summary>Validates built-in tokens and resolves user, project and current roles from the store.</summary>
public sealed class BuiltInTokenValidator(BuiltInTokenService tokens, BuiltInIdentityStore store) : ITokenValidator
{
    public Task<TokenValidationResult> ValidateAsync(string token, CancellationToken cancellationToken)
        => Task.FromResult(Validate(token));

    public TokenValidationResult Validate(string token)
    {
        var p = tokens.Read(token);
        if (p is null) return TokenValidationResult.Invalid("The token is invalid or expired.");
        var user = store.FindUser(p.UserId, null);
        if (user is null) return TokenValidationResult.Invalid("The token's user no longer exists.");
        if (p.ProjectId is null) return TokenValidationResult.Invalid("The token is not scoped to a project.");
        var project = store.FindProject(p.ProjectId, null);
        if (project is null) return TokenValidationResult.Invalid("The token's project no longer exists.");
        var roles = store.RolesOf(user.Id, project.Id);
        return TokenValidationResult.Valid(new AuthContext(user.Id, user.Name, project.Id, project.Name, project.DomainId, roles, p.ExpiresAt, p.AuditId));
    }
}
