namespace MeshNet.AspNetCore;

/// <summary>
/// A connection feature of every connection the MeshNet transport accepts: the node at the
/// other end. Kestrel exposes connection features on each request's
/// <c>HttpContext.Features</c>, so <c>context.Features.Get&lt;IMeshPeerFeature&gt;()</c> works in
/// middleware and endpoints (or use <see cref="MeshHttpContextExtensions.GetMeshPeer"/>), as
/// does <c>ConnectionContext.Features</c> in connection middleware.
/// </summary>
public interface IMeshPeerFeature
{
    /// <summary>
    /// The node that opened the connection, as the netmap described it when the connection was
    /// accepted. Its address is authenticated by WireGuard (cryptokey routing).
    /// </summary>
    MeshPeerIdentity Peer { get; }
}
