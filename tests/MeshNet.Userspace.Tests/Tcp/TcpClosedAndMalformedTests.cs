using System.Buffers.Binary;
using MeshNet.Userspace.Stack;
using MeshNet.Userspace.Stack.Tcp;

namespace MeshNet.Userspace.Tests.Tcp;

/// <summary>CLOSED (no connection, no listener): RFC 9293 §3.10.7.1 reset generation; and malformed segments.</summary>
[Trait("Category", "Unit")]
public sealed class TcpClosedAndMalformedTests
{
    private static TcpTestSegment From(TcpFlags flags, uint seq = 5000, uint ack = 0, byte[]? payload = null) => new()
    {
        SourcePort = TcpHarness.PeerPort,
        DestinationPort = 9999,
        Seq = seq,
        Ack = ack,
        Flags = flags,
        Payload = payload ?? [],
    };

    [Fact]
    public void SynToAClosedPortGetsRstAckWithSeqZeroAckingTheSyn()
    {
        using var h = new TcpHarness();
        h.Inject(From(TcpFlags.Syn));
        var rst = h.Single();
        rst.Flags.Should().Be(TcpFlags.Rst | TcpFlags.Ack);
        rst.Seq.Should().Be(0);
        rst.Ack.Should().Be(5001);
        rst.SourcePort.Should().Be(9999);
        rst.DestinationPort.Should().Be(TcpHarness.PeerPort);
        h.Counters[StackDropReason.TcpNoConnection].Should().Be(1);
    }

    [Fact]
    public void AckToAClosedPortGetsRstWithSeqEqualToTheAck()
    {
        using var h = new TcpHarness();
        h.Inject(From(TcpFlags.Ack, ack: 777));
        var rst = h.Single();
        rst.Flags.Should().Be(TcpFlags.Rst);
        rst.Seq.Should().Be(777);
    }

    [Fact]
    public void DataWithoutAckGetsRstAckingSeqPlusLengthPlusFin()
    {
        using var h = new TcpHarness();
        h.Inject(From(TcpFlags.Fin | TcpFlags.Psh, payload: new byte[10]));
        var rst = h.Single();
        rst.Flags.Should().Be(TcpFlags.Rst | TcpFlags.Ack);
        rst.Ack.Should().Be(5000 + 10 + 1);
    }

    [Fact]
    public void RstToAClosedPortIsNeverAnswered()
    {
        using var h = new TcpHarness();
        h.Inject(From(TcpFlags.Rst));
        h.Inject(From(TcpFlags.Rst | TcpFlags.Ack, ack: 1));
        h.Silence();
        h.Counters[StackDropReason.TcpNoConnection].Should().Be(2);
    }

    public static TheoryData<string, byte[], StackDropReason> MalformedSegments()
    {
        var good = From(TcpFlags.Syn).Build(TcpHarness.RemoteAddress, TcpHarness.LocalAddress);
        byte[] Mutate(Action<byte[]> change)
        {
            var copy = (byte[])good.Clone();
            change(copy);
            return copy;
        }
        byte[] WithOptions(byte[] options) =>
            (From(TcpFlags.Syn) with { RawOptions = options }).Build(TcpHarness.RemoteAddress, TcpHarness.LocalAddress);
        return new TheoryData<string, byte[], StackDropReason>
        {
            { "shorter than a header", good[..19], StackDropReason.TcpMalformed },
            { "data offset below 5", Mutate(p => { p[12] = 4 << 4; FixChecksum(p); }), StackDropReason.TcpMalformed },
            { "data offset beyond the packet", Mutate(p => { p[12] = 15 << 4; FixChecksum(p); }), StackDropReason.TcpMalformed },
            { "bad checksum", Mutate(p => p[16] ^= 0x55), StackDropReason.TcpMalformed },
            { "source port 0", Mutate(p => { p[0] = 0; p[1] = 0; FixChecksum(p); }), StackDropReason.TcpMalformed },
            { "destination port 0", Mutate(p => { p[2] = 0; p[3] = 0; FixChecksum(p); }), StackDropReason.TcpMalformed },
            { "option length 0", WithOptions([2, 0, 0, 0]), StackDropReason.TcpBadOptions },
            { "option length 1", WithOptions([8, 1, 0, 0]), StackDropReason.TcpBadOptions },
            { "option past the end", WithOptions([1, 1, 8, 10]), StackDropReason.TcpBadOptions },
            { "kind without length byte", WithOptions([1, 1, 1, 2]), StackDropReason.TcpBadOptions },
            { "MSS of length 3", WithOptions([2, 3, 5, 0]), StackDropReason.TcpBadOptions },
            { "window scale of length 4", WithOptions([3, 4, 7, 0]), StackDropReason.TcpBadOptions },
            { "SACK-permitted of length 3", WithOptions([4, 3, 0, 0]), StackDropReason.TcpBadOptions },
            { "SACK of length 6", WithOptions([5, 6, 0, 0, 0, 0, 0, 0]), StackDropReason.TcpBadOptions },
            { "timestamps of length 8", WithOptions([8, 8, 0, 0, 0, 0, 0, 0]), StackDropReason.TcpBadOptions },
            { "SYN+FIN", From(TcpFlags.Syn | TcpFlags.Fin).Build(TcpHarness.RemoteAddress, TcpHarness.LocalAddress), StackDropReason.TcpBadFlags },
            { "SYN+RST", From(TcpFlags.Syn | TcpFlags.Rst).Build(TcpHarness.RemoteAddress, TcpHarness.LocalAddress), StackDropReason.TcpBadFlags },
        };
    }

