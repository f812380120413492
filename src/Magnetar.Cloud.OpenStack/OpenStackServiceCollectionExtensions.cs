using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Http.Resilience;
using Polly;

namespace Magnetar.Cloud.OpenStack;

public static class OpenStackServiceCollectionExtensions
{
    /// <summary>
    /// Registers the OpenStack cloud provider and its HTTP pipeline: bounded retries with exponential backoff and
    /// jitter for idempotent calls (GET, PUT, DELETE) on 5xx, 408, 429 and transport failures — never for POST, which
    /// could create a resource twice — a per-attempt timeout, and a circuit breaker per endpoint.
    /// </summary>
    public static IServiceCollection AddOpenStackCloud(this IServiceCollection services, OpenStackOptions options,
        Action<IHttpClientBuilder>? configureHttp = null)
    {
        services.AddSingleton(options);
        var http = services.AddHttpClient(OpenStackCloudProvider.HttpClientName)
            .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler
            {
                // Services behind uwsgi close idle keep-alive connections; don't hold on to them.
                PooledConnectionIdleTimeout = TimeSpan.FromSeconds(5),
                ConnectTimeout = TimeSpan.FromSeconds(10),
            });
        configureHttp?.Invoke(http);
        http.AddStandardResilienceHandler(o =>
        {
            o.Retry.DisableForUnsafeHttpMethods();
            // The pipeline wants at least one attempt configured: MaxRetries=0 (no retries) handles nothing instead.
            o.Retry.MaxRetryAttempts = Math.Max(1, options.MaxRetries);
            if (options.MaxRetries <= 0) o.Retry.ShouldHandle = _ => ValueTask.FromResult(false);
            o.Retry.BackoffType = DelayBackoffType.Exponential;
            o.Retry.UseJitter = true;
            o.Retry.Delay = TimeSpan.FromMilliseconds(500);
            o.AttemptTimeout.Timeout = TimeSpan.FromSeconds(Math.Max(1, options.AttemptTimeoutSeconds));
            o.TotalRequestTimeout.Timeout = TimeSpan.FromSeconds(Math.Max(1, options.AttemptTimeoutSeconds) * (options.MaxRetries + 2));
            o.CircuitBreaker.SamplingDuration = TimeSpan.FromSeconds(Math.Max(1, options.AttemptTimeoutSeconds) * 2 + 1);
        });
        services.AddSingleton<ICloudProvider, OpenStackCloudProvider>();
        return services;
    }
}
