using MeshNet.Coordination;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Coordinator;

/// <summary>Serves the coordination service until SIGINT or SIGTERM.</summary>
internal static class CoordinatorServer
{
    public static async Task<int> RunAsync(string[] args)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args });
        // MESHNET_* variables are read beside the app's configuration, not into it (MESHNET_URLS
        // would otherwise also become ASP.NET Core's own "urls" setting).
        var configuration = new ConfigurationBuilder().AddConfiguration(builder.Configuration).AddEnvironmentVariables("MESHNET_").Build();
        CoordinatorSettings settings;
        try
        {
            settings = CoordinatorSettings.From(configuration);
        }
        catch (InvalidOperationException e)
        {
            Console.Error.WriteLine($"coordinator: {e.Message}");
            return 2;
        }

        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            foreach (var url in settings.Urls)
            {
                kestrel.Listen(CoordinatorSettings.ListenAddress(url), url.Port, listen =>
                {
                    // gRPC needs HTTP/2: over TLS by ALPN, or plain (h2c) on loopback.
                    listen.Protocols = HttpProtocols.Http2;
                    if (url.Scheme == "https")
                    {
                        listen.UseHttps(settings.Certificate!);
                    }
                });
            }
        });
        builder.Services.AddMeshNetCoordination(options =>
        {
            options.DatabasePath = settings.DatabasePath;
            options.AdminToken = settings.AdminToken;
        });

        await using var app = builder.Build();
        app.MapMeshNetCoordination();
        await app.StartAsync();
        foreach (var address in app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses)
        {
            Console.WriteLine($"Coordinator listening on {address}");
        }
        Console.WriteLine($"Database: {settings.DatabasePath}");
        await app.WaitForShutdownAsync();
        return 0;
    }
}
