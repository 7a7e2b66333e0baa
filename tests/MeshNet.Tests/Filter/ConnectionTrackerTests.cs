using MeshNet.Filter;
using MeshNet.Userspace.Stack;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using static MeshNet.Tests.Filter.FilterTestData;

namespace MeshNet.Tests.Filter;

/// <summary>Connection tracking on fake time: idle timeouts per protocol, TCP closing, the size bound, the sweep.</summary>
[Trait("Category", "Unit")]
public sealed class ConnectionTrackerTests : IDisposable
{
    private const string Self = "100.64.0.1";
    private const string Peer = "100.64.0.2";

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly PacketFilter _filter;

    public ConnectionTrackerTests()
    {
        _filter = new PacketFilter(_time, NullLogger.Instance, new ConnectionTrackingOptions { MaxFlows = 3 });
        _filter.Update(NoChunks, enforced: true, policyVersion: 1); // nothing admitted but replies
    }

    public void Dispose() => _filter.Dispose();

    private FilterVerdict In(DatagramHeaders datagram) => _filter.Inspect(datagram);

    [Fact]
    public void A_UDP_flow_expires_after_two_idle_minutes_and_traffic_keeps_it_alive()
    {
        _filter.OnSent(UdpDatagram(Self, 5000, Peer, 53));
        _time.Advance(TimeSpan.FromSeconds(100));
        In(UdpDatagram(Peer, 53, Self, 5000)).Should().Be(FilterVerdict.Accept);
        _time.Advance(TimeSpan.FromSeconds(100));
        In(UdpDatagram(Peer, 53, Self, 5000)).Should().Be(FilterVerdict.Accept, "the reply refreshed the flow");
        _time.Advance(TimeSpan.FromMinutes(2));
        In(UdpDatagram(Peer, 53, Self, 5000)).Should().Be(FilterVerdict.Reject);
    }

    [Fact]
    public void An_echo_flow_expires_after_30_seconds()
    {
        _filter.OnSent(Echo(Self, Peer, 9, request: true));
        _time.Advance(TimeSpan.FromSeconds(29));
        In(Echo(Peer, Self, 9, request: false)).Should().Be(FilterVerdict.Accept);
        _time.Advance(TimeSpan.FromSeconds(30));
        In(Echo(Peer, Self, 9, request: false)).Should().Be(FilterVerdict.Drop);
    }

    [Fact]
    public void An_unanswered_SYN_expires_after_two_minutes_an_answered_connection_lives_long()
    {
        _filter.OnSent(TcpSegment(Self, 50000, Peer, 80, Syn));
        _filter.OnSent(TcpSegment(Self, 50001, Peer, 80, Syn));
        In(TcpSegment(Peer, 80, Self, 50001, SynAck)).Should().Be(FilterVerdict.Accept);
        _time.Advance(TimeSpan.FromMinutes(3));
        In(TcpSegment(Peer, 80, Self, 50000, SynAck)).Should().Be(FilterVerdict.Drop);
        In(TcpSegment(Peer, 80, Self, 50001, Ack)).Should().Be(FilterVerdict.Accept);
        _time.Advance(TimeSpan.FromDays(6));
        In(TcpSegment(Peer, 80, Self, 50001, Ack)).Should().Be(FilterVerdict.Drop);
    }

    [Fact]
    public void A_TCP_flow_closed_by_FIN_both_ways_lingers_briefly()
    {
        _filter.OnSent(TcpSegment(Self, 50000, Peer, 80, Syn));
        In(TcpSegment(Peer, 80, Self, 50000, SynAck)).Should().Be(FilterVerdict.Accept);
        _filter.OnSent(TcpSegment(Self, 50000, Peer, 80, Fin));
        _time.Advance(TimeSpan.FromMinutes(30));
        In(TcpSegment(Peer, 80, Self, 50000, Fin)).Should().Be(FilterVerdict.Accept, "half closed: still tracked");
        _time.Advance(TimeSpan.FromSeconds(5));
        In(TcpSegment(Peer, 80, Self, 50000, Ack)).Should().Be(FilterVerdict.Accept, "a retransmitted FIN during the linger");
        _time.Advance(TimeSpan.FromSeconds(11));
        In(TcpSegment(Peer, 80, Self, 50000, Ack)).Should().Be(FilterVerdict.Drop);
    }

    [Fact]
    public void A_RST_ends_a_TCP_flow_after_the_linger()
    {
        _filter.OnSent(TcpSegment(Self, 50000, Peer, 80, Syn));
        In(TcpSegment(Peer, 80, Self, 50000, (byte)(Rst | Ack))).Should().Be(FilterVerdict.Accept);
        _time.Advance(TimeSpan.FromSeconds(11));
        In(TcpSegment(Peer, 80, Self, 50000, SynAck)).Should().Be(FilterVerdict.Drop);
    }

    [Fact]
    public void A_new_SYN_on_a_lingering_tuple_starts_over()
    {
        _filter.OnSent(TcpSegment(Self, 50000, Peer, 80, Syn));
        _filter.OnSent(TcpSegment(Self, 50000, Peer, 80, Rst));
        _time.Advance(TimeSpan.FromSeconds(5));
        _filter.OnSent(TcpSegment(Self, 50000, Peer, 80, Syn));
        _time.Advance(TimeSpan.FromSeconds(30));
        In(TcpSegment(Peer, 80, Self, 50000, SynAck)).Should().Be(FilterVerdict.Accept);
    }

    [Fact]
    public void Only_a_SYN_opens_a_TCP_flow()
    {
        _filter.OnSent(TcpSegment(Self, 22, Peer, 40000, SynAck)); // answering a peer's connection
        _filter.OnSent(TcpSegment(Self, 22, Peer, 40000, Ack));
        In(TcpSegment(Peer, 40000, Self, 22, Ack)).Should().Be(FilterVerdict.Drop);
        _filter.Tracker.Count.Should().Be(0);
    }

    [Fact]
    public void The_table_is_bounded_and_evicts_the_oldest_flow()
    {
        for (ushort port = 1; port <= 4; port++)
        {
            _filter.OnSent(UdpDatagram(Self, port, Peer, 53));
            _time.Advance(TimeSpan.FromSeconds(1));
        }
        _filter.Tracker.Count.Should().Be(3);
        _filter.Tracker.Evictions.Should().Be(1);
        In(UdpDatagram(Peer, 53, Self, 1)).Should().Be(FilterVerdict.Reject, "the oldest flow was evicted");
        In(UdpDatagram(Peer, 53, Self, 4)).Should().Be(FilterVerdict.Accept);
    }

    [Fact]
    public void The_sweep_removes_expired_flows_on_the_timer()
    {
        _filter.OnSent(UdpDatagram(Self, 1, Peer, 53));
        _filter.OnSent(Echo(Self, Peer, 1, request: true));
        _filter.Tracker.Count.Should().Be(2);
        _time.Advance(TimeSpan.FromSeconds(60)); // two sweeps: the echo flow expired, the UDP one not yet
        _filter.Tracker.Count.Should().Be(1);
        _time.Advance(TimeSpan.FromSeconds(90));
        _filter.Tracker.Count.Should().Be(0);
    }

    [Fact]
    public void Outbound_flows_are_tracked_before_enforcement_starts()
    {
        using var filter = new PacketFilter(_time, NullLogger.Instance);
        filter.OnSent(TcpSegment(Self, 50000, Peer, 80, Syn));
        filter.Update(NoChunks, enforced: true, policyVersion: 1);
        filter.Inspect(TcpSegment(Peer, 80, Self, 50000, SynAck)).Should().Be(FilterVerdict.Accept);
    }
}
