using System.Net;
using MeshNet.Userspace.Stack.Tcp;

namespace MeshNet.Userspace.Stack;

/// <summary>TCP: listening and connecting.</summary>
public sealed partial class IpStack
{
    /// <summary>The stack's TCP layer (created by <see cref="Create"/>); throws after disposal.</summary>
    private TcpLayer Tcp
    {
        get
        {
            ThrowIfDisposed();
            return _tcp;
        }
    }

    /// <summary>
    /// Listens for TCP connections on <paramref name="localEndPoint"/>: port 0 picks a free port;
    /// <see cref="IPAddress.Any"/>/<see cref="IPAddress.IPv6Any"/> listens on every address of
    /// that family. <paramref name="backlog"/> bounds the established connections waiting for
    /// <see cref="TcpListener.AcceptAsync"/>.
    /// </summary>
    /// <exception cref="System.Net.Sockets.SocketException">AddressAlreadyInUse (the port is taken) or AddressNotAvailable (not one of the stack's addresses).</exception>
    public TcpListener ListenTcp(IPEndPoint localEndPoint, int backlog = 128) => Tcp.Listen(localEndPoint, backlog);

    /// <summary>Opens a TCP connection to <paramref name="remoteEndPoint"/> from an ephemeral port of the stack's address of that family.</summary>
    /// <exception cref="System.Net.Sockets.SocketException">
    /// ConnectionRefused (the peer answered with RST or ICMP port unreachable), TimedOut
    /// (<see cref="TcpStackOptions.ConnectTimeout"/>), HostUnreachable (ICMP), NetworkUnreachable
    /// (no address of that family), TooManyOpenSockets (<see cref="TcpStackOptions.MaxConnections"/>).
    /// </exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (the attempt is abandoned).</exception>
    public ValueTask<TcpConnection> ConnectTcpAsync(IPEndPoint remoteEndPoint, CancellationToken cancellationToken = default) =>
        ConnectTcpAsync(null, remoteEndPoint, cancellationToken);

    /// <summary>
    /// Opens a TCP connection to <paramref name="remoteEndPoint"/> from <paramref name="localEndPoint"/>
    /// (null, an Any address or port 0 let the stack choose).
    /// </summary>
    /// <exception cref="System.Net.Sockets.SocketException">As <see cref="ConnectTcpAsync(IPEndPoint, CancellationToken)"/>, plus AddressAlreadyInUse and AddressNotAvailable for the local endpoint.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (the attempt is abandoned).</exception>
    public async ValueTask<TcpConnection> ConnectTcpAsync(IPEndPoint? localEndPoint, IPEndPoint remoteEndPoint, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(remoteEndPoint);
        cancellationToken.ThrowIfCancellationRequested();
        var cb = Tcp.Connect(localEndPoint, remoteEndPoint);
        try
        {
            await cb.WaitConnectedAsync(cancellationToken).ConfigureAwait(false);
            return new TcpConnection(cb);
        }
        catch
        {
            cb.Abort();
            throw;
        }
    }
}
