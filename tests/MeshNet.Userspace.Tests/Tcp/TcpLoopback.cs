using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using MeshNet.Userspace.Net;
using MeshNet.Userspace.Stack;
using MeshNet.Userspace.Stack.Ip;
using MeshNet.Userspace.Stack.Tcp;
using Microsoft.Extensions.Logging.Abstractions;

namespace MeshNet.Userspace.Tests.Tcp;

/// <summary>
/// Two TCP layers on the real clock joined in memory. Synchronous: a packet sent by one is
/// processed by the other inside the send call, with no copy (the stack sends outside its
/// locks, so this can neither deadlock nor re-enter a connection). Queued: each direction has
/// a delivery thread (like two devices' receive threads) fed through pooled copies.
/// </summary>
internal sealed class TcpLoopback : IDisposable
{
    public static readonly NetAddress AddressA = NetAddress.Parse("10.2.0.1");
    public static readonly NetAddress AddressB = NetAddress.Parse("10.2.0.2");

    private readonly LinkOutput _toB;
    private readonly LinkOutput _toA;

    public TcpLoopback(int mtu = 1420, Action<TcpStackOptions>? configure = null, bool queued = false)
    {
        _toB = new LinkOutput(mtu, queued);
        _toA = new LinkOutput(mtu, queued);
        A = Create(AddressA, mtu, configure, _toB);
        B = Create(AddressB, mtu, configure, _toA);
        _toB.Peer = B;
        _toA.Peer = A;
        _toB.Start();
        _toA.Start();
    }

    public TcpLayer A { get; }

    public string LinkStatistics => $"A->B {_toB.Packets} packets ({_toB.Bytes} bytes), B->A {_toA.Packets} packets";

    public TcpLayer B { get; }

    private static TcpLayer Create(NetAddress address, int mtu, Action<TcpStackOptions>? configure, LinkOutput output)
    {
        var tcp = new TcpStackOptions();
        configure?.Invoke(tcp);
        tcp.Validate();
        var options = new IpStackOptions { Addresses = [address.ToIPAddress()], Mtu = mtu, Tcp = tcp };
        return new TcpLayer(new StackContext(options, NullLogger.Instance) { Output = output });
    }

    private sealed class LinkOutput(int mtu, bool queued) : IIpOutput
    {
        private readonly BlockingCollection<(NetAddress Source, NetAddress Destination, byte[] Packet, int Length)>? _queue =
            queued ? new(new ConcurrentQueue<(NetAddress, NetAddress, byte[], int)>()) : null;
        private Thread? _thread;

        public TcpLayer Peer { get; set; } = null!;

        public void Start()
        {
            if (_queue is not null)
            {
                _thread = new Thread(Deliver) { IsBackground = true, Name = "loopback link" };
                _thread.Start();
            }
        }

        public long Packets;

        public long Bytes;

        public bool Send(NetAddress source, NetAddress destination, byte protocol, byte[] buffer, int length, byte trafficClass = 0)
        {
            Interlocked.Increment(ref Packets);
            Interlocked.Add(ref Bytes, length);
            if (_queue is null)
            {
                var packet = buffer.AsSpan(IIpOutput.HeaderRoom, length);
                Peer.OnPacket(new IpPacketInfo(source, destination, protocol, 64, 0, packet), packet);
                return true;
            }
            var copy = ArrayPool<byte>.Shared.Rent(length);
            buffer.AsSpan(IIpOutput.HeaderRoom, length).CopyTo(copy);
            _queue.Add((source, destination, copy, length));
            return true;
        }

        public int MaxTransportPayload(NetAddress destination) => mtu - (destination.IsIPv4 ? 20 : 40);

        private void Deliver()
        {
            foreach (var (source, destination, packet, length) in _queue!.GetConsumingEnumerable())
            {
                var span = packet.AsSpan(0, length);
                Peer.OnPacket(new IpPacketInfo(source, destination, TcpSegment.Protocol, 64, 0, span), span);
                ArrayPool<byte>.Shared.Return(packet);
            }
        }

        public void Stop()
        {
            _queue?.CompleteAdding();
            _thread?.Join();
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
        _toB.Stop();
        _toA.Stop();
        A.Dispose();
        B.Dispose();
    }
}