    private static void FixChecksum(byte[] packet) => TcpSegment.SetChecksum(packet, TcpHarness.RemoteAddress, TcpHarness.LocalAddress);

    [Theory]
    [MemberData(nameof(MalformedSegments))]
    public void MalformedSegmentsAreDroppedSilentlyAndCounted(string name, byte[] packet, StackDropReason reason)
    {
        using var h = new TcpHarness();
        h.Listen();
        h.InjectRaw(packet);
        h.Silence(name);
        h.Counters[reason].Should().Be(1, name);
        h.Counters.TotalDropped.Should().Be(1, name);
        h.Layer.ConnectionCount.Should().Be(0);
    }

    [Fact]
    public void UnknownOptionsNopAndEndOfListAreAccepted()
    {
        using var h = new TcpHarness();
        h.Listen();
        // NOP, unknown kind 30 of length 4, MSS 1000, EOL, garbage after EOL
        var syn = From(TcpFlags.Syn) with { DestinationPort = TcpHarness.ListenPort, RawOptions = [1, 30, 4, 9, 9, 2, 4, 0x03, 0xE8, 0, 77, 77] };
        h.Inject(syn);
        h.Single().Flags.Should().Be(TcpFlags.Syn | TcpFlags.Ack);
        h.Layer.Find(new TcpFlowKey(TcpHarness.LocalAddress, TcpHarness.ListenPort, TcpHarness.RemoteAddress, TcpHarness.PeerPort))!
            .Snapshot().Mss.Should().Be(1000);
    }

    [Fact]
    public void OptionsRoundTripThroughTheWriters()
    {
        Span<byte> buffer = stackalloc byte[40];
        int length = TcpOptions.WriteSyn(buffer, 1380, 7, sackPermitted: true, timestamps: true, 123, 456);
        length.Should().Be(TcpOptions.SynLength(true, true, true)).And.Be(20);
        TcpOptions.TryParse(buffer[..length], out var options).Should().BeTrue();
        options.Mss.Should().Be(1380);
        options.WindowScale.Should().Be(7);
        options.SackPermitted.Should().BeTrue();
        (options.TsVal, options.TsEcr).Should().Be((123u, 456u));

        length = TcpOptions.WriteTimestamps(buffer, 1, 2);
        length += TcpOptions.WriteSack(buffer[length..], [10, 20, 30, 40, 50, 60]);
        length.Should().Be(40);
        TcpOptions.TryParse(buffer[..length], out options).Should().BeTrue();
        options.SackCount.Should().Be(3);
        options.SackStart(2).Should().Be(50);
        options.SackEnd(2).Should().Be(60);
    }

    [Fact]
    public void WindowScaleAboveFourteenIsTakenAsFourteen()
    {
        TcpOptions.TryParse([3, 3, 20], out var options).Should().BeTrue();
        options.WindowScale.Should().Be(14);
    }

    [Fact]
    public void EmittedSegmentsCarryValidChecksums()
    {
        using var h = new TcpHarness();
        h.Inject(From(TcpFlags.Syn));
        var raw = h.Output.Drain().Single();
        InternetChecksumOf(raw.Packet).Should().Be(0);
    }

    private static ushort InternetChecksumOf(byte[] packet) =>
        MeshNet.Userspace.Stack.Ip.InternetChecksum.Transport(TcpHarness.LocalAddress, TcpHarness.RemoteAddress, 6, packet);

    [Fact]
    public void SequenceComparisonsWrapAround()
    {
        TcpSeq.Lt(0xFFFFFFF0, 0x10).Should().BeTrue();
        TcpSeq.Gt(0x10, 0xFFFFFFF0).Should().BeTrue();
        TcpSeq.Le(5, 5).Should().BeTrue();
        TcpSeq.Max(0xFFFFFFF0, 0x10).Should().Be(0x10);
        _ = BinaryPrimitives.ReverseEndianness(0);
    }
}
