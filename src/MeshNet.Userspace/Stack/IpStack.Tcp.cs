using System.Net;

namespace MeshNet.Userspace.Stack;

// STUB: to be implemented (helper "tcp").
public sealed partial class IpStack
{
    /// <summary>Stub: listens for TCP connections on <paramref name="localEndPoint"/> (port 0 picks one; Any/IPv6Any = all addresses of that family).</summary>
    public TcpListener ListenTcp(IPEndPoint localEndPoint, int backlog = 128) => throw new NotImplementedException();

    /// <summary>Stub: opens a TCP connection to <paramref name="remoteEndPoint"/>.</summary>
    public ValueTask<TcpConnection> ConnectTcpAsync(IPEndPoint remoteEndPoint, CancellationToken cancellationToken = default) =>
        throw new NotImplementedException();
}
