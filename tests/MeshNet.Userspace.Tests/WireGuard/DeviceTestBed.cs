using System.Collections.Concurrent;
using System.Net;
using MeshNet.TestSupport.Packets;
using MeshNet.Userspace.Conn;
using MeshNet.Userspace.Crypto;
using MeshNet.Userspace.Link;
using MeshNet.Userspace.Net;
using MeshNet.Userspace.WireGuard;
using Microsoft.Extensions.Time.Testing;

namespace MeshNet.Userspace.Tests.WireGuard;

/// <summary>Records every packet a device delivers.</summary>
internal sealed class PacketCollector : IPacketSink
{
    private long _count;

    public ConcurrentQueue<byte[]> Packets { get; } = new();

    /// <summary>When false, packets are only counted (for allocation measurements).</summary>
    public bool KeepPackets { get; set; } = true;

    public long Count => Interlocked.Read(ref _count);

    public void WritePacket(ReadOnlySpan<byte> packet)
    {
        Interlocked.Increment(ref _count);
        if (KeepPackets)
        {
            Packets.Enqueue(packet.ToArray());
        }
    }

    public List<byte[]> Drain()
    {
        var list = new List<byte[]>();
        while (Packets.TryDequeue(out var packet))
        {
            list.Add(packet);
        }
        return list;
    }
}

/// <summary>A receiver that ignores everything (for binds that only send, such as attackers).</summary>
internal sealed class NullDatagramReceiver : IDatagramReceiver
{
    public void OnDatagram(Span<byte> datagram, in NetEndpoint source)
    {
    }
}

/// <summary>One device of a test bed, with its addresses and what it received.</summary>
internal sealed class TestNode(string name, WireGuardDevice device, MemoryBind bind, PacketCollector inbound,
    IPAddress tunnelV4, IPAddress tunnelV6)
{
    public string Name { get; } = name;

    public WireGuardDevice Device { get; } = device;

    public MemoryBind Bind { get; } = bind;

    public PacketCollector Inbound { get; } = inbound;

    public IPAddress TunnelV4 { get; } = tunnelV4;

    public IPAddress TunnelV6 { get; } = tunnelV6;

    public WireGuardDeviceCounters Counters => Device.Counters;

    public Peer PeerOf(TestNode other) => Device.LookupPeer(other.Device.PublicKey)!;

    public NetEndpoint Endpoint => Bind.LocalEndpoint;
}

/// <summary>
/// Two (or more) WireGuard devices on a manual-delivery <see cref="MemoryNetwork"/> with a
/// <see cref="FakeTimeProvider"/>: every datagram, handshake and timer runs on the test thread,
/// in a deterministic order, as smoltcp-style protocol tests want.
/// </summary>
internal sealed class DeviceTestBed : IDisposable
{
    private readonly List<TestNode> _nodes = [];
    private readonly List<(NetEndpoint From, NetEndpoint To, byte[] Datagram)> _captured = [];

    public DeviceTestBed()
    {
        Network = new MemoryNetwork(new MemoryNetworkOptions { Delivery = MemoryDeliveryMode.Manual });
        Network.Filter = Intercept;
    }

