using System.Buffers.Binary;
using System.Net;
using MeshNet.Userspace.Stack;
using static MeshNet.Userspace.Tests.Stack.StackTestBed;

namespace MeshNet.Userspace.Tests.Stack;

/// <summary>IP input: every malformed class dropped and counted under its reason, valid packets delivered.</summary>
[Trait("Category", "Unit")]
public sealed class IpInputTests : IDisposable
{
    private readonly StackTestBed _bed = new();
    private readonly UdpSocket _socketV4;
    private readonly UdpSocket _socketV6;

    public IpInputTests()
    {
        _socketV4 = _bed.Stack.BindUdp(new IPEndPoint(LocalV4, 7000));
        _socketV6 = _bed.Stack.BindUdp(new IPEndPoint(LocalV6, 7000));
    }

    public void Dispose() => _bed.Dispose();

    private static byte[] Udp(bool v6, byte[]? data = null) =>
        TestPackets.UdpPacket(Remote(v6), Local(v6), 5000, 7000, data ?? [1, 2, 3, 4]);

    private void ShouldDropOnly(StackDropReason reason, long count = 1)
    {
        _bed.Drops.Should().Equal(new Dictionary<StackDropReason, long> { [reason] = count }, $"only {reason} should count ({_bed.Counters})");
        _bed.Counters.PacketsDelivered.Should().Be(0);
    }

    private void ShouldDeliverOneDatagram(bool v6, byte[]? data = null)
    {
        _bed.Drops.Should().BeEmpty(_bed.Counters.ToString());
        _bed.Counters.PacketsDelivered.Should().Be(1);
        var socket = v6 ? _socketV6 : _socketV4;
        var buffer = new byte[100];
        var received = socket.ReceiveFromAsync(buffer).AsTask();
        received.IsCompletedSuccessfully.Should().BeTrue("the datagram is queued");
        buffer.AsSpan(0, received.Result.ReceivedBytes).ToArray().Should().Equal(data ?? [1, 2, 3, 4]);
    }

    // ---- IPv4 ----

    [Fact]
    public void A_valid_IPv4_datagram_is_delivered()
    {
        _bed.Inject(Udp(false));
        ShouldDeliverOneDatagram(false);
        _bed.Counters.PacketsReceived.Should().Be(1);
    }

    [Fact]
    public void An_empty_packet_is_truncated()
    {
        _bed.Inject(Array.Empty<byte>());
        ShouldDropOnly(StackDropReason.IpTruncated);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    [InlineData(19)]
    public void An_IPv4_packet_shorter_than_a_header_is_truncated(int length)
    {
        _bed.Inject(Udp(false)[..Math.Max(length, 1)]);
        ShouldDropOnly(StackDropReason.IpTruncated);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    [InlineData(15)]
    public void A_packet_of_an_unknown_version_is_dropped(int version)
    {
        var packet = Udp(false);
        packet[0] = (byte)((version << 4) | 5);
        _bed.Inject(packet);
        ShouldDropOnly(StackDropReason.IpBadVersion);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(4)]
    public void An_IPv4_header_length_below_five_words_is_dropped(int words)
    {
        var packet = Udp(false);
        packet[0] = (byte)(0x40 | words);
        _bed.Inject(packet);
        ShouldDropOnly(StackDropReason.IpBadHeaderLength);
    }

    [Fact]
    public void An_IPv4_header_length_beyond_the_packet_is_dropped()
    {
        var packet = Udp(false)[..24];
        packet[0] = 0x4F; // 60 bytes of header in a 24-byte packet
        _bed.Inject(packet);
        ShouldDropOnly(StackDropReason.IpBadHeaderLength);
    }

    [Fact]
    public void An_IPv4_total_length_below_the_header_length_is_dropped()
    {
        var packet = Udp(false);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), 19);
        TestPackets.FixIpv4Checksum(packet);
        _bed.Inject(packet);
        ShouldDropOnly(StackDropReason.IpBadHeaderLength);
    }

