using System.Net;
using MeshNet.Userspace.Net;
using MeshNet.Userspace.Stack;
using MeshNet.Userspace.Stack.Ip;
using MeshNet.Userspace.Stack.Tcp;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace MeshNet.Userspace.Tests.Tcp;

/// <summary>
/// Drives one real <see cref="TcpLayer"/> in memory (smoltcp/packetimpact style): segments from
/// a scripted peer are injected at the current fake time, and every segment the stack emits is
/// recorded for exact assertions, including silence.
/// </summary>
internal sealed class TcpHarness : IDisposable
{
    public static readonly NetAddress LocalAddress = NetAddress.Parse("10.0.0.1");
    public static readonly NetAddress RemoteAddress = NetAddress.Parse("10.0.0.2");
    public const ushort ListenPort = 80;
    public const ushort PeerPort = 40000;

    public TcpHarness(Action<TcpStackOptions>? configure = null, int mtu = 1420, long memoryBudget = 256L << 20, int quickAcks = 0)
    {
        var tcp = new TcpStackOptions();
        configure?.Invoke(tcp);
        var options = new IpStackOptions
        {
            Addresses = [LocalAddress.ToIPAddress()],
            Mtu = mtu,
            TimeProvider = Time,
            MemoryBudget = memoryBudget,
            Tcp = tcp,
        };
        tcp.Validate();
        Output = new RecordingOutput(mtu);
        Context = new StackContext(options, NullLogger.Instance) { Output = Output };
        Layer = new TcpLayer(Context) { QuickAckSegments = quickAcks };
    }

    public FakeTimeProvider Time { get; } = new(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));

    public RecordingOutput Output { get; }

    public StackContext Context { get; }

    public TcpLayer Layer { get; }

    public TcpStackOptions Options => Context.Tcp;

    public IpStackCounters Counters => Context.Counters;

    /// <summary>Delivers a segment from the peer.</summary>
    public void Inject(TcpTestSegment segment, NetAddress? from = null, NetAddress? to = null)
    {
        var source = from ?? RemoteAddress;
        var destination = to ?? LocalAddress;
        var bytes = segment.Build(source, destination);
        Layer.OnPacket(new IpPacketInfo(source, destination, TcpSegment.Protocol, 64, 0, bytes), bytes);
    }

    /// <summary>Delivers raw bytes as a TCP packet (malformed-input tests).</summary>
    public void InjectRaw(byte[] bytes)
    {
        Layer.OnPacket(new IpPacketInfo(RemoteAddress, LocalAddress, TcpSegment.Protocol, 64, 0, bytes), bytes);
    }

    /// <summary>Everything emitted since the last call.</summary>
    public List<TcpTestSegment> Sent() =>
        Output.Drain().Select(p => TcpTestSegment.Parse(p.Source, p.Destination, p.Packet)).ToList();

    /// <summary>Exactly one segment was emitted: returns it.</summary>
    public TcpTestSegment Single()
    {
        var sent = Sent();
        sent.Should().ContainSingle("exactly one segment was expected, got: {0}", string.Join(" | ", sent));
        return sent[0];
    }

    /// <summary>Asserts nothing was emitted.</summary>
    public void Silence(string because = "")
    {
        var sent = Sent();
        sent.Should().BeEmpty(because + " (got: {0})", string.Join(" | ", sent));
    }

    public void Advance(TimeSpan time) => Time.Advance(time);

    public void AdvanceMs(double milliseconds) => Time.Advance(TimeSpan.FromMilliseconds(milliseconds));

    /// <summary>Advances in steps so timers fire at their own times; returns what was emitted with the time of each.</summary>
    public List<(TimeSpan At, TcpTestSegment Segment)> Run(TimeSpan duration, TimeSpan step)
    {
        var result = new List<(TimeSpan, TcpTestSegment)>();
        var start = Time.GetUtcNow();
        var end = start + duration;
        while (Time.GetUtcNow() < end)
        {
            Time.Advance(step);
            foreach (var segment in Sent())
            {
                result.Add((Time.GetUtcNow() - start, segment));
            }
        }
        return result;
    }

    public TcpListener Listen(int backlog = 16) => Layer.Listen(new IPEndPoint(LocalAddress.ToIPAddress(), ListenPort), backlog);

    /// <summary>A passive connection taken through the handshake with the given peer options.</summary>
    public TcpTestConnection EstablishPassive(PeerOptions? peer = null, int backlog = 16, double rttMs = 10)
    {
        peer ??= new PeerOptions();
        var listener = Listen(backlog);
        var connection = new TcpTestConnection(this, ListenPort, PeerPort, peer) { Listener = listener };
        Inject(connection.SynSegment());
        var synAck = Single();
        synAck.Flags.Should().Be(TcpFlags.Syn | TcpFlags.Ack);
        connection.OnSynAck(synAck);
        AdvanceMs(rttMs); // the handshake's RTT: SRTT = 10 ms, RTO = 210 ms by default
        Inject(connection.Seg(TcpFlags.Ack));
        Silence("the handshake's ACK needs no answer");
        connection.Cb = Layer.Find(connection.Key) ?? throw new InvalidOperationException("no connection");
        connection.Cb.State.Should().Be(TcpState.Established);
        return connection;
    }

    /// <summary>An active connection (we sent SYN, the peer answered SYN-ACK, we acknowledged).</summary>
    public TcpTestConnection EstablishActive(PeerOptions? peer = null, double rttMs = 10)
    {
        peer ??= new PeerOptions();
        var syn = StartActive(out var connection, peer);
        AdvanceMs(rttMs);
        connection.Inject(connection.SynAckFor(syn));
        var ack = Single();
        ack.Flags.Should().Be(TcpFlags.Ack);
        connection.Observe(ack);
        connection.Cb.State.Should().Be(TcpState.Established);
        return connection;
    }

    /// <summary>Starts an active open; returns our SYN.</summary>
    public TcpTestSegment StartActive(out TcpTestConnection connection, PeerOptions? peer = null)
    {
        var cb = Layer.Connect(null, new IPEndPoint(RemoteAddress.ToIPAddress(), ListenPort));
        connection = new TcpTestConnection(this, cb.Key.LocalPort, ListenPort, peer ?? new PeerOptions()) { Cb = cb };
        var syn = Single();
        syn.Flags.Should().Be(TcpFlags.Syn);
        connection.OurIss = syn.Seq;
        connection.OurNext = syn.Seq + 1;
        return syn;
    }

    public void Dispose() => Layer.Dispose();
}

/// <summary>What the scripted peer offers in its SYN.</summary>
internal sealed record PeerOptions
{
    public ushort? Mss { get; init; } = 1460;
    public int? WindowScale { get; init; }
    public bool Sack { get; init; } = true;
    public bool Timestamps { get; init; }
    public ushort Window { get; init; } = 65535;
    public uint Iss { get; init; } = 1000;
}
