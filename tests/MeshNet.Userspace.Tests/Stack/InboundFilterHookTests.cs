using System.Buffers.Binary;
using System.Net;
using MeshNet.Userspace.Net;
using MeshNet.Userspace.Stack;
using static MeshNet.Userspace.Tests.Stack.StackTestBed;

namespace MeshNet.Userspace.Tests.Stack;

/// <summary>
/// The stack's inbound filter hook (<see cref="IpStackOptions.InboundFilter"/>): what the filter
/// is shown (whole datagrams, parsed headers), what the stack does with each verdict, and what
/// it reports of the datagrams it sends.
/// </summary>
[Trait("Category", "Unit")]
public sealed class InboundFilterHookTests : IDisposable
{
    private readonly RecordingFilter _filter = new();
    private readonly StackTestBed _bed;

    public InboundFilterHookTests()
    {
        _bed = new StackTestBed(options => options.InboundFilter = _filter);
    }

    public void Dispose() => _bed.Dispose();

    private static byte[] TcpSegment(IPAddress source, IPAddress destination, ushort sourcePort, ushort destinationPort, byte flags)
    {
        var tcp = new byte[20];
        BinaryPrimitives.WriteUInt16BigEndian(tcp, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(2), destinationPort);
        BinaryPrimitives.WriteUInt32BigEndian(tcp.AsSpan(4), 1000);
        tcp[12] = 5 << 4;
        tcp[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(14), 65535);
        BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(16), TestPackets.TransportChecksum(source, destination, TestPackets.Tcp, tcp));
        return TestPackets.Ip(source, destination, TestPackets.Tcp, tcp);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_filter_sees_a_TCP_SYN_with_its_flow_and_flags(bool v6)
    {
        _filter.Verdict = FilterVerdict.Drop;
        _bed.Inject(TcpSegment(Remote(v6), Local(v6), 40000, 8080, DatagramHeaders.TcpSyn));

        var seen = _filter.Inbound.Should().ContainSingle().Subject;
        seen.Flow.Should().Be(new FlowTuple(TestPackets.Tcp, NetAddress.FromIPAddress(Remote(v6)), 40000, NetAddress.FromIPAddress(Local(v6)), 8080));
        seen.TcpFlags.Should().Be(DatagramHeaders.TcpSyn);
        seen.IsTcpConnectionRequest.Should().BeTrue();
        _bed.Link.Drain().Should().BeEmpty("a dropped SYN is not answered, not even with a RST");
        _bed.Drops.Should().Equal(new Dictionary<StackDropReason, long> { [StackDropReason.FilterDenied] = 1 });
    }

    [Theory]
    [InlineData(false, 3, 13)]
    [InlineData(true, 1, 1)]
    public void A_rejected_SYN_is_answered_with_administratively_prohibited_quoting_it(bool v6, int type, int code)
    {
        _filter.Verdict = FilterVerdict.Reject;
        var syn = TcpSegment(Remote(v6), Local(v6), 40000, 8080, DatagramHeaders.TcpSyn);
        _bed.Inject(syn);

        var error = _bed.Link.DrainParsed().Should().ContainSingle().Subject;
        error.Destination.Should().Be(Remote(v6));
        error.Protocol.Should().Be(v6 ? TestPackets.IcmpV6 : TestPackets.Icmp);
        error.Payload[0].Should().Be((byte)type);
        error.Payload[1].Should().Be((byte)code);
        error.Payload.AsSpan(8).ToArray().Should().Equal(syn);
        _bed.Counters.IcmpErrorsSent.Should().Be(1);
    }

    [Fact]
    public void Rejections_share_the_ICMP_error_rate_limit()
    {
        using var bed = new StackTestBed(options =>
        {
            options.InboundFilter = new RecordingFilter { Verdict = FilterVerdict.Reject };
            options.IcmpErrorsPerSecond = 2;
        });
        for (int i = 0; i < 5; i++)
        {
            bed.Inject(TestPackets.UdpPacket(RemoteV4, LocalV4, (ushort)(1000 + i), 53, "q"u8));
        }
        bed.Link.Drain().Should().HaveCount(2);
        bed.Counters[StackDropReason.IcmpRateLimited].Should().Be(3);
        bed.Counters[StackDropReason.FilterDenied].Should().Be(5);
    }

