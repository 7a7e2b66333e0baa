using System.Net;
using MeshNet.Userspace.Net;
using MeshNet.Userspace.Stack;
using MeshNet.Userspace.Stack.Icmp;
using MeshNet.Userspace.Stack.Ip;
using Microsoft.Extensions.Logging.Abstractions;
using static MeshNet.Userspace.Tests.Stack.StackTestBed;

namespace MeshNet.Userspace.Tests.Stack;

/// <summary>Inbound ICMP errors: validated, mapped, and handed to the transport the quote names.</summary>
[Trait("Category", "Unit")]
public sealed class IcmpInboundErrorTests
{
    private readonly StackContext _context;
    private readonly FakeTransport _udp = new();
    private readonly FakeTransport _tcp = new();
    private readonly IcmpLayer _icmp;

    public IcmpInboundErrorTests()
    {
        var options = new IpStackOptions { Link = new RecordingLink(), Addresses = [LocalV4, LocalV6] };
        _context = new StackContext(options, NullLogger.Instance);
        _context.Output = new IpOutput(_context);
        _icmp = new IcmpLayer(_context, _udp, _tcp);
    }

    /// <summary>A packet we sent to the remote: UDP or TCP (20-byte header) with some data.</summary>
    private static byte[] OurPacket(bool v6, byte protocol)
    {
        var transport = new byte[protocol == TestPackets.Tcp ? 40 : 30];
        transport[0] = 0xC0; // source port 49152 + ...
        transport[1] = 0x01;
        transport[3] = 53;
        return TestPackets.Ip(Local(v6), Remote(v6), protocol, transport);
    }

    private void Receive(bool v6, byte type, byte code, uint rest, byte[] quote, IPAddress? from = null)
    {
        from ??= Remote(v6);
        var message = TestPackets.IcmpMessage(from, Local(v6), type, code, rest, quote);
        var packet = TestPackets.Ip(from, Local(v6), v6 ? TestPackets.IcmpV6 : TestPackets.Icmp, message);
        var info = new IpPacketInfo(NetAddress.FromIPAddress(from), NetAddress.FromIPAddress(Local(v6)),
            v6 ? TestPackets.IcmpV6 : TestPackets.Icmp, 64, 0, packet);
        if (v6)
        {
            _icmp.OnIcmpV6(info, message);
        }
        else
        {
            _icmp.OnIcmpV4(info, message);
        }
    }

