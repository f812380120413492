namespace Magnetar.Identity;

/// <summary>Who is calling, as established from a validated Keystone (or built-in) token.</summary>
public sealed record AuthContext(
    string UserId,
    string UserName,
    string ProjectId,
    string ProjectName,
    string DomainId,
    IReadOnlyList<string> Roles,
    DateTimeOffset ExpiresAt,
    string? AuditId = null)
{
    public bool HasRole(string role) => Roles.Any(r => string.Equals(r, role, StringComparison.OrdinalIgnoreCase));
    public bool IsAdmin => HasRole("admin");
    /// <summary>Keystone's implied roles: admin implies member implies reader.</summary>
    public bool IsMember => IsAdmin || HasRole("member") || HasRole("_member_");
    public bool IsReader => IsMember || HasRole("reader");
}

/// <summary>Result of validating a token: either an <see cref="AuthContext"/> or a reason it was refused.</summary>
public sealed record TokenValidationResult(AuthContext? Context, string? FailureReason)
{
    public static TokenValidationResult Valid(AuthContext ctx) => new(ctx, null);
    public static TokenValidationResult Invalid(string reason) => new(null, reason);
    public bool IsValid => Context is not null;
}

/// <summary>Validates an X-Auth-Token. Implementations: built-in identity (standalone) and external Keystone.</summary>
public interface ITokenValidator
{
    Task<TokenValidationResult> ValidateAsync(string token, CancellationToken cancellationToken);
}
