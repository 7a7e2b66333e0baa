using System.Net;
using System.Net.Sockets;
using MeshNet.Userspace.Net;

namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>Active opens: choosing the local address and ephemeral port (RFC 6056 algorithm 3) and connecting.</summary>
internal sealed partial class TcpLayer
{
    /// <summary>The IANA dynamic port range (RFC 6335), as the ephemeral range.</summary>
    public const int EphemeralFirst = 49152;
    public const int EphemeralCount = 65536 - EphemeralFirst;

    private readonly SipHash _portHash;
    private int _ephemeralCounter;

    /// <summary>
    /// Creates a connection to <paramref name="remote"/> from <paramref name="local"/> (address
    /// Any and/or port 0 are chosen here) and sends its SYN.
    /// </summary>
    /// <exception cref="SocketException">AddressAlreadyInUse, AddressNotAvailable, NetworkUnreachable (no address of the family), TooManyOpenSockets.</exception>
    public TcpControlBlock Connect(IPEndPoint? local, IPEndPoint remote)
    {
        ArgumentNullException.ThrowIfNull(remote);
        ObjectDisposedException.ThrowIf(_disposed, typeof(IpStack));
        if (remote.Port is <= 0 or > 65535)
        {
            throw new ArgumentOutOfRangeException(nameof(remote), "The remote port must be between 1 and 65535.");
        }
        var remoteAddress = NetAddress.FromIPAddress(remote.Address);
        if (remote.Address.Equals(IPAddress.Any) || remote.Address.Equals(IPAddress.IPv6Any))
        {
            throw new SocketException((int)SocketError.AddressNotAvailable);
        }
        NetAddress localAddress;
        if (local is null || local.Address.Equals(IPAddress.Any) || local.Address.Equals(IPAddress.IPv6Any))
        {
            localAddress = Context.SourceFor(remoteAddress);
            if (localAddress.IsEmpty)
            {
                throw new SocketException((int)SocketError.NetworkUnreachable);
            }
        }
        else
        {
            localAddress = NetAddress.FromIPAddress(local.Address);
            if (!Context.IsLocal(localAddress) || localAddress.IsIPv4 != remoteAddress.IsIPv4)
            {
                throw new SocketException((int)SocketError.AddressNotAvailable);
            }
        }
        if (!TryReserveConnection())
        {
            TcpLog.ConnectionLimit(Context.Logger, Context.Tcp.MaxConnections);
            throw new SocketException((int)SocketError.TooManyOpenSockets);
        }
        TcpControlBlock cb;
        lock (_bindLock)
        {
            ushort remotePort = (ushort)remote.Port;
            ushort localPort = (ushort)(local?.Port ?? 0);
            if (localPort == 0)
            {
                localPort = PickEphemeralPort(localAddress, remoteAddress, remotePort);
                if (localPort == 0)
                {
                    Interlocked.Decrement(ref _connectionCount);
                    throw new SocketException((int)SocketError.AddressAlreadyInUse);
                }
            }
            var key = new TcpFlowKey(localAddress, localPort, remoteAddress, remotePort);
            cb = new TcpControlBlock(this, key, passive: false, listener: null);
            if (!TryInsert(cb))
            {
                cb.Discard();
                throw new SocketException((int)SocketError.AddressAlreadyInUse);
            }
        }
        cb.StartActiveOpen();
        return cb;
    }

    /// <summary>
    /// RFC 6056 §3.3.3 (Simple Hash-Based Port Selection): start at a keyed hash of the
    /// addresses and remote port plus a global counter, and take the first port whose 4-tuple is
    /// free and that no listener uses. Returns 0 when every port is taken. Caller holds _bindLock.
    /// </summary>
    private ushort PickEphemeralPort(NetAddress local, NetAddress remote, ushort remotePort)
    {
        var hashKey = new TcpFlowKey(local, 0, remote, remotePort);
        uint offset = (uint)_portHash.HashFlow(hashKey, 6056);
        uint counter = (uint)_ephemeralCounter;
        for (uint i = 0; i < EphemeralCount; i++)
        {
            ushort port = (ushort)(EphemeralFirst + ((offset + counter + i) % EphemeralCount));
            if (!_connections.ContainsKey(new TcpFlowKey(local, port, remote, remotePort)) && !IsListening(local, port))
            {
                _ephemeralCounter = (int)(counter + i + 1);
                return port;
            }
        }
        return 0;
    }
}