    [Theory]
    [InlineData(false, (byte)3, (byte)3, (int)IcmpErrorKind.PortUnreachable)]
    [InlineData(false, (byte)3, (byte)2, (int)IcmpErrorKind.PortUnreachable)]
    [InlineData(false, (byte)3, (byte)1, (int)IcmpErrorKind.HostUnreachable)]
    [InlineData(false, (byte)3, (byte)9, (int)IcmpErrorKind.AdministrativelyProhibited)]
    [InlineData(false, (byte)3, (byte)10, (int)IcmpErrorKind.AdministrativelyProhibited)]
    [InlineData(false, (byte)3, (byte)13, (int)IcmpErrorKind.AdministrativelyProhibited)]
    [InlineData(false, (byte)11, (byte)0, (int)IcmpErrorKind.TimeExceeded)]
    [InlineData(true, (byte)1, (byte)4, (int)IcmpErrorKind.PortUnreachable)]
    [InlineData(true, (byte)1, (byte)0, (int)IcmpErrorKind.HostUnreachable)]
    [InlineData(true, (byte)1, (byte)1, (int)IcmpErrorKind.AdministrativelyProhibited)]
    [InlineData(true, (byte)1, (byte)3, (int)IcmpErrorKind.HostUnreachable)]
    [InlineData(true, (byte)3, (byte)0, (int)IcmpErrorKind.TimeExceeded)]
    [InlineData(true, (byte)4, (byte)1, (int)IcmpErrorKind.PortUnreachable)]
    public void An_error_about_our_UDP_datagram_reaches_UDP(bool v6, byte type, byte code, int kind)
    {
        var quote = OurPacket(v6, TestPackets.Udp);
        Receive(v6, type, code, 0, quote);

        var error = _udp.Errors.Should().ContainSingle().Subject;
        error.Kind.Should().Be((IcmpErrorKind)kind);
        error.Quoted.Should().Equal(quote);
        _tcp.Errors.Should().BeEmpty();
        _context.Counters.IcmpErrorsReceived.Should().Be(1);
        _context.Counters.TotalDropped.Should().Be(0);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void An_error_about_our_TCP_segment_reaches_TCP(bool v6)
    {
        Receive(v6, v6 ? (byte)1 : (byte)3, v6 ? (byte)4 : (byte)3, 0, OurPacket(v6, TestPackets.Tcp));
        _tcp.Errors.Should().ContainSingle().Which.Kind.Should().Be(IcmpErrorKind.PortUnreachable);
        _udp.Errors.Should().BeEmpty();
    }

    [Theory]
    [InlineData(1300, 1300)]
    [InlineData(68, 576)]
    [InlineData(0, 576)]
    public void Fragmentation_needed_carries_the_next_hop_MTU(int reported, int expected)
    {
        Receive(false, 3, 4, (uint)reported, OurPacket(false, TestPackets.Tcp));
        var error = _tcp.Errors.Should().ContainSingle().Subject;
        error.Kind.Should().Be(IcmpErrorKind.PacketTooBig);
        error.Mtu.Should().Be(expected);
    }

    [Theory]
    [InlineData(1400u, 1400)]
    [InlineData(1000u, 1280)]
    [InlineData(0xFFFF_FFFFu, 65535)]
    public void Packet_too_big_carries_the_MTU(uint reported, int expected)
    {
        Receive(true, 2, 0, reported, OurPacket(true, TestPackets.Tcp));
        var error = _tcp.Errors.Should().ContainSingle().Subject;
        error.Kind.Should().Be(IcmpErrorKind.PacketTooBig);
        error.Mtu.Should().Be(expected);
    }

    [Fact]
    public void An_IPv6_quote_with_extension_headers_is_understood()
    {
        var udp = new byte[30];
        var payload = TestPackets.Concat(TestPackets.ExtensionHeader(TestPackets.Udp, new byte[6]), udp);
        var quote = TestPackets.Ipv6(LocalV6, RemoteV6, 60, payload);
        Receive(true, 1, 4, 0, quote);
        _udp.Errors.Should().ContainSingle();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void An_error_quoting_a_packet_we_did_not_send_is_dropped(bool v6)
    {
        var quote = TestPackets.Ip(Remote(v6), Local(v6), TestPackets.Udp, new byte[30]);
        Receive(v6, v6 ? (byte)1 : (byte)3, 3, 0, quote);
        _udp.Errors.Should().BeEmpty();
        _context.Counters[StackDropReason.IcmpBadQuote].Should().Be(1);
    }

    [Theory]
    [InlineData(false, 27)]  // IPv4 header + 7 bytes
    [InlineData(false, 10)]
    [InlineData(true, 47)]   // IPv6 header + 7 bytes
    [InlineData(true, 20)]
    public void An_error_with_too_short_a_quote_is_dropped(bool v6, int length)
    {
        var quote = OurPacket(v6, TestPackets.Udp)[..length];
        Receive(v6, v6 ? (byte)1 : (byte)3, 3, 0, quote);
        _udp.Errors.Should().BeEmpty();
        _context.Counters[StackDropReason.IcmpBadQuote].Should().Be(1);
    }

    [Fact]
    public void An_error_quoting_a_non_first_fragment_is_dropped()
    {
        var quote = TestPackets.Ipv4(LocalV4, RemoteV4, TestPackets.Udp, new byte[30], flagsAndOffset: 10);
        Receive(false, 3, 3, 0, quote);
        _udp.Errors.Should().BeEmpty();
        _context.Counters[StackDropReason.IcmpBadQuote].Should().Be(1);
    }

    [Fact]
    public void An_IPv4_quote_in_an_ICMPv6_error_is_dropped()
    {
        Receive(true, 1, 4, 0, OurPacket(false, TestPackets.Udp));
        _udp.Errors.Should().BeEmpty();
        _context.Counters[StackDropReason.IcmpBadQuote].Should().Be(1);
    }

    [Fact]
    public void An_error_about_our_own_ICMP_message_is_ignored()
    {
        Receive(false, 3, 3, 0, TestPackets.Ip(LocalV4, RemoteV4, TestPackets.Icmp, new byte[16]));
        _udp.Errors.Should().BeEmpty();
        _tcp.Errors.Should().BeEmpty();
        _context.Counters[StackDropReason.IcmpIgnored].Should().Be(1);
    }

    [Fact]
    public void Other_parameter_problems_are_ignored()
    {
        Receive(true, 4, 0, 6, OurPacket(true, TestPackets.Udp));
        _udp.Errors.Should().BeEmpty();
        _context.Counters[StackDropReason.IcmpIgnored].Should().Be(1);
    }

    private sealed class FakeTransport : ITransportHandler
    {
        public List<(IcmpErrorKind Kind, int Mtu, byte[] Quoted)> Errors { get; } = [];

        public void OnPacket(in IpPacketInfo ip, Span<byte> payload)
        {
        }

        public void OnIcmpError(IcmpErrorKind kind, int mtu, ReadOnlySpan<byte> quoted) => Errors.Add((kind, mtu, quoted.ToArray()));
    }
}
