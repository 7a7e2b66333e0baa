using System.Net;
using MeshNet.Netmap;
using MeshNet.Userspace.Stack;

namespace MeshNet;

/// <summary>Listening, dialing and UDP on the tailnet.</summary>
public sealed partial class MeshNode
{
    /// <summary>
    /// Listens for TCP connections on <paramref name="port"/> of this node's tailnet addresses
    /// (every family the node has).
    /// </summary>
    /// <param name="port">The port; 0 picks a free one (the same on both families), see <see cref="MeshListener.Port"/>.</param>
    /// <param name="cancellationToken">Checked before listening.</param>
    /// <returns>The listener; the caller disposes it (disposing the node disposes it too).</returns>
    /// <exception cref="MeshException"><see cref="MeshErrorCode.AddressInUse"/>: something already listens on that port.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="port"/> is not between 0 and 65535.</exception>
    /// <exception cref="ObjectDisposedException">The node has been disposed.</exception>
    public ValueTask<MeshListener> ListenAsync(int port, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(port);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, IPEndPoint.MaxPort);
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<MeshListener>(cancellationToken);
        }
        var meshListener = _sockets.Listen(port);
        if (Volatile.Read(ref _disposed) != 0)
        {
            // Raced with DisposeAsync, which may not have seen it.
            _ = meshListener.DisposeAsync();
            ThrowIfDisposed();
        }
        return ValueTask.FromResult(meshListener);
    }

    /// <summary>
    /// Opens a TCP connection to <paramref name="port"/> of the node <paramref name="host"/>
    /// names: its DNS label (<c>web</c>), its fully qualified name
    /// (<c>web.acme.meshnet.internal</c>) — both case-insensitive, a trailing dot allowed — or
    /// one of its tailnet addresses (an IPv4 or IPv6 literal). Names resolve against the
    /// current netmap, without DNS. A name dials the node's IPv4 address when it has one, else
    /// its IPv6 address; an address literal dials that address.
    /// </summary>
    /// <returns>The connection, with the peer's identity.</returns>
    /// <exception cref="MeshException">
    /// <see cref="MeshErrorCode.PeerNotFound"/> (no such node), <see cref="MeshErrorCode.PolicyDenied"/> (the
    /// tailnet policy does not allow this node to connect there), <see cref="MeshErrorCode.ConnectionRefused"/>
    /// (nothing listens there), <see cref="MeshErrorCode.TimedOut"/> (no answer),
    /// <see cref="MeshErrorCode.HostUnreachable"/> (the node's key expired, it has no address of
    /// that family, this node itself, or the network said so), <see cref="MeshErrorCode.ConnectionReset"/>.
    /// </exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    /// <exception cref="ObjectDisposedException">The node has been disposed.</exception>
    public async ValueTask<MeshConnection> DialAsync(string host, int port, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(host);
        ArgumentOutOfRangeException.ThrowIfLessThan(port, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, IPEndPoint.MaxPort);
        cancellationToken.ThrowIfCancellationRequested();
        ThrowIfDisposed();
        var map = _netmap!;
        var node = NameResolver.Resolve(map, host, out var literal) ?? throw PeerNotFound(map, host);
        var address = NameResolver.SelectAddress(node, literal);
        return await _sockets.DialAsync(map, node, address, port, host, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Opens a TCP connection to a tailnet address and port (see <see cref="DialAsync(string, int, CancellationToken)"/>).</summary>
    /// <exception cref="MeshException">As <see cref="DialAsync(string, int, CancellationToken)"/>.</exception>
    public async ValueTask<MeshConnection> DialAsync(IPEndPoint remoteEndPoint, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(remoteEndPoint);
        ArgumentOutOfRangeException.ThrowIfLessThan(remoteEndPoint.Port, 1);
        cancellationToken.ThrowIfCancellationRequested();
        ThrowIfDisposed();
        var map = _netmap!;
        var address = remoteEndPoint.Address.IsIPv4MappedToIPv6 ? remoteEndPoint.Address.MapToIPv4() : remoteEndPoint.Address;
        var node = map.FindByAddress(address) ?? throw PeerNotFound(map, address.ToString());
        return await _sockets.DialAsync(map, node, address, remoteEndPoint.Port, address.ToString(), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Opens a UDP socket on <paramref name="port"/> of this node's tailnet addresses (both
    /// families). Use <see cref="FindPeer"/> to learn which node sent a datagram, and
    /// <see cref="ResolveAddresses"/> to address one by name.
    /// </summary>
    /// <param name="port">The port; 0 picks a free one.</param>
    /// <param name="cancellationToken">Checked before binding.</param>
    /// <returns>The socket; the caller disposes it (disposing the node closes it too).</returns>
    /// <exception cref="MeshException"><see cref="MeshErrorCode.AddressInUse"/>: the port is taken.</exception>
    /// <exception cref="ObjectDisposedException">The node has been disposed.</exception>
    public ValueTask<UdpSocket> ListenUdpAsync(int port, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(port);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, IPEndPoint.MaxPort);
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<UdpSocket>(cancellationToken);
        }
        return ValueTask.FromResult(_sockets.BindUdp(port));
    }
}
