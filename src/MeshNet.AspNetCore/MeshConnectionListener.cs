using System.Net;
using Microsoft.AspNetCore.Connections;

namespace MeshNet.AspNetCore;

/// <summary>
/// A Kestrel listener over a <see cref="MeshListener"/>: each accepted <see cref="MeshConnection"/>
/// becomes a <see cref="MeshConnectionContext"/>. Kestrel calls <see cref="AcceptAsync"/> from
/// one accept loop, and <see cref="UnbindAsync"/>/<see cref="DisposeAsync"/> when stopping; both
/// close the <see cref="MeshListener"/> (idempotent), which frees the port. Connections already
/// accepted are not affected: Kestrel owns and closes them.
/// </summary>
internal sealed class MeshConnectionListener(MeshListener listener, MeshEndPoint endPoint, Func<string> nextConnectionId) : IConnectionListener
{
    /// <summary>The bound endpoint: the port listened on and the node's name.</summary>
    public EndPoint EndPoint => endPoint;

    /// <summary>The next connection; null once the listener (or its node) is closed, which ends Kestrel's accept loop.</summary>
    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        MeshConnection connection;
        try
        {
            connection = await listener.AcceptAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
            return null;
        }
        return new MeshConnectionContext(connection, nextConnectionId());
    }

    /// <summary>Stops listening: the port is free again once this returns.</summary>
    public ValueTask UnbindAsync(CancellationToken cancellationToken = default) => listener.DisposeAsync();

    /// <summary>Stops listening (idempotent).</summary>
    public ValueTask DisposeAsync() => listener.DisposeAsync();
}
