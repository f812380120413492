using System.Text.RegularExpressions;

namespace Magnetar.Domain;

public static partial class ResourceNames
{
    /// <summary>Magnum's cluster name rule: a letter, then letters, digits, '_', '.', '-' (max 242).</summary>
    [GeneratedRegex("^[a-zA-Z][a-zA-Z0-9_.-]*$")]
    public static partial Regex ClusterNamePattern();

    public static bool LooksLikeUuid(string ident) => Guid.TryParse(ident, out _);

    private static readonly string[] Adjectives = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega"];

    /// <summary>A human-readable name like Magnum's name generator (e.g. zeta-22-cluster).</summary>
    public static string Generate(string suffix)
        => $"{Adjectives[Random.Shared.Next(Adjectives.Length)]}-{Random.Shared.Next(0, 100)}-{suffix}";
}
