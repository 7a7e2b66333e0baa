using MeshNet.Coordination;
using MeshNet.Coordination.PostgreSql;
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
        if (settings.Postgres is { } postgres)
        {
            builder.Services.AddMeshNetCoordinationPostgreSql(postgres);
        }
        builder.Services.AddMeshNetCoordination(options =>
        {
            // Tuning from MeshNet:Coordination (appsettings.json) or MESHNET_COORDINATION__NAME, e.g.
            // MESHNET_COORDINATION__LEASETTL=00:00:05 (every CoordinationOptions property).
            configuration.GetSection("MeshNet:Coordination").Bind(options);
            configuration.GetSection("Coordination").Bind(options);
            options.AdminToken = settings.AdminToken;
            if (settings.Postgres is null)
            {
                options.DatabasePath = settings.DatabasePath;
            }
            options.ServerId = settings.ServerId ?? options.ServerId;
            options.AdvertisedUrl = settings.AdvertisedUrl ?? options.AdvertisedUrl;
            if (CoordinatorSettings.Get(configuration, "TlsCa", "TLS_CA") is not null)
            {
                // Moves and forwarded admin writes call the other servers: trust their private certificate.
                options.PeerHandlerFactory = () => AdminCommands.Handler(configuration);
            }
        });

        await using var app = builder.Build();
        app.MapMeshNetCoordination();
        await app.StartAsync();
        foreach (var address in app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses)
        {
            Console.WriteLine($"Coordinator listening on {address}");
        }
        Console.WriteLine(settings.Postgres is null
            ? $"Database: {settings.DatabasePath}"
            : $"Database: PostgreSQL; server {settings.ServerId} at {settings.AdvertisedUrl}");
        await app.WaitForShutdownAsync();
        return 0;
    }
}
