using System.Security.Cryptography;
using System.Text;

namespace Magnetar.Cloud.Simulated;

/// <summary>
/// Stable ids for the simulated cloud's images, flavors and external networks (<see cref="SimulatedCloudOptions"/>
/// lists them by name): a name-based UUID, so that a template may name them by id (as Horizon's forms do) or by name
/// and both resolve to the same entry, across restarts and replicas.
/// </summary>
public static class SimulatedCatalog
{
    public const string Image = "image", Flavor = "flavor", Network = "network";

    /// <summary>The id of the catalog entry <paramref name="name"/> of <paramref name="kind"/>: a version-5-style UUID of its name.</summary>
    public static string IdOf(string kind, string name)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes($"magnetar-simulated-cloud/{kind}/{name}"));
        hash[6] = (byte)((hash[6] & 0x0F) | 0x50); // version 5 (name-based)
        hash[8] = (byte)((hash[8] & 0x3F) | 0x80); // RFC 4122 variant
        return new Guid(hash.AsSpan(0, 16), bigEndian: true).ToString();
    }

    /// <summary>The name of the entry that <paramref name="idOrName"/> names (by name or by id), or null.</summary>
    public static string? Resolve(IEnumerable<string> names, string kind, string idOrName)
        => names.FirstOrDefault(n => n == idOrName) ?? names.FirstOrDefault(n => string.Equals(IdOf(kind, n), idOrName, StringComparison.OrdinalIgnoreCase));

    /// <summary>A simulated flavor's size: from the well-known names, else the smallest.</summary>
    public static (int Vcpus, int RamMb, int DiskGb) FlavorSize(string name) => name switch
    {
        "m1.tiny" => (1, 512, 1),
        "m1.small" => (1, 2048, 20),
        "m1.medium" => (2, 4096, 40),
        "m1.large" => (4, 8192, 80),
        "m1.xlarge" => (8, 16384, 160),
        "g1.large" => (4, 16384, 80),
        "ds1G" => (1, 1024, 10),
        "ds2G" => (2, 2048, 10),
        "ds4G" => (4, 4096, 20),
        _ => (1, 1024, 10),
    };

    /// <summary>Glance's os_distro for a simulated image (Magnum's drivers are chosen by it).</summary>
    public static string OsDistro(string imageName)
        => imageName.StartsWith("fedora-coreos", StringComparison.OrdinalIgnoreCase) ? "fedora-coreos"
         : imageName.StartsWith("ubuntu", StringComparison.OrdinalIgnoreCase) ? "ubuntu"
         : imageName.StartsWith("flatcar", StringComparison.OrdinalIgnoreCase) ? "flatcar"
         : imageName.Split('-')[0];
}
