using MeshNet;
using MeshNet.AspNetCore;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;

namespace QuickStart;

/// <summary>
/// The page "web" serves: an ASP.NET Core app on the node's tailnet addresses only (Kestrel
/// with the MeshNet transport), greeting each caller by the name of its node.
/// </summary>
internal static class GreetingSite
{
    /// <summary>HTTP/1.1 (the default: without TLS, Kestrel's Http1AndHttp2 means HTTP/1.1).</summary>
    public const int Http1Port = 80;

    /// <summary>HTTP/2 over cleartext (h2c with prior knowledge) needs an HTTP/2-only endpoint.</summary>
    public const int Http2Port = 8080;

    /// <summary>Starts the app; the caller disposes it (before the node).</summary>
    public static async Task<WebApplication> StartAsync(MeshNode node, CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseMeshNet(node);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.ListenMesh(Http1Port);
            kestrel.ListenMesh(Http2Port, listen => listen.Protocols = HttpProtocols.Http2);
        });
        var app = builder.Build();
        app.MapGet("/", (HttpContext context) =>
        {
            // The caller's node, authenticated by WireGuard: every request here came over the tailnet.
            var peer = context.GetMeshPeer()!;
            Console.WriteLine($"{node.Name}: {context.Request.Method} {context.Request.Path} {context.Request.Protocol} from {peer.Name}");
            return Results.Content(
                $"<html><body><h1>Hello from {node.Name}</h1><p>Hello, {peer.Name}! You are {peer.Fqdn} ({context.Connection.RemoteIpAddress}).</p></body></html>",
                "text/html; charset=utf-8");
        });
        await app.StartAsync(cancellationToken);
        return app;
    }
}
