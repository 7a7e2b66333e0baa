using MeshNet.AspNetCore;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MeshNet.Integration.Tests.Infrastructure;

/// <summary>
/// A real ASP.NET Core app (WebApplication, Kestrel) served on a node's tailnet addresses with
/// UseMeshNet + ListenMesh, and nothing else unless <c>configureKestrel</c> adds it.
/// </summary>
internal static class MeshWebApp
{
    public static async Task<WebApplication> StartAsync(MeshNode node, int port, Action<WebApplication> map,
        Action<KestrelServerOptions>? configureKestrel = null, Action<ListenOptions>? configureEndpoint = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Production" });
        builder.Logging.ClearProviders();
        builder.WebHost.UseMeshNet(node);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.ListenMesh(port, configureEndpoint);
            kestrel.Limits.MaxRequestBodySize = 64 * 1024 * 1024;
            configureKestrel?.Invoke(kestrel);
        });
        var app = builder.Build();
        map(app);
        await app.StartAsync().WaitAsync(TestTailnet.Timeout);
        return app;
    }

    /// <summary>What the server says it listens on.</summary>
    public static IReadOnlyCollection<string> Addresses(this WebApplication app) =>
        [.. app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses];

    /// <summary>The port of the app's (single) tailnet endpoint.</summary>
    public static int MeshPort(this WebApplication app) =>
        new Uri(app.Addresses().Single(address => address.Contains(".meshnet.internal", StringComparison.Ordinal))).Port;
}
