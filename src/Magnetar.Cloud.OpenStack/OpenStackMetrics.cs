using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Magnetar.Cloud.OpenStack;

/// <summary>
/// Metrics of the OpenStack driver (meter <c>Magnetar.Cloud.OpenStack</c>): every API call Magnetar makes, by service,
/// method and status, and how long it took. Exported by the server (OpenTelemetry → Prometheus <c>/metrics</c>).
/// </summary>
public static class OpenStackMetrics
{
    public const string MeterName = "Magnetar.Cloud.OpenStack";
    private static readonly Meter Meter = new(MeterName);
    private static readonly Counter<long> Requests = Meter.CreateCounter<long>("magnetar.openstack.requests", "{request}",
        "OpenStack API requests made by Magnetar");
    private static readonly Histogram<double> Duration = Meter.CreateHistogram<double>("magnetar.openstack.request.duration", "s",
        "Duration of OpenStack API requests made by Magnetar");

    /// <summary>Records one request; <paramref name="status"/> is the HTTP status, or 0 when no answer came.</summary>
    public static void Record(string service, HttpMethod method, int status, TimeSpan elapsed)
    {
        var tags = new TagList { { "service", service }, { "method", method.Method }, { "status", status == 0 ? "error" : status.ToString() } };
        Requests.Add(1, tags);
        Duration.Record(elapsed.TotalSeconds, tags);
    }
}
