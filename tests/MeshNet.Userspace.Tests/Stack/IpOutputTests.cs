using System.Buffers.Binary;
using System.Net;
using MeshNet.Userspace.Link;
using MeshNet.Userspace.Net;
using MeshNet.Userspace.Stack;
using MeshNet.Userspace.Stack.Ip;
using Microsoft.Extensions.Logging.Abstractions;
using static MeshNet.Userspace.Tests.Stack.StackTestBed;

namespace MeshNet.Userspace.Tests.Stack;

/// <summary>IP output: headers, identification, fragmentation, and fragments reassembled by a stack.</summary>
[Trait("Category", "Unit")]
public sealed class IpOutputTests
{
    private readonly RecordingLink _link = new();
    private readonly StackContext _context;
    private readonly IpOutput _output;

    public IpOutputTests()
    {
        var options = new IpStackOptions { Link = _link, Addresses = [LocalV4, LocalV6], Mtu = 1280 };
        _context = new StackContext(options, NullLogger.Instance);
        _output = new IpOutput(_context);
        _context.Output = _output;
    }

    private static NetAddress N(IPAddress address) => NetAddress.FromIPAddress(address);

    private static byte[] Transport(int length, int seed = 1)
    {
        var buffer = new byte[IIpOutput.HeaderRoom + length];
        new Random(seed).NextBytes(buffer.AsSpan(IIpOutput.HeaderRoom));
        return buffer;
    }

    [Fact]
    public void An_IPv4_packet_gets_a_valid_header()
    {
        var buffer = Transport(100);
        _output.Send(N(LocalV4), N(RemoteV4), TestPackets.Udp, buffer, 100, trafficClass: 0xB8).Should().BeTrue();

        var packet = _link.Drain().Should().ContainSingle().Subject;
        packet.Length.Should().Be(120);
        packet[0].Should().Be(0x45);
        packet[1].Should().Be(0xB8, "the traffic class becomes the TOS byte");
        var parsed = TestPackets.Parse(packet);
        parsed.Source.Should().Be(LocalV4);
        parsed.Destination.Should().Be(RemoteV4);
        parsed.Protocol.Should().Be(TestPackets.Udp);
        parsed.HopLimit.Should().Be(64);
        parsed.IsFragment.Should().BeFalse();
        parsed.DontFragment.Should().BeFalse("only TCP sets DF");
        parsed.Payload.Should().Equal(buffer[IIpOutput.HeaderRoom..]);
        _context.Counters.PacketsSent.Should().Be(1);
    }

    [Fact]
    public void TCP_packets_carry_dont_fragment()
    {
        _output.Send(N(LocalV4), N(RemoteV4), TestPackets.Tcp, Transport(40), 40).Should().BeTrue();
        TestPackets.Parse(_link.Drain()[0]).DontFragment.Should().BeTrue();
    }

    [Fact]
    public void IPv4_identification_advances_per_destination()
    {
        for (int i = 0; i < 3; i++)
        {
            _output.Send(N(LocalV4), N(RemoteV4), TestPackets.Udp, Transport(8), 8);
        }
        var ids = _link.DrainParsed().Select(packet => (int)packet.Id).ToList();
        ids[1].Should().Be((ids[0] + 1) & 0xFFFF);
        ids[2].Should().Be((ids[1] + 1) & 0xFFFF);
    }

    [Fact]
    public void An_IPv6_packet_gets_a_valid_header()
    {
        var buffer = Transport(100);
        _output.Send(N(LocalV6), N(RemoteV6), TestPackets.Udp, buffer, 100, trafficClass: 0xB8).Should().BeTrue();

        var packet = _link.Drain().Should().ContainSingle().Subject;
        packet.Length.Should().Be(140);
        BinaryPrimitives.ReadUInt32BigEndian(packet).Should().Be(0x6B80_0000u, "version 6, traffic class 0xB8, flow label 0");
        var parsed = TestPackets.Parse(packet);
        parsed.Source.Should().Be(LocalV6);
        parsed.Destination.Should().Be(RemoteV6);
        parsed.Protocol.Should().Be(TestPackets.Udp);
        parsed.HopLimit.Should().Be(64);
        parsed.Payload.Should().Equal(buffer[IIpOutput.HeaderRoom..]);
    }

    [Theory]
    [InlineData(1240)] // exactly the MTU with an IPv6 header
    [InlineData(1260)] // exactly the MTU with an IPv4 header
    public void A_packet_of_exactly_the_MTU_is_not_fragmented(int length)
    {
        bool v6 = length == 1240;
        _output.Send(N(Local(v6)), N(Remote(v6)), TestPackets.Udp, Transport(length), length).Should().BeTrue();
        var packet = _link.DrainParsed().Should().ContainSingle().Subject;
        packet.Raw.Length.Should().Be(1280);
        packet.IsFragment.Should().BeFalse();
    }

