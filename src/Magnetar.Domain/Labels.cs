namespace Magnetar.Domain;

/// <summary>Label arithmetic as Magnum does it (magnum/api/utils.py get_labels_diff and cluster create).</summary>
public static class Labels
{
    public sealed record Diff(
        Dictionary<string, string> Overridden,
        Dictionary<string, string> Added,
        Dictionary<string, string> Skipped);

    /// <summary>Overridden holds the parent's value for keys whose value differs; Added the keys only in the child; Skipped the parent's keys the child lacks.</summary>
    public static Diff Compare(IReadOnlyDictionary<string, string> parent, IReadOnlyDictionary<string, string> child)
    {
        var overridden = new Dictionary<string, string>();
        var added = new Dictionary<string, string>();
        var skipped = parent.Where(p => !child.ContainsKey(p.Key)).ToDictionary(p => p.Key, p => p.Value);
        foreach (var (key, value) in child)
        {
            if (parent.TryGetValue(key, out var parentValue))
            {
                if (parentValue != value) overridden[key] = parentValue;
            }
            else added[key] = value;
        }
        return new Diff(overridden, added, skipped);
    }

    /// <summary>The labels a new cluster (or nodegroup) gets: the parent's when none are given; the given ones, merged onto the parent's when asked.</summary>
    public static Dictionary<string, string> Inherit(IReadOnlyDictionary<string, string> parent, IReadOnlyDictionary<string, string>? given, bool merge)
    {
        if (given is null || given.Count == 0) return new Dictionary<string, string>(parent);
        if (!merge) return new Dictionary<string, string>(given);
        var result = new Dictionary<string, string>(parent);
        foreach (var (k, v) in given) result[k] = v;
        return result;
    }

    /// <summary>The Kubernetes version a cluster runs, from Magnum's kube_tag label (e.g. v1.31.1).</summary>
    public static string KubernetesVersion(IReadOnlyDictionary<string, string> labels, string fallback)
        => labels.TryGetValue("kube_tag", out var tag) && !string.IsNullOrWhiteSpace(tag) ? tag : fallback;

    /// <summary>The pod network CIDR: Magnum's calico_ipv4pool / flannel_network_cidr labels, else 10.100.0.0/16 (Magnum's default).</summary>
    public static string PodCidr(IReadOnlyDictionary<string, string> labels, string? networkDriver)
        => First(labels, networkDriver == "flannel" ? "flannel_network_cidr" : "calico_ipv4pool", "pods_network_cidr") ?? "10.100.0.0/16";

    /// <summary>The service CIDR: Magnum's service_cluster_ip_range label, else 10.254.0.0/16 (Magnum's default).</summary>
    public static string ServiceCidr(IReadOnlyDictionary<string, string> labels) => First(labels, "service_cluster_ip_range") ?? "10.254.0.0/16";

    /// <summary>The cluster DNS domain: Magnum's dns_cluster_domain label, else cluster.local.</summary>
    public static string DnsDomain(IReadOnlyDictionary<string, string> labels) => First(labels, "dns_cluster_domain") ?? "cluster.local";

    /// <summary>A boolean label ("true"/"false", case-insensitive); <paramref name="fallback"/> when absent.</summary>
    public static bool Flag(IReadOnlyDictionary<string, string> labels, string key, bool fallback)
        => labels.TryGetValue(key, out var v) && bool.TryParse(v, out var b) ? b : fallback;

    private static string? First(IReadOnlyDictionary<string, string> labels, params string[] keys)
        => keys.Select(k => labels.TryGetValue(k, out var v) && !string.IsNullOrWhiteSpace(v) ? v : null).FirstOrDefault(v => v is not null);
}

/// <summary>Kubernetes versions as kube_tag and kubelet write them (v1.32.1, v1.32.1-rc.0).</summary>
public static class KubeVersion
{
    public static bool TryParse(string? s, out (int Major, int Minor, int Patch) version)
    {
        version = default;
        if (string.IsNullOrEmpty(s)) return false;
        var core = s.TrimStart('v').Split('-', '+')[0].Split('.');
        if (core.Length != 3 || !int.TryParse(core[0], out var a) || !int.TryParse(core[1], out var b) || !int.TryParse(core[2], out var c)) return false;
        version = (a, b, c);
        return true;
    }

    /// <summary>Orders two versions by major, minor, patch; unparsable ones compare equal.</summary>
    public static int Compare(string a, string b)
        => TryParse(a, out var x) && TryParse(b, out var y) ? x.CompareTo(y) : 0;
}
