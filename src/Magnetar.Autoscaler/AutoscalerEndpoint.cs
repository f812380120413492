using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Configuration;
using Magnetar.Conductor;
using Microsoft.Extensions.DependencyInjection;

namespace Magnetar.Autoscaler;

public static class AutoscalerEndpoint
{
    public static AutoscalerOptions AddMagnetarAutoscaler(this IServiceCollection services, IConfiguration config)
    {
        var options = config.GetSection("Magnetar:Autoscaler").Get<AutoscalerOptions>() ?? new AutoscalerOptions();
        if (options.Port is < 0 or > 65535) throw new InvalidOperationException($"Magnetar:Autoscaler:Port {options.Port} is not a port");
        services.AddSingleton(options);
        services.AddSingleton<AutoscalerAuthority>();
        services.AddSingleton<IAutoscalerCredentials>(sp => sp.GetRequiredService<AutoscalerAuthority>());
        if (options.Enabled) services.AddGrpc();
        return options;
    }

    /// <summary>
    /// Binds the API's URLs and then the autoscaler's listener. Kestrel ignores the configured URLs once a listener is
    /// bound in code, so when the autoscaler listener is on, every URL is bound here, in order (the first stays the
    /// address the server announces). HTTPS URLs use the HTTPS defaults (Magnetar:Tls).
    /// </summary>
    public static void Listen(KestrelServerOptions kestrel, AutoscalerOptions options, IEnumerable<string> urls, Func<AutoscalerAuthority> authority)
    {
        if (!options.Enabled) return;
        foreach (var url in urls)
        {
            var address = BindingAddress.Parse(url);
            Action<ListenOptions> configure = address.Scheme == "https" ? o => o.UseHttps() : _ => { };
            if (string.Equals(address.Host, "localhost", StringComparison.OrdinalIgnoreCase)) kestrel.ListenLocalhost(address.Port, configure);
            else if (IPAddress.TryParse(address.Host.Trim('[', ']'), out var ip)) kestrel.Listen(ip, address.Port, configure);
            else kestrel.ListenAnyIP(address.Port, configure); // *, +, or a host name: every address, as Kestrel does with URLs
        }
        var listen = IPAddress.TryParse(options.Listen.Trim('[', ']'), out var bind) ? bind
            : throw new InvalidOperationException($"Magnetar:Autoscaler:Listen '{options.Listen}' is not an IP address");
        kestrel.Listen(listen, options.Port, o =>
        {
            o.Protocols = HttpProtocols.Http2; // gRPC
            o.UseHttps(https =>
            {
                https.ServerCertificateSelector = (_, _) => authority().ServerCertificate();
                // Asked for in the handshake, judged by the service: a missing, foreign or expired certificate gets a
                // gRPC error saying why (which the autoscaler logs), rather than a bare handshake failure.
                https.ClientCertificateMode = ClientCertificateMode.AllowCertificate;
                https.AllowAnyClientCertificate();
            });
        });
    }

    public static void MapMagnetarAutoscaler(this IEndpointRouteBuilder app)
    {
        var options = app.ServiceProvider.GetRequiredService<AutoscalerOptions>();
        if (!options.Enabled) return;
        app.MapGrpcService<CloudProviderService>().RequireHost($"*:{options.Port}");
    }
}