    [Fact]
    public void An_ICMP_message_is_never_answered_with_an_ICMP_error_even_when_rejected()
    {
        _filter.Verdict = FilterVerdict.Reject;
        _bed.Inject(TestPackets.EchoRequest(RemoteV4, LocalV4, 7, 1, "ping"u8));
        _bed.Link.Drain().Should().BeEmpty();
        _filter.Inbound.Should().ContainSingle().Which.IsIcmpEchoRequest.Should().BeTrue();
        _filter.Inbound[0].Flow.SourcePort.Should().Be(7, "an echo's identifier stands in for the ports");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Fragments_are_judged_once_as_the_whole_datagram(bool v6)
    {
        _filter.Verdict = FilterVerdict.Accept;
        using var socket = _bed.Stack.BindUdp(new IPEndPoint(Local(v6), 53));
        var payload = TestPackets.UdpSegment(Remote(v6), Local(v6), 1000, 53, new byte[3000]);
        _bed.InjectAll(TestPackets.Fragments(Remote(v6), Local(v6), TestPackets.Udp, payload, 1024, 77));

        var seen = _filter.Inbound.Should().ContainSingle().Subject;
        seen.Flow.DestinationPort.Should().Be(53);
        seen.IsTruncated.Should().BeFalse();
        _bed.Counters.UdpDatagramsReceived.Should().Be(1);
    }

    [Fact]
    public void An_accepted_datagram_reaches_its_transport()
    {
        _filter.Verdict = FilterVerdict.Accept;
        _bed.Inject(TestPackets.EchoRequest(RemoteV4, LocalV4, 7, 1, "ping"u8));
        _bed.Counters.IcmpEchoRepliesSent.Should().Be(1);
    }

    [Fact]
    public void An_ICMP_error_shows_the_flow_it_quotes()
    {
        _filter.Verdict = FilterVerdict.Drop;
        var ours = TestPackets.UdpPacket(LocalV4, RemoteV4, 5000, 53, "query"u8);
        var error = TestPackets.IcmpMessage(RemoteV4, LocalV4, 3, 3, 0, ours);
        _bed.Inject(TestPackets.Ip(RemoteV4, LocalV4, TestPackets.Icmp, error));

        var seen = _filter.Inbound.Should().ContainSingle().Subject;
        seen.IsIcmpError.Should().BeTrue();
        seen.QuotedFlow.Should().Be(new FlowTuple(TestPackets.Udp, NetAddress.FromIPAddress(LocalV4), 5000, NetAddress.FromIPAddress(RemoteV4), 53));
    }

    [Fact]
    public void A_TCP_header_too_short_to_read_is_shown_as_truncated()
    {
        _filter.Verdict = FilterVerdict.Drop;
        _bed.Inject(TestPackets.Ip(RemoteV4, LocalV4, TestPackets.Tcp, new byte[10]));
        _filter.Inbound.Should().ContainSingle().Which.IsTruncated.Should().BeTrue();
    }

    [Fact]
    public void Every_datagram_the_stack_sends_is_reported_with_its_headers()
    {
        using var socket = _bed.Stack.BindUdp(new IPEndPoint(LocalV4, 5000));
        socket.SendTo("hello"u8, new IPEndPoint(RemoteV4, 53));
        _ = _bed.Stack.ConnectTcpAsync(new IPEndPoint(RemoteV6, 443));

        _filter.Outbound.Should().HaveCount(2);
        _filter.Outbound[0].Flow.Should().Be(new FlowTuple(TestPackets.Udp, NetAddress.FromIPAddress(LocalV4), 5000, NetAddress.FromIPAddress(RemoteV4), 53));
        _filter.Outbound[1].IsTcpConnectionRequest.Should().BeTrue();
        _filter.Outbound[1].Flow.Destination.Should().Be(NetAddress.FromIPAddress(RemoteV6));
        _filter.Outbound[1].Flow.DestinationPort.Should().Be(443);
    }

    /// <summary>A filter that answers a fixed verdict and records what it is shown.</summary>
    private sealed class RecordingFilter : IInboundPacketFilter
    {
        private readonly Lock _lock = new();

        public FilterVerdict Verdict { get; set; } = FilterVerdict.Accept;

        public List<DatagramHeaders> Inbound { get; } = [];

        public List<DatagramHeaders> Outbound { get; } = [];

        public FilterVerdict Inspect(in DatagramHeaders datagram)
        {
            lock (_lock)
            {
                Inbound.Add(datagram);
            }
            return Verdict;
        }

        public void OnSent(in DatagramHeaders datagram)
        {
            lock (_lock)
            {
                Outbound.Add(datagram);
            }
        }
    }
}
