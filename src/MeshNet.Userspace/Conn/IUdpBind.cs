using MeshNet.Userspace.Net;
namespace MeshNet.Userspace.Conn;

/// <summary>
/// The UDP transport under a WireGuard device (the counterpart of wireguard-go's
/// <c>conn.Bind</c>). The device never opens sockets itself: it is given a bind. Real
/// implementation: <see cref="UdpSocketBind"/>; in-memory implementation for tests:
/// <see cref="MemoryNetwork"/>.
/// </summary>
/// <remarks>
/// Thread safety: <see cref="Send"/> may be called from any number of threads at once, also
/// while <see cref="Open"/> or <see cref="Close"/> run on another thread (it then returns
/// false). <see cref="Open"/> and <see cref="Close"/> are serialized by the caller.
/// </remarks>
public interface IUdpBind : IDisposable
{
    /// <summary>
    /// Opens the bind on <paramref name="port"/> (0 picks a free port) and starts delivering
    /// received datagrams to <paramref name="receiver"/>. Calling it while open first closes
    /// the current socket(s): this is how a device changes its listen port.
    /// </summary>
    /// <returns>The port actually bound.</returns>
    /// <exception cref="System.Net.Sockets.SocketException">The port cannot be bound.</exception>
    ushort Open(ushort port, IDatagramReceiver receiver);

    /// <summary>
    /// Stops receiving and releases the socket(s). When it returns, the receiver is no longer
    /// called. Idempotent; the bind can be opened again afterwards.
    /// </summary>
    void Close();

    /// <summary>
    /// Sends one datagram. Never throws for network conditions (unreachable, no buffer space,
    /// closed bind); it returns false instead. The bind does not keep a reference to
    /// <paramref name="datagram"/> after returning.
    /// </summary>
    bool Send(ReadOnlySpan<byte> datagram, in NetEndpoint destination);

    /// <summary>The bound port, or 0 when closed.</summary>
    ushort Port { get; }
}
