using System.Collections.Concurrent;

namespace Magnetar.Cloud.Simulated;

/// <summary>Settings of the simulated cloud (<c>Magnetar:Cloud:Simulated</c>).</summary>
public sealed class SimulatedCloudOptions
{
    /// <summary>How long one simulated cloud step takes (a network, a security group…); servers take two steps.</summary>
    public int StepDelayMs { get; set; } = 1500;
    /// <summary>How long every reconcile or delete pass spends "talking to the cloud" (a real cloud's API latency; 0: none).</summary>
    public int ApiLatencyMs { get; set; }
    /// <summary>The simulated Glance's images (by name), Nova's flavors and Neutron's external networks.</summary>
    public List<string> Images { get; set; } = ["fedora-coreos-40", "fedora-coreos-latest", "ubuntu-24.04", "ubuntu-22.04", "flatcar-stable"];
    public List<string> Flavors { get; set; } = ["m1.tiny", "m1.small", "m1.medium", "m1.large", "m1.xlarge", "g1.large", "ds1G", "ds2G", "ds4G"];
    public List<string> ExternalNetworks { get; set; } = ["public"];
    /// <summary>Nova keypairs known to the simulated cloud; empty means any name is accepted (no keypair store is simulated).</summary>
    public List<string> Keypairs { get; set; } = new();
    /// <summary>Faults applied to every cluster, e.g. <c>create:servers</c> or <c>delete:loadbalancer</c>.</summary>
    public List<string> Faults { get; set; } = new();
}

/// <summary>
/// Faults injected into the simulated cloud. A fault is <c>operation:kind[:nodegroup]</c> where operation is
/// <c>create</c> or <c>delete</c> and kind one of network, subnet, router, secgroup, servergroup, loadbalancer,
/// floatingip, server. Sources: <see cref="SimulatedCloudOptions.Faults"/>, this set (tests change it at run time),
/// and the cluster label <c>simulated_fault</c> (comma-separated), which only this simulated provider reads.
/// </summary>
public sealed class SimulatedCloudFaults
{
    private readonly ConcurrentDictionary<string, byte> _faults = new(StringComparer.OrdinalIgnoreCase);

    public SimulatedCloudFaults(SimulatedCloudOptions options)
    {
        foreach (var f in options.Faults) _faults.TryAdd(f.Trim(), 0);
    }

    public void Add(string fault) => _faults.TryAdd(fault.Trim(), 0);
    public void Remove(string fault) => _faults.TryRemove(fault.Trim(), out _);
    public void Clear() => _faults.Clear();

    /// <summary>The fault spec that matches, or null.</summary>
    public string? Match(string operation, string kind, string? nodeGroup, IReadOnlyDictionary<string, string> labels)
    {
        IEnumerable<string> candidates = _faults.Keys;
        if (labels.TryGetValue("simulated_fault", out var fromLabel))
            candidates = candidates.Concat(fromLabel.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        foreach (var c in candidates)
        {
            var parts = c.Split(':');
            if (parts.Length < 2) continue;
            if (!parts[0].Equals(operation, StringComparison.OrdinalIgnoreCase)) continue;
            // "servers" and "server" name the same kind.
            if (!parts[1].TrimEnd('s').Equals(kind.TrimEnd('s'), StringComparison.OrdinalIgnoreCase)) continue;
            if (parts.Length >= 3 && nodeGroup is not null && !parts[2].Equals(nodeGroup, StringComparison.OrdinalIgnoreCase)) continue;
            return c;
        }
        return null;
    }
}
