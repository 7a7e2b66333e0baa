using MeshNet.Userspace.Conn;
using MeshNet.Userspace.Net;

namespace MeshNet.Benchmarks.Infrastructure;

/// <summary>
/// One end of an in-process wire: <see cref="Send"/> hands the datagram synchronously, on the
/// calling thread, to the other end's receiver, with this end's endpoint as the source. The
/// datagram is copied to the stack first (receivers may modify it in place). No allocation, no
/// queue, no thread: single-threaded benchmarks see the device's own cost only.
/// </summary>
internal sealed class LoopbackBind(NetEndpoint localEndpoint) : IUdpBind
{
    private const int MaxDatagram = 2048;

    private IDatagramReceiver? _receiver;

    /// <summary>The other end; datagrams sent here go to its receiver.</summary>
    public LoopbackBind? Remote { get; set; }

    /// <summary>The source endpoint the other end sees.</summary>
    public NetEndpoint LocalEndpoint { get; } = localEndpoint;

    public ushort Port { get; private set; }

    public ushort Open(ushort port, IDatagramReceiver receiver)
    {
        _receiver = receiver;
        Port = LocalEndpoint.Port;
        return Port;
    }

    public bool Send(ReadOnlySpan<byte> datagram, in NetEndpoint destination)
    {
        var receiver = Remote?._receiver;
        if (receiver is null || datagram.Length > MaxDatagram)
        {
            return false;
        }
        Span<byte> copy = stackalloc byte[MaxDatagram];
        datagram.CopyTo(copy);
        receiver.OnDatagram(copy[..datagram.Length], LocalEndpoint);
        return true;
    }

    public void Close()
    {
        _receiver = null;
        Port = 0;
    }

    public void Dispose() => Close();
}
