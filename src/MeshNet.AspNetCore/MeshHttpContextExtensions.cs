using Microsoft.AspNetCore.Http;

namespace MeshNet.AspNetCore;

/// <summary>The caller's tailnet identity on a request.</summary>
public static class MeshHttpContextExtensions
{
    /// <summary>
    /// The node that sent this request when it came over the tailnet (a
    /// <see cref="MeshKestrelServerOptionsExtensions.ListenMesh"/> endpoint); null when it came
    /// in another way (an ordinary socket endpoint, a test server).
    /// </summary>
    /// <remarks>Reads the <see cref="IMeshPeerFeature"/> connection feature, which Kestrel exposes on the request's features.</remarks>
    public static MeshPeerIdentity? GetMeshPeer(this HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return context.Features.Get<IMeshPeerFeature>()?.Peer;
    }
}
