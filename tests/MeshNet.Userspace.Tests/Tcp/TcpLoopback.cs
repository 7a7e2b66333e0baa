using System.Net;
using MeshNet.Userspace.Net;
using MeshNet.Userspace.Stack;
using MeshNet.Userspace.Stack.Ip;
using MeshNet.Userspace.Stack.Tcp;
using Microsoft.Extensions.Logging.Abstractions;

namespace MeshNet.Userspace.Tests.Tcp;

/// <summary>
/// Two TCP layers on the real clock joined by a synchronous link: a packet sent by one is
/// processed by the other inside the send call (the stack sends outside its locks, so this
/// cannot deadlock or re-enter a connection). Optionally a queued link with its own thread.
/// </summary>
internal sealed class TcpLoopback : IDisposable
{
    public static readonly NetAddress AddressA = NetAddress.Parse("10.2.0.1");
    public static readonly NetAddress AddressB = NetAddress.Parse("10.2.0.2");

    private readonly System.Collections.Concurrent.BlockingCollection<(TcpLayer To, NetAddress Source, NetAddress Destination, byte[] Packet)>? _queue;
    private readonly Thread? _thread;

    public TcpLoopback(int mtu = 1420, Action<TcpStackOptions>? configure = null, bool queued = false)
    {
        if (queued)
        {
            _queue = new(new System.Collections.Concurrent.ConcurrentQueue<(TcpLayer, NetAddress, NetAddress, byte[])>());
            _thread = new Thread(Deliver) { IsBackground = true, Name = "loopback link" };
        }
        A = Create(AddressA, mtu, configure, () => B!);
        B = Create(AddressB, mtu, configure, () => A);
        _thread?.Start();
    }

    public TcpLayer A { get; }

    public TcpLayer B { get; }

    private TcpLayer Create(NetAddress address, int mtu, Action<TcpStackOptions>? configure, Func<TcpLayer> peer)
    {
        var tcp = new TcpStackOptions();
        configure?.Invoke(tcp);
        tcp.Validate();
        var options = new IpStackOptions { Addresses = [address.ToIPAddress()], Mtu = mtu, Tcp = tcp };
        var output = new RecordingOutput(mtu)
        {
            Forward = (source, destination, packet) =>
            {
                if (_queue is not null)
                {
                    _queue.Add((peer(), source, destination, packet));
                }
                else
                {
                    peer().OnPacket(new IpPacketInfo(source, destination, TcpSegment.Protocol, 64, 0, packet), packet);
                }
            },
        };
        return new TcpLayer(new StackContext(options, NullLogger.Instance) { Output = output });
    }

    private void Deliver()
    {
        foreach (var (to, source, destination, packet) in _queue!.GetConsumingEnumerable())
        {
            to.OnPacket(new IpPacketInfo(source, destination, TcpSegment.Protocol, 64, 0, packet), packet);
        }
    }

    /// <summary>A connects to B: returns (A's end, B's end) as public connections.</summary>
    public async Task<(TcpConnection Client, TcpConnection Server)> ConnectAsync(ushort port = 7000)
    {
        await using var listener = B.Listen(new IPEndPoint(AddressB.ToIPAddress(), port), 8);
        var accept = listener.AcceptAsync();
        var cb = A.Connect(null, new IPEndPoint(AddressB.ToIPAddress(), port));
        await cb.WaitConnectedAsync(default);
        var server = await accept;
        return (new TcpConnection(cb), server);
    }

    public void Dispose()
    {
        _queue?.CompleteAdding();
        _thread?.Join();
        A.Dispose();
        B.Dispose();
    }
}
