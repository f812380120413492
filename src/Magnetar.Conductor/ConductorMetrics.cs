using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Magnetar.Conductor;

/// <summary>Metrics of the conductor (meter <c>Magnetar.Conductor</c>): how long cluster operations take, and how they end.</summary>
public static class ConductorMetrics
{
    public const string MeterName = "Magnetar.Conductor";
    private static readonly Meter Meter = new(MeterName);
    private static readonly Histogram<double> OperationDuration = Meter.CreateHistogram<double>("magnetar.cluster.operation.duration", "s",
        "Time from a cluster operation's acceptance to its end (create, update, upgrade, delete)", advice: new InstrumentAdvice<double>
        { HistogramBucketBoundaries = [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600] });

    private static int _unhealthyClusters, _unhealthyNodes, _unknownClusters;
    private static readonly ObservableGauge<int> UnhealthyClusters = Meter.CreateObservableGauge("magnetar.clusters.unhealthy", () => Volatile.Read(ref _unhealthyClusters),
        "{cluster}", "Clusters the health monitor found UNHEALTHY in its last sweep");
    private static readonly ObservableGauge<int> UnknownClusters = Meter.CreateObservableGauge("magnetar.clusters.health_unknown", () => Volatile.Read(ref _unknownClusters),
        "{cluster}", "Clusters whose health was UNKNOWN in the last sweep (API server unreachable, cloud not answering)");
    private static readonly ObservableGauge<int> UnhealthyNodes = Meter.CreateObservableGauge("magnetar.nodes.unhealthy", () => Volatile.Read(ref _unhealthyNodes),
        "{node}", "Nodes the health monitor found unhealthy in its last sweep");
    private static readonly ObservableGauge<int> KeyPoolMissing = Meter.CreateObservableGauge("magnetar.pki.key_pool.missing",
        () => Math.Max(0, Magnetar.Bootstrap.Pki.RsaKeyPool.Shared.Target - Magnetar.Bootstrap.Pki.RsaKeyPool.Shared.Available), "{key}",
        "RSA keys the pool lacks of its target (Magnetar:Pki:KeyPool): while it does, a new cluster's CAs may cost their keys in its first pass");
    private static readonly Counter<long> HealthTransitions = Meter.CreateCounter<long>("magnetar.cluster.health.transitions", "{transition}",
        "Changes of a cluster's health_status, by the status it changed to");
    private static readonly Counter<long> Healings = Meter.CreateCounter<long>("magnetar.cluster.healings", "{node}",
        "Nodes auto-healing decided to replace, and decisions not to heal, by outcome");

    /// <summary>
    /// Creates the meter and its instruments now. They are static fields, made on the class's first use, which an idle
    /// server (no operation ended, no health sweep yet) may not reach for minutes: its gauges — the key pool's among
    /// them — were then missing from /metrics. The host calls this when it registers the meter.
    /// </summary>
    public static string EnsureCreated() => Meter.Name;

    public static void RecordHealthSweep(int unhealthyClusters, int unknownClusters, int unhealthyNodes)
    {
        Volatile.Write(ref _unhealthyClusters, unhealthyClusters);
        Volatile.Write(ref _unknownClusters, unknownClusters);
        Volatile.Write(ref _unhealthyNodes, unhealthyNodes);
    }

    public static void RecordHealthTransition(string status) => HealthTransitions.Add(1, new TagList { { "status", status } });

    public static void RecordHealing(string outcome) => Healings.Add(1, new TagList { { "outcome", outcome } });

    public static void RecordOperation(string operation, string outcome, TimeSpan duration)
        => OperationDuration.Record(duration.TotalSeconds, new TagList { { "operation", operation }, { "outcome", outcome } });
}