    public FakeTimeProvider Time { get; } = new(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));

    public MemoryNetwork Network { get; }

    /// <summary>Decides the fate of each datagram; default: deliver.</summary>
    public Func<NetEndpoint, NetEndpoint, byte[], MemoryVerdict>? Policy { get; set; }

    /// <summary>Every datagram sent on the network (before the policy is applied), in order.</summary>
    public IReadOnlyList<(NetEndpoint From, NetEndpoint To, byte[] Datagram)> Captured => _captured;

    public TestNode AddNode(string name, int index, Action<WireGuardDeviceOptions>? configure = null)
    {
        var bind = Network.CreateBind(IPAddress.Parse($"192.0.2.{index}"));
        var inbound = new PacketCollector();
        using var key = WireGuardPrivateKey.Generate();
        var options = new WireGuardDeviceOptions
        {
            PrivateKey = key,
            Bind = bind,
            InboundSink = inbound,
            ListenPort = 51820,
            TimeProvider = Time,
            ManualHandshakeProcessing = true,
            JitterRandom = new Random(index),
        };
        configure?.Invoke(options);
        var device = WireGuardDevice.StartAsync(options).AsTask().GetAwaiter().GetResult();
        var node = new TestNode(name, device, bind, inbound, IPAddress.Parse($"10.0.0.{index}"), IPAddress.Parse($"fd00::{index}"));
        _nodes.Add(node);
        return node;
    }

    /// <summary>Makes <paramref name="a"/> and <paramref name="b"/> peers of each other.</summary>
    public static void Connect(TestNode a, TestNode b, TimeSpan? keepalive = null, WireGuardPresharedKey? psk = null)
    {
        a.Device.SetPeer(PeerConfig(b, keepalive, psk));
        b.Device.SetPeer(PeerConfig(a, keepalive, psk));
    }

    public static WireGuardPeerConfig PeerConfig(TestNode other, TimeSpan? keepalive = null, WireGuardPresharedKey? psk = null) =>
        new(other.Device.PublicKey)
        {
            Endpoint = other.Endpoint.ToIPEndPoint(),
            AllowedIps = [new IPNetwork(other.TunnelV4, 32), new IPNetwork(other.TunnelV6, 128)],
            PersistentKeepalive = keepalive,
            PresharedKey = psk,
        };

    /// <summary>Delivers datagrams and processes handshakes until the network is quiet.</summary>
    public int Pump(int maxRounds = 1000)
    {
        int total = 0;
        for (int round = 0; round < maxRounds; round++)
        {
            int work = Network.DeliverPending();
            foreach (var node in _nodes)
            {
                work += node.Device.ProcessPendingHandshakes();
            }
            if (work == 0)
            {
                return total;
            }
            total += work;
        }
        throw new InvalidOperationException("The network never went quiet.");
    }

    /// <summary>Moves the clock forward in small steps, pumping after each, so timers interleave with traffic.</summary>
    public void Advance(TimeSpan duration, TimeSpan? step = null)
    {
        var stepSize = step ?? TimeSpan.FromMilliseconds(100);
        var remaining = duration;
        while (remaining > TimeSpan.Zero)
        {
            var next = remaining < stepSize ? remaining : stepSize;
            Time.Advance(next);
            Pump();
            remaining -= next;
        }
    }

    /// <summary>Sends a UDP packet from <paramref name="from"/>'s tunnel address to <paramref name="to"/>'s.</summary>
    public static byte[] SendUdp(TestNode from, TestNode to, int payloadLength = 100, bool ipv6 = false, byte fill = 0x5A)
    {
        var payload = Enumerable.Repeat(fill, payloadLength).ToArray();
        var packet = ipv6
            ? IpPacketBuilder.Udp(from.TunnelV6, to.TunnelV6, 40000, 7, payload)
            : IpPacketBuilder.Udp(from.TunnelV4, to.TunnelV4, 40000, 7, payload);
        from.Device.WritePacket(packet);
        return packet;
    }

    /// <summary>An open bind at <paramref name="address"/> that sends arbitrary datagrams and ignores replies.</summary>
    public MemoryBind Attacker(string address)
    {
        var bind = Network.CreateBind(IPAddress.Parse(address));
        bind.Open(0, new NullDatagramReceiver());
        return bind;
    }

    /// <summary>Datagrams of a given WireGuard message type captured from one node.</summary>
    public IEnumerable<byte[]> CapturedFrom(TestNode node, uint messageType) =>
        _captured.Where(c => c.From == node.Endpoint && c.Datagram.Length >= 4 && c.Datagram[0] == messageType).Select(c => c.Datagram);

    public void ClearCaptured() => _captured.Clear();

    private MemoryVerdict Intercept(in NetEndpoint source, in NetEndpoint destination, ReadOnlySpan<byte> datagram)
    {
        var copy = datagram.ToArray();
        _captured.Add((source, destination, copy));
        return Policy?.Invoke(source, destination, copy) ?? MemoryVerdict.Deliver;
    }

    public void Dispose()
    {
        foreach (var node in _nodes)
        {
            node.Device.Dispose();
        }
        Network.Dispose();
    }
}