    [Theory]
    [InlineData(false, 1261)]
    [InlineData(false, 3000)]
    [InlineData(false, 65515)]
    [InlineData(true, 1241)]
    [InlineData(true, 3000)]
    [InlineData(true, 65535)]
    public void A_larger_packet_is_fragmented_within_the_MTU(bool v6, int length)
    {
        var buffer = Transport(length);
        _output.Send(N(Local(v6)), N(Remote(v6)), TestPackets.Udp, buffer, length).Should().BeTrue();

        var fragments = _link.DrainParsed();
        fragments.Count.Should().BeGreaterThan(1);
        fragments.Should().OnlyContain(fragment => fragment.Raw.Length <= 1280 && fragment.IsFragment && !fragment.DontFragment);
        fragments.Take(fragments.Count - 1).Should().OnlyContain(fragment => fragment.MoreFragments && fragment.Payload.Length % 8 == 0);
        fragments.Should().OnlyContain(fragment => fragment.Protocol == TestPackets.Udp);
        TestPackets.Join(fragments).Should().Equal(buffer[IIpOutput.HeaderRoom..]);
        _context.Counters.DatagramsFragmented.Should().Be(1);
        _context.Counters.PacketsSent.Should().Be(fragments.Count);
    }

    [Fact]
    public void IPv6_fragment_identifications_are_random_per_datagram()
    {
        for (int i = 0; i < 4; i++)
        {
            _output.Send(N(LocalV6), N(RemoteV6), TestPackets.Udp, Transport(2000), 2000);
        }
        var ids = _link.DrainParsed().Select(fragment => fragment.Id).Distinct().ToList();
        ids.Should().HaveCount(4, "each datagram has its own identification, shared by its fragments");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Output_fragments_round_trip_through_the_reassembler(bool v6)
    {
        using var bed = new StackTestBed();
        using var socket = bed.Stack.BindUdp(new IPEndPoint(Local(v6), 7000));
        var data = new byte[10_000];
        new Random(5).NextBytes(data);
        var udp = TestPackets.UdpSegment(Remote(v6), Local(v6), 5000, 7000, data);
        var buffer = new byte[IIpOutput.HeaderRoom + udp.Length];
        udp.CopyTo(buffer, IIpOutput.HeaderRoom);
        _output.Send(N(Remote(v6)), N(Local(v6)), TestPackets.Udp, buffer, udp.Length).Should().BeTrue();

        var fragments = _link.Drain();
        fragments.Count.Should().Be(v6 ? 9 : 8);
        fragments.Reverse();
        bed.InjectAll(fragments);

        var received = new byte[20_000];
        var result = socket.ReceiveFromAsync(received).AsTask();
        result.IsCompletedSuccessfully.Should().BeTrue(bed.Counters.ToString());
        received[..data.Length].Should().Equal(data);
        bed.Counters.DatagramsReassembled.Should().Be(1);
    }

    [Fact]
    public void Oversized_mismatched_and_closed_sends_fail()
    {
        _output.Send(N(LocalV4), N(RemoteV4), TestPackets.Udp, Transport(65516), 65516).Should().BeFalse("over 65,535 bytes with the header");
        _output.Send(N(LocalV6), N(RemoteV6), TestPackets.Udp, Transport(65536), 65536).Should().BeFalse();
        _output.Send(N(LocalV4), N(RemoteV6), TestPackets.Udp, Transport(10), 10).Should().BeFalse("mixed families");
        _output.Send(N(LocalV4), N(RemoteV4), TestPackets.Udp, Transport(10), 11).Should().BeFalse("the buffer is too short");
        _output.Close();
        _output.Send(N(LocalV4), N(RemoteV4), TestPackets.Udp, Transport(10), 10).Should().BeFalse("closed");
        _link.Count.Should().Be(0);
    }

    [Fact]
    public void The_largest_transport_payload_leaves_room_for_the_header()
    {
        _output.MaxTransportPayload(N(RemoteV4)).Should().Be(1260);
        _output.MaxTransportPayload(N(RemoteV6)).Should().Be(1240);
    }

    [Fact]
    public void A_link_that_throws_fails_the_send_without_throwing()
    {
        var options = new IpStackOptions { Link = new ThrowingLink(), Addresses = [LocalV4], Mtu = 1280 };
        var context = new StackContext(options, NullLogger.Instance);
        var output = new IpOutput(context);
        output.Send(N(LocalV4), N(RemoteV4), TestPackets.Udp, Transport(10), 10).Should().BeFalse();
        context.Counters.PacketsSent.Should().Be(0);
    }

    private sealed class ThrowingLink : IPacketSink
    {
        public void WritePacket(ReadOnlySpan<byte> packet) => throw new InvalidOperationException("broken link");
    }
}
