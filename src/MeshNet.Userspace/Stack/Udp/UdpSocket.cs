using System.Net;
using System.Net.Sockets;

namespace MeshNet.Userspace.Stack;

// STUB: to be implemented (helper "ip").
/// <summary>Stub: a UDP socket of an <see cref="IpStack"/>.</summary>
public sealed class UdpSocket : IAsyncDisposable, IDisposable
{
    private UdpSocket()
    {
    }

    /// <summary>Stub.</summary>
    public IPEndPoint LocalEndPoint => throw new NotImplementedException();

    /// <summary>Stub: sends one datagram.</summary>
    public ValueTask<int> SendToAsync(ReadOnlyMemory<byte> datagram, IPEndPoint remoteEndPoint, CancellationToken cancellationToken = default) =>
        throw new NotImplementedException();

    /// <summary>Stub: receives one datagram.</summary>
    public ValueTask<SocketReceiveFromResult> ReceiveFromAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        throw new NotImplementedException();

    /// <summary>Stub.</summary>
    public ValueTask DisposeAsync() => throw new NotImplementedException();

    /// <summary>Stub.</summary>
    public void Dispose() => throw new NotImplementedException();
}
