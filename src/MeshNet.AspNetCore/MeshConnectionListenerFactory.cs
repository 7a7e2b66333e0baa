using System.Net;
using Microsoft.AspNetCore.Connections;

namespace MeshNet.AspNetCore;

/// <summary>
/// Kestrel's transport for <see cref="MeshEndPoint"/>s: binds each to
/// <see cref="MeshNode.ListenAsync"/> of one node. Thread-safe; holds no resources itself
/// (each listener it creates is owned by Kestrel, which unbinds and disposes it).
/// </summary>
internal sealed class MeshConnectionListenerFactory(MeshNode node) : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    private long _connections;

    /// <summary>True for <see cref="MeshEndPoint"/>s only; Kestrel's socket transport takes the rest.</summary>
    public bool CanBind(EndPoint endpoint) => endpoint is MeshEndPoint;

    /// <exception cref="MeshException"><see cref="MeshErrorCode.AddressInUse"/>: the port is taken on the node.</exception>
    /// <exception cref="ObjectDisposedException">The node has been disposed.</exception>
    public async ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        if (endpoint is not MeshEndPoint mesh)
        {
            throw new NotSupportedException($"The MeshNet transport binds only {nameof(MeshEndPoint)}s, not {endpoint.GetType().Name} {endpoint}.");
        }
        var listener = await node.ListenAsync(mesh.Port, cancellationToken).ConfigureAwait(false);
        return new MeshConnectionListener(listener, new MeshEndPoint(listener.Port, node.Fqdn), NextConnectionId);
    }

    /// <summary>A connection id unique within this factory (so within the web host), for Kestrel's logs and trace identifiers.</summary>
    private string NextConnectionId() =>
        $"mesh-{Interlocked.Increment(ref _connections).ToString("X", System.Globalization.CultureInfo.InvariantCulture)}";
}
