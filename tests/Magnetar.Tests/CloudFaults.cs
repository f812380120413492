using System.Net;
using System.Text;
using System.Text.RegularExpressions;

namespace Magnetar.Tests;

/// <summary>
/// Tests only: a fault-injecting handler in the OpenStack HTTP pipeline, inside the resilience handler (so retries see
/// the faults) and outside the socket handler (so the real cloud answers everything that is let through). Rules match
/// a method and a path pattern and fire with a probability, at most a number of times, from a seeded random source.
/// </summary>
public sealed class CloudFaults(int seed)
{
    public enum Kind
    {
        /// <summary>Answer with a status code (e.g. 503) without calling the cloud.</summary>
        Status,
        /// <summary>The connection drops before the request is sent.</summary>
        ResetBeforeSend,
        /// <summary>The cloud gets and executes the request, but its answer is lost (the create went through).</summary>
        LoseResponse,
        /// <summary>The cloud answers late.</summary>
        Delay,
        /// <summary>The cloud's JSON answer is rewritten.</summary>
        Rewrite,
    }

    public sealed class Rule(string name, string method, string pathPattern, Kind kind)
    {
        public string Name { get; } = name;
        public string Method { get; } = method;
        public Regex Path { get; } = new(pathPattern);
        public Kind Kind { get; } = kind;
        public double Probability { get; init; } = 1;
        public int MaxHits { get; init; } = int.MaxValue;
        public HttpStatusCode Status { get; init; } = HttpStatusCode.ServiceUnavailable;
        public TimeSpan Delay { get; init; } = TimeSpan.FromSeconds(2);
        public Func<string, string>? RewriteBody { get; init; }
        public bool Enabled { get; set; } = true;
        /// <summary>The bodies of the responses a LoseResponse rule withheld (the cloud did the work; the caller never heard).</summary>
        public System.Collections.Concurrent.ConcurrentQueue<string> LostResponses { get; } = new();
        private int _hits;
        public int Hits => Volatile.Read(ref _hits);
        internal bool TryHit(Random random)
        {
            lock (this)
            {
                if (!Enabled || _hits >= MaxHits || random.NextDouble() >= Probability) return false;
                _hits++;
                return true;
            }
        }
    }

    private readonly Random _random = new(seed);
    public List<Rule> Rules { get; } = [];

    /// <summary>A handler for the pipeline (the HTTP client factory builds a new chain now and then; they share the plan).</summary>
    public DelegatingHandler Handler() => new FaultHandler(this);

    /// <summary>Registers the faults in the OpenStack driver's HTTP pipeline.</summary>
    public void AddTo(Microsoft.Extensions.DependencyInjection.IServiceCollection services)
        => Microsoft.Extensions.DependencyInjection.HttpClientBuilderExtensions.AddHttpMessageHandler(
            Microsoft.Extensions.DependencyInjection.HttpClientFactoryServiceCollectionExtensions.AddHttpClient(services, Magnetar.Cloud.OpenStack.OpenStackCloudProvider.HttpClientName),
            Handler);

    internal Rule? Pick(HttpRequestMessage request)
    {
        var path = request.RequestUri!.AbsolutePath;
        lock (_random)
            return Rules.FirstOrDefault(r => (r.Method == "*" || r.Method == request.Method.Method) && r.Path.IsMatch(path) && r.TryHit(_random));
    }

    public string Summary() => string.Join(", ", Rules.Select(r => $"{r.Name}: {r.Hits}"));
}

internal sealed class FaultHandler(CloudFaults plan) : DelegatingHandler
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
    {
        var rule = plan.Pick(request);
        switch (rule?.Kind)
        {
            case CloudFaults.Kind.Status:
                return new HttpResponseMessage(rule.Status)
                {
                    RequestMessage = request,
                    Content = new StringContent($"<html><body><h1>{(int)rule.Status} injected by CloudFaults ({rule.Name})</h1></body></html>", Encoding.UTF8, "text/html"),
                };
            case CloudFaults.Kind.ResetBeforeSend:
                throw new HttpRequestException($"connection reset (injected by CloudFaults: {rule.Name})", new IOException("Connection reset by peer"));
            case CloudFaults.Kind.LoseResponse:
                using (var lost = await base.SendAsync(request, ct))
                {
                    rule.LostResponses.Enqueue(await lost.Content.ReadAsStringAsync(ct));
                    throw new HttpRequestException($"response lost (injected by CloudFaults: {rule.Name})", new IOException("Connection reset by peer"));
                }
            case CloudFaults.Kind.Delay:
                await Task.Delay(rule.Delay, ct);
                return await base.SendAsync(request, ct);
            case CloudFaults.Kind.Rewrite:
                var response = await base.SendAsync(request, ct);
                var text = await response.Content.ReadAsStringAsync(ct);
                var rewritten = rule.RewriteBody!(text);
                var headers = response.Content.Headers.ContentType;
                response.Content = new StringContent(rewritten, Encoding.UTF8);
                response.Content.Headers.ContentType = headers;
                return response;
            default:
                return await base.SendAsync(request, ct);
        }
    }
}