    [Fact]
    public void An_IPv4_total_length_beyond_the_packet_is_truncation()
    {
        var packet = Udp(false);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)(packet.Length + 1));
        TestPackets.FixIpv4Checksum(packet);
        _bed.Inject(packet);
        ShouldDropOnly(StackDropReason.IpTruncated);
    }

    [Fact]
    public void A_bad_IPv4_header_checksum_is_dropped()
    {
        var packet = Udp(false);
        packet[10] ^= 0x01;
        _bed.Inject(packet);
        ShouldDropOnly(StackDropReason.IpBadChecksum);
    }

    [Fact]
    public void Bytes_past_the_IPv4_total_length_are_ignored()
    {
        _bed.Inject([.. Udp(false), 0xEE, 0xEE, 0xEE]);
        ShouldDeliverOneDatagram(false);
    }

    [Fact]
    public void IPv4_options_are_skipped()
    {
        byte[] options = [1, 1, 1, 0]; // NOP NOP NOP EOL
        var udp = TestPackets.UdpSegment(RemoteV4, LocalV4, 5000, 7000, [1, 2, 3, 4]);
        _bed.Inject(TestPackets.Ipv4(RemoteV4, LocalV4, TestPackets.Udp, udp, options: options));
        ShouldDeliverOneDatagram(false);
    }

    [Fact]
    public void A_TTL_of_zero_is_accepted_by_the_destination()
    {
        var udp = TestPackets.UdpSegment(RemoteV4, LocalV4, 5000, 7000, [1, 2, 3, 4]);
        _bed.Inject(TestPackets.Ipv4(RemoteV4, LocalV4, TestPackets.Udp, udp, ttl: 0));
        ShouldDeliverOneDatagram(false);
    }

    [Theory]
    [InlineData("10.0.0.9")]
    [InlineData("255.255.255.255")]
    [InlineData("10.0.0.255")]
    [InlineData("224.0.0.1")]
    [InlineData("0.0.0.0")]
    public void An_IPv4_packet_not_for_one_of_our_addresses_is_dropped(string destination)
    {
        _bed.Inject(TestPackets.UdpPacket(RemoteV4, IPAddress.Parse(destination), 5000, 7000, [1]));
        ShouldDropOnly(StackDropReason.IpNotForUs);
        _bed.Link.Count.Should().Be(0, "no ICMP error about packets not for us");
    }

    [Theory]
    [InlineData("0.0.0.0")]
    [InlineData("224.0.0.5")]
    [InlineData("239.255.255.255")]
    [InlineData("255.255.255.255")]
    [InlineData("10.0.0.1")] // our own address
    public void An_IPv4_packet_from_a_bad_source_is_dropped(string source)
    {
        _bed.Inject(TestPackets.UdpPacket(IPAddress.Parse(source), LocalV4, 5000, 7000, [1]));
        ShouldDropOnly(StackDropReason.IpBadSource);
        _bed.Link.Count.Should().Be(0);
    }

    [Fact]
    public void An_unknown_IPv4_protocol_is_dropped_and_answered_with_protocol_unreachable()
    {
        var packet = TestPackets.Ipv4(RemoteV4, LocalV4, 253, [9, 9, 9, 9, 9, 9, 9, 9]);
        _bed.Inject(packet);

        ShouldDropOnly(StackDropReason.IpUnknownProtocol);
        var reply = _bed.Link.DrainParsed().Should().ContainSingle().Subject;
        reply.Protocol.Should().Be(TestPackets.Icmp);
        reply.Source.Should().Be(LocalV4);
        reply.Destination.Should().Be(RemoteV4);
        reply.Payload[0].Should().Be(3, "destination unreachable");
        reply.Payload[1].Should().Be(2, "protocol unreachable");
        TestPackets.Checksum(reply.Payload).Should().Be(0);
        reply.Payload[8..].Should().Equal(packet, "the whole offending packet is quoted");
    }

    // ---- IPv6 ----

    [Fact]
    public void A_valid_IPv6_datagram_is_delivered()
    {
        _bed.Inject(Udp(true));
        ShouldDeliverOneDatagram(true);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(39)]
    public void An_IPv6_packet_shorter_than_its_header_is_truncated(int length)
    {
        _bed.Inject(Udp(true)[..length]);
        ShouldDropOnly(StackDropReason.IpTruncated);
    }

    [Fact]
    public void An_IPv6_payload_length_beyond_the_packet_is_truncation()
    {
        var packet = Udp(true);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), (ushort)(packet.Length - 40 + 1));
        _bed.Inject(packet);
        ShouldDropOnly(StackDropReason.IpTruncated);
    }

    [Fact]
    public void Bytes_past_the_IPv6_payload_length_are_ignored()
    {
        _bed.Inject([.. Udp(true), 0xEE, 0xEE]);
        ShouldDeliverOneDatagram(true);
    }

    [Theory]
    [InlineData("fd00::9")]
    [InlineData("ff02::1")]
    [InlineData("::")]
    [InlineData("::ffff:10.0.0.1")] // our IPv4 address, IPv4-mapped, inside an IPv6 header
    public void An_IPv6_packet_not_for_one_of_our_addresses_is_dropped(string destination)
    {
        _bed.Inject(TestPackets.UdpPacket(RemoteV6, IPAddress.Parse(destination), 5000, 7000, [1]));
        ShouldDropOnly(StackDropReason.IpNotForUs);
    }

    [Theory]
    [InlineData("::")]
    [InlineData("ff02::1")]
    [InlineData("fd00::1")]
    [InlineData("::ffff:10.0.0.2")]
    public void An_IPv6_packet_from_a_bad_source_is_dropped(string source)
    {
        var packet = TestPackets.Ipv6(IPAddress.Parse(source), LocalV6, TestPackets.Udp,
            TestPackets.UdpSegment(IPAddress.Parse(source), LocalV6, 5000, 7000, [1]));
        _bed.Inject(packet);
        ShouldDropOnly(StackDropReason.IpBadSource);
    }

    private static byte[] Options(params byte[] options)
    {
        int padded = (options.Length + 2 + 7) / 8 * 8 - 2;
        var body = new byte[padded];
        options.CopyTo(body, 0);
        if (padded - options.Length >= 2)
        {
            body[options.Length] = 1; // PadN
            body[options.Length + 1] = (byte)(padded - options.Length - 2);
        }
        else if (padded - options.Length == 1)
        {
            body[options.Length] = 0; // Pad1
        }
        return body;
    }

    private byte[] WithExtensions(byte first, params byte[][] headers)
    {
        var udp = TestPackets.UdpSegment(RemoteV6, LocalV6, 5000, 7000, [1, 2, 3, 4]);
        return TestPackets.Ipv6(RemoteV6, LocalV6, first, TestPackets.Concat([.. headers, udp]));
    }

    [Fact]
    public void Hop_by_hop_and_destination_options_with_padding_are_skipped()
    {
        _bed.Inject(WithExtensions(0,
            TestPackets.ExtensionHeader(60, Options(1, 4, 0, 0, 0, 0)),
            TestPackets.ExtensionHeader(TestPackets.Udp, Options(0, 0, 0))));
        ShouldDeliverOneDatagram(true);
    }

    [Fact]
    public void An_unrecognized_option_that_says_skip_is_skipped()
    {
        _bed.Inject(WithExtensions(60, TestPackets.ExtensionHeader(TestPackets.Udp, Options(0x1E, 2, 0xAA, 0xBB))));
        ShouldDeliverOneDatagram(true);
    }

    [Theory]
    [InlineData(0x5E)] // 01: discard
    [InlineData(0x9E)] // 10: discard, send parameter problem
    [InlineData(0xC2)] // 11: discard (the jumbo payload option: no jumbograms here)
    public void An_unrecognized_option_that_says_discard_drops_the_packet(byte type)
    {
        _bed.Inject(WithExtensions(0, TestPackets.ExtensionHeader(TestPackets.Udp, Options(type, 4, 0, 0, 0, 0))));
        ShouldDropOnly(StackDropReason.IpBadExtensionHeader);
    }

    [Fact]
    public void An_option_running_past_its_header_drops_the_packet()
    {
        _bed.Inject(WithExtensions(60, TestPackets.ExtensionHeader(TestPackets.Udp, [1, 9, 0, 0, 0, 0])));
        ShouldDropOnly(StackDropReason.IpBadExtensionHeader);
    }

    [Fact]
    public void A_hop_by_hop_header_that_is_not_first_drops_the_packet()
    {
        _bed.Inject(WithExtensions(60,
            TestPackets.ExtensionHeader(0, Options()),
            TestPackets.ExtensionHeader(TestPackets.Udp, Options())));
        ShouldDropOnly(StackDropReason.IpBadExtensionHeader);
    }

    [Fact]
    public void An_extension_header_running_past_the_packet_drops_it()
    {
        var header = TestPackets.ExtensionHeader(TestPackets.Udp, Options());
        header[1] = 10; // 88 bytes
        _bed.Inject(WithExtensions(60, header));
        ShouldDropOnly(StackDropReason.IpBadExtensionHeader);
    }

    [Fact]
    public void A_routing_header_with_no_segments_left_is_skipped()
    {
        _bed.Inject(WithExtensions(43, TestPackets.ExtensionHeader(TestPackets.Udp, [0, 0, 0, 0, 0, 0])));
        ShouldDeliverOneDatagram(true);
    }

    [Fact]
    public void A_routing_header_with_segments_left_drops_the_packet()
    {
        _bed.Inject(WithExtensions(43, TestPackets.ExtensionHeader(TestPackets.Udp, [0, 1, 0, 0, 0, 0])));
        ShouldDropOnly(StackDropReason.IpBadExtensionHeader);
    }

    [Fact]
    public void Too_many_extension_headers_drop_the_packet()
    {
        var headers = Enumerable.Range(0, 12).Select(i => TestPackets.ExtensionHeader(i == 11 ? TestPackets.Udp : (byte)60, Options())).ToArray();
        _bed.Inject(WithExtensions(60, headers));
        ShouldDropOnly(StackDropReason.IpBadExtensionHeader);
    }

    [Fact]
    public void An_atomic_fragment_is_processed_without_reassembly()
    {
        _bed.Inject(WithExtensions(44, TestPackets.FragmentHeader(TestPackets.Udp, 0, more: false, id: 7)));
        ShouldDeliverOneDatagram(true);
        _bed.Stack.Reassembler.DatagramCount.Should().Be(0);
    }

    [Fact]
    public void An_unknown_next_header_is_answered_with_a_parameter_problem_pointing_at_it()
    {
        var packet = WithExtensions(60, TestPackets.ExtensionHeader(253, Options()));
        _bed.Inject(packet);

        ShouldDropOnly(StackDropReason.IpUnknownProtocol);
        var reply = _bed.Link.DrainParsed().Should().ContainSingle().Subject;
        reply.Protocol.Should().Be(TestPackets.IcmpV6);
        reply.Payload[0].Should().Be(4, "parameter problem");
        reply.Payload[1].Should().Be(1, "unrecognized next header");
        BinaryPrimitives.ReadUInt32BigEndian(reply.Payload.AsSpan(4)).Should().Be(40u, "the destination options header's next-header field");
        TestPackets.TransportChecksum(LocalV6, RemoteV6, TestPackets.IcmpV6, reply.Payload).Should().Be(0);
        reply.Payload[8..].Should().Equal(packet);
    }

    [Fact]
    public void No_next_header_is_dropped_silently()
    {
        _bed.Inject(TestPackets.Ipv6(RemoteV6, LocalV6, 59, []));
        ShouldDropOnly(StackDropReason.IpUnknownProtocol);
        _bed.Link.Count.Should().Be(0);
    }

    [Fact]
    public void ICMPv4_inside_IPv6_is_an_unknown_protocol()
    {
        _bed.Inject(TestPackets.Ipv6(RemoteV6, LocalV6, TestPackets.Icmp, new byte[8]));
        ShouldDropOnly(StackDropReason.IpUnknownProtocol);
    }

    [Fact]
    public void Packets_after_disposal_are_counted_and_dropped()
    {
        _bed.Stack.Dispose();
        _bed.Inject(Udp(false));
        ShouldDropOnly(StackDropReason.StackDisposed);
        _bed.Counters.PacketsReceived.Should().Be(1);
    }
}
