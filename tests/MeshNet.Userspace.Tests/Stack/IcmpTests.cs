using System.Buffers.Binary;
using System.Net;
using MeshNet.Userspace.Stack;
using static MeshNet.Userspace.Tests.Stack.StackTestBed;

namespace MeshNet.Userspace.Tests.Stack;

/// <summary>ICMP and ICMPv6 through a stack: echo, the errors it sends, and their rate limit.</summary>
[Trait("Category", "Unit")]
public sealed class IcmpTests : IDisposable
{
    private readonly StackTestBed _bed = new(options => options.IcmpErrorsPerSecond = 5);

    public void Dispose() => _bed.Dispose();

    private static byte[] Data(int length)
    {
        var data = new byte[length];
        new Random(length).NextBytes(data);
        return data;
    }

    private static ushort IcmpChecksum(bool v6, ParsedPacket packet, byte[] message) =>
        v6 ? TestPackets.TransportChecksum(packet.Source, packet.Destination, TestPackets.IcmpV6, message) : TestPackets.Checksum(message);

    [Theory]
    [InlineData(false, 0)]
    [InlineData(false, 56)]
    [InlineData(true, 0)]
    [InlineData(true, 56)]
    public void An_echo_request_is_answered(bool v6, int size)
    {
        var data = Data(size);
        _bed.Inject(TestPackets.EchoRequest(Remote(v6), Local(v6), 0x1234, 7, data));

        var reply = _bed.Link.DrainParsed().Should().ContainSingle().Subject;
        reply.Source.Should().Be(Local(v6));
        reply.Destination.Should().Be(Remote(v6));
        reply.Protocol.Should().Be(v6 ? TestPackets.IcmpV6 : TestPackets.Icmp);
        reply.Payload[0].Should().Be(v6 ? (byte)129 : (byte)0);
        reply.Payload[1].Should().Be(0);
        BinaryPrimitives.ReadUInt16BigEndian(reply.Payload.AsSpan(4)).Should().Be(0x1234);
        BinaryPrimitives.ReadUInt16BigEndian(reply.Payload.AsSpan(6)).Should().Be(7);
        reply.Payload[8..].Should().Equal(data);
        IcmpChecksum(v6, reply, reply.Payload).Should().Be(0);
        _bed.Counters.IcmpEchoRepliesSent.Should().Be(1);
        _bed.Drops.Should().BeEmpty();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_3000_byte_echo_arrives_fragmented_and_its_reply_is_fragmented(bool v6)
    {
        var data = Data(3000);
        var message = TestPackets.IcmpMessage(Remote(v6), Local(v6), v6 ? (byte)128 : (byte)8, 0, 0xBEEF0001, data);
        _bed.InjectAll(TestPackets.Fragments(Remote(v6), Local(v6), v6 ? TestPackets.IcmpV6 : TestPackets.Icmp, message, 1232, 99));

        var fragments = _bed.Link.DrainParsed();
        fragments.Should().HaveCount(3);
        fragments.Should().OnlyContain(fragment => fragment.IsFragment && fragment.Raw.Length <= 1420);
        var reply = TestPackets.Join(fragments);
        reply[0].Should().Be(v6 ? (byte)129 : (byte)0);
        BinaryPrimitives.ReadUInt32BigEndian(reply.AsSpan(4)).Should().Be(0xBEEF0001);
        reply[8..].Should().Equal(data);
        IcmpChecksum(v6, fragments[0], reply).Should().Be(0);
        _bed.Counters.DatagramsReassembled.Should().Be(1);
        _bed.Counters.DatagramsFragmented.Should().Be(1);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void An_echo_request_with_a_bad_checksum_is_dropped(bool v6)
    {
        var packet = TestPackets.EchoRequest(Remote(v6), Local(v6), 1, 1, Data(10));
        packet[^1] ^= 0xFF;
        _bed.Inject(packet);
        _bed.Drops.Should().Equal(new Dictionary<StackDropReason, long> { [StackDropReason.IcmpMalformed] = 1 });
        _bed.Link.Count.Should().Be(0);
    }

    [Theory]
    [InlineData(false, 4)]
    [InlineData(false, 7)]
    [InlineData(true, 3)]
    [InlineData(true, 7)]
    public void A_truncated_ICMP_message_is_dropped(bool v6, int length)
    {
        var message = new byte[length];
        message[0] = v6 ? (byte)128 : (byte)8;
        if (length >= 4)
        {
            ushort checksum = v6 ? TestPackets.TransportChecksum(Remote(v6), Local(v6), TestPackets.IcmpV6, message) : TestPackets.Checksum(message);
            BinaryPrimitives.WriteUInt16BigEndian(message.AsSpan(2), checksum);
        }
        _bed.Inject(TestPackets.Ip(Remote(v6), Local(v6), v6 ? TestPackets.IcmpV6 : TestPackets.Icmp, message));
        _bed.Counters[StackDropReason.IcmpMalformed].Should().Be(1);
        _bed.Link.Count.Should().Be(0);
    }

    [Theory]
    [InlineData(false, 0)]   // echo reply
    [InlineData(false, 5)]   // redirect
    [InlineData(false, 13)]  // timestamp
    [InlineData(true, 129)]  // echo reply
    [InlineData(true, 133)]  // router solicitation
    [InlineData(true, 135)]  // neighbor solicitation
    [InlineData(true, 136)]  // neighbor advertisement
    [InlineData(true, 200)]  // unknown informational
    public void Messages_the_stack_does_not_act_on_are_ignored_silently(bool v6, byte type)
    {
        _bed.Inject(TestPackets.Ip(Remote(v6), Local(v6), v6 ? TestPackets.IcmpV6 : TestPackets.Icmp,
            TestPackets.IcmpMessage(Remote(v6), Local(v6), type, 0, 0, new byte[16])));
        _bed.Drops.Should().Equal(new Dictionary<StackDropReason, long> { [StackDropReason.IcmpIgnored] = 1 });
        _bed.Link.Count.Should().Be(0);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_datagram_to_a_closed_port_is_answered_with_port_unreachable(bool v6)
    {
        var packet = TestPackets.UdpPacket(Remote(v6), Local(v6), 5000, 9, Data(20));
        _bed.Inject(packet);

        _bed.Drops.Should().Equal(new Dictionary<StackDropReason, long> { [StackDropReason.UdpNoListener] = 1 });
        var error = _bed.Link.DrainParsed().Should().ContainSingle().Subject;
        error.Source.Should().Be(Local(v6));
        error.Destination.Should().Be(Remote(v6));
        error.Payload[0].Should().Be(v6 ? (byte)1 : (byte)3, "destination unreachable");
        error.Payload[1].Should().Be(v6 ? (byte)4 : (byte)3, "port unreachable");
        BinaryPrimitives.ReadUInt32BigEndian(error.Payload.AsSpan(4)).Should().Be(0u);
        error.Payload[8..].Should().Equal(packet);
        IcmpChecksum(v6, error, error.Payload).Should().Be(0);
        _bed.Counters.IcmpErrorsSent.Should().Be(1);
    }

    [Theory]
    [InlineData(false, 576)]
    [InlineData(true, 1280)]
    public void The_quote_is_limited_to_the_minimum_MTU(bool v6, int limit)
    {
        _bed.Inject(TestPackets.UdpPacket(Remote(v6), Local(v6), 5000, 9, Data(3000)));
        var error = _bed.Link.Drain().Should().ContainSingle().Subject;
        error.Length.Should().Be(limit);
    }

    [Fact]
    public void Errors_are_rate_limited_by_a_token_bucket()
    {
        for (int i = 0; i < 8; i++)
        {
            _bed.Inject(TestPackets.UdpPacket(RemoteV4, LocalV4, 5000, 9, [1]));
        }
        _bed.Link.Count.Should().Be(5, "five per second, a second's worth in the bucket");
        _bed.Counters[StackDropReason.IcmpRateLimited].Should().Be(3);
        _bed.Counters[StackDropReason.UdpNoListener].Should().Be(8);

        _bed.Time.Advance(TimeSpan.FromMilliseconds(400)); // two tokens
        for (int i = 0; i < 3; i++)
        {
            _bed.Inject(TestPackets.UdpPacket(RemoteV6, LocalV6, 5000, 9, [1]));
        }
        _bed.Link.Count.Should().Be(7, "the bucket is shared by both families");

        _bed.Time.Advance(TimeSpan.FromHours(1));
        for (int i = 0; i < 10; i++)
        {
            _bed.Inject(TestPackets.UdpPacket(RemoteV4, LocalV4, 5000, 9, [1]));
        }
        _bed.Link.Count.Should().Be(12, "the bucket holds at most one second's worth");
    }

    [Fact]
    public void A_rate_of_zero_sends_no_errors()
    {
        using var bed = new StackTestBed(options => options.IcmpErrorsPerSecond = 0);
        bed.Inject(TestPackets.UdpPacket(RemoteV4, LocalV4, 5000, 9, [1]));
        bed.Link.Count.Should().Be(0);
        bed.Counters[StackDropReason.IcmpRateLimited].Should().Be(1);
    }

    [Theory]
    [InlineData(false, (byte)3)]
    [InlineData(false, (byte)11)]
    [InlineData(true, (byte)1)]
    [InlineData(true, (byte)3)]
    public void No_error_is_sent_about_an_ICMP_error(bool v6, byte type)
    {
        // An error about a datagram the stack never sent (the quote is not from our address),
        // and then a fragmented ICMP error left incomplete: neither may trigger an error.
        var quote = TestPackets.UdpPacket(Remote(v6), Local(v6), 1, 2, [1]);
        _bed.Inject(TestPackets.Ip(Remote(v6), Local(v6), v6 ? TestPackets.IcmpV6 : TestPackets.Icmp,
            TestPackets.IcmpMessage(Remote(v6), Local(v6), type, 0, 0, quote)));
        _bed.Counters[StackDropReason.IcmpBadQuote].Should().Be(1);

        var error = TestPackets.IcmpMessage(Remote(v6), Local(v6), type, 0, 0, Data(300));
        _bed.Inject(TestPackets.Fragment(Remote(v6), Local(v6), v6 ? TestPackets.IcmpV6 : TestPackets.Icmp, error, 0, 128, true, 3));
        _bed.Time.Advance(TimeSpan.FromMinutes(1));
        _bed.Counters[StackDropReason.FragmentTimeout].Should().Be(1);
        _bed.Link.Count.Should().Be(0);
    }

    [Fact]
    public void No_error_is_sent_about_a_packet_not_addressed_to_us()
    {
        _bed.Inject(TestPackets.UdpPacket(RemoteV4, IPAddress.Parse("10.0.0.255"), 5000, 9, [1]));
        _bed.Inject(TestPackets.UdpPacket(RemoteV4, IPAddress.Parse("224.0.0.1"), 5000, 9, [1]));
        _bed.Inject(TestPackets.UdpPacket(RemoteV6, IPAddress.Parse("ff02::1"), 5000, 9, [1]));
        _bed.Counters[StackDropReason.IpNotForUs].Should().Be(3);
        _bed.Link.Count.Should().Be(0);
    }
}
