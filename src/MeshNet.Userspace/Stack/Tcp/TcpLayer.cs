using MeshNet.Userspace.Stack.Ip;

namespace MeshNet.Userspace.Stack.Tcp;

// STUB: to be implemented (helper "tcp").
internal sealed class TcpLayer : ITransportHandler, IDisposable
{
    public TcpLayer(StackContext context) => throw new NotImplementedException();

    public void OnPacket(in IpPacketInfo ip, Span<byte> payload) => throw new NotImplementedException();

    public void OnIcmpError(IcmpErrorKind kind, int mtu, ReadOnlySpan<byte> quoted) => throw new NotImplementedException();

    public void Dispose() => throw new NotImplementedException();
}
