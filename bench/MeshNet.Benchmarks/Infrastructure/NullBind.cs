using MeshNet.Userspace.Conn;
using MeshNet.Userspace.Net;

namespace MeshNet.Benchmarks.Infrastructure;

/// <summary>
/// A bind whose <see cref="Send"/> does nothing but return true: the outbound path ends at the
/// bind, so a benchmark measures the device alone. It keeps the receiver the device gives to
/// <see cref="Open"/>, so a benchmark can call the device's datagram entry point directly.
/// </summary>
internal sealed class NullBind : IUdpBind
{
    /// <summary>The device's datagram entry point (set by <see cref="Open"/>).</summary>
    public IDatagramReceiver? Receiver { get; private set; }

    public ushort Port { get; private set; }

    public ushort Open(ushort port, IDatagramReceiver receiver)
    {
        Receiver = receiver;
        Port = port == 0 ? (ushort)51820 : port;
        return Port;
    }

    public bool Send(ReadOnlySpan<byte> datagram, in NetEndpoint destination) => true;

    public void Close()
    {
        Receiver = null;
        Port = 0;
    }

    public void Dispose() => Close();
}
