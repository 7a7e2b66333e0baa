using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace MeshNet.AspNetCore;

/// <summary>Serving an ASP.NET Core app on a tailnet.</summary>
public static class MeshWebHostBuilderExtensions
{
    /// <summary>
    /// Adds the MeshNet transport to Kestrel: endpoints configured with
    /// <see cref="MeshKestrelServerOptionsExtensions.ListenMesh"/> listen on the tailnet addresses
    /// of <paramref name="node"/>, and every request on them carries the caller's identity
    /// (<see cref="MeshHttpContextExtensions.GetMeshPeer"/>, <see cref="IMeshPeerFeature"/>).
    /// Kestrel's socket transport stays registered for ordinary endpoints, so one app can serve
    /// on the tailnet and on local sockets.
    /// </summary>
    /// <remarks>
    /// <para>One node per web host: a second call replaces the node of the first.</para>
    /// <para><b>Ownership</b>: the app does not own <paramref name="node"/>. Stop the app before
    /// disposing the node; stopping it closes its tailnet listeners (the ports are free again).
    /// Disposing the node while the app runs closes the listeners and connections under it: the
    /// app stops accepting on the tailnet and its tailnet requests fail, but nothing crashes.</para>
    /// </remarks>
    /// <param name="builder">The web host builder (<c>WebApplicationBuilder.WebHost</c>).</param>
    /// <param name="node">A started node.</param>
    /// <returns><paramref name="builder"/>.</returns>
    public static IWebHostBuilder UseMeshNet(this IWebHostBuilder builder, MeshNode node)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(node);
        // Registers the socket transport unless it already is (a no-op then), so that ours is added
        // next to it rather than instead of it: Kestrel asks each factory's CanBind in turn.
        builder.UseSockets();
        return builder.ConfigureServices(services =>
        {
            services.RemoveAll(descriptor => descriptor.ServiceType == typeof(IConnectionListenerFactory)
                && descriptor.ImplementationInstance is MeshConnectionListenerFactory);
            services.AddSingleton<IConnectionListenerFactory>(new MeshConnectionListenerFactory(node));
        });
    }

    private static void RemoveAll(this IServiceCollection services, Func<ServiceDescriptor, bool> match)
    {
        for (int i = services.Count - 1; i >= 0; i--)
        {
            if (match(services[i]))
            {
                services.RemoveAt(i);
            }
        }
    }
}
