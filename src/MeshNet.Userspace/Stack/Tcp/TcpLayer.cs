using MeshNet.Userspace.Stack.Ip;

namespace MeshNet.Userspace.Stack.Tcp;

// STUB: to be implemented (helper "tcp"). Until then it drops every segment.
internal sealed class TcpLayer : ITransportHandler, IDisposable
{
    private readonly StackContext _context;

    public TcpLayer(StackContext context) => _context = context;

    public void OnPacket(in IpPacketInfo ip, Span<byte> payload) => _context.Counters.Drop(StackDropReason.TcpNoConnection);

    public void OnIcmpError(IcmpErrorKind kind, int mtu, ReadOnlySpan<byte> quoted)
    {
    }

    public void Dispose()
    {
    }
}
