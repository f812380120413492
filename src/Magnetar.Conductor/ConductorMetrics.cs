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

    public static void RecordOperation(string operation, string outcome, TimeSpan duration)
        => OperationDuration.Record(duration.TotalSeconds, new TagList { { "operation", operation }, { "outcome", outcome } });
}
