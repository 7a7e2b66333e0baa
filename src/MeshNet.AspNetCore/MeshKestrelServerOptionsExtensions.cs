using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace MeshNet.AspNetCore;

/// <summary>Kestrel endpoints on the tailnet.</summary>
public static class MeshKestrelServerOptionsExtensions
{
    /// <summary>
    /// Listens on <paramref name="port"/> of the tailnet addresses of the node given to
    /// <see cref="MeshWebHostBuilderExtensions.UseMeshNet"/> (every family the node has).
    /// </summary>
    /// <remarks>
    /// <para>Protocols default to Kestrel's endpoint defaults (<see cref="HttpProtocols.Http1AndHttp2"/>).
    /// Without TLS there is no ALPN to choose between the two, and Kestrel then speaks HTTP/1.1
    /// only: it answers an HTTP/2 connection preface with GOAWAY HTTP_1_1_REQUIRED. For HTTP/2
    /// over cleartext (h2c with prior knowledge, what
    /// <see cref="MeshNode.CreateHttpMessageHandler"/> sends for a request of version 2.0 with
    /// <see cref="HttpVersionPolicy.RequestVersionExact"/>), give the endpoint
    /// <c>Protocols = HttpProtocols.Http2</c>, typically on a second port next to an HTTP/1.1 one.
    /// TLS (<c>UseHttps</c> in <paramref name="configure"/>) is Kestrel's own connection
    /// middleware and applies here as on any endpoint, inside the already encrypted tunnel; ALPN
    /// then chooses between HTTP/1.1 and HTTP/2 on one endpoint.</para>
    /// <para>Kestrel adds its default <c>http://localhost:5000</c> endpoint only when no endpoint
    /// is configured at all: an app that configures only <c>ListenMesh</c> endpoints serves only
    /// on the tailnet. URLs from configuration (<c>ASPNETCORE_URLS</c>, <c>--urls</c>) are then
    /// ignored, as for any endpoint configured in code.</para>
    /// </remarks>
    /// <param name="options">Kestrel's options.</param>
    /// <param name="port">The TCP port; 0 picks a free one (see <c>IServerAddressesFeature</c> once started).</param>
    /// <param name="configure">Configures the endpoint (protocols, connection middleware, TLS).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="port"/> is not between 0 and 65535.</exception>
    public static void ListenMesh(this KestrelServerOptions options, int port, Action<ListenOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Listen(new MeshEndPoint(port), configure ?? (_ => { }));
    }
}
