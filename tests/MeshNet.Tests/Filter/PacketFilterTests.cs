using MeshNet.Filter;
using MeshNet.Userspace.Stack;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using static MeshNet.Tests.Filter.FilterTestData;

namespace MeshNet.Tests.Filter;

/// <summary>
/// The node's filter on crafted datagrams: rules for what peers open, connection tracking for
/// what this node opened (replies, ICMP errors about its packets), verdicts and denial reasons.
/// This node is 100.64.0.1 / fd7a:115c:a1e0::1; the peer 100.64.0.2 / fd7a:115c:a1e0::2.
/// </summary>
[Trait("Category", "Unit")]
public sealed class PacketFilterTests : IDisposable
{
    private const string Self = "100.64.0.1";
    private const string Peer = "100.64.0.2";
    private const string Self6 = "fd7a:115c:a1e0::1";
    private const string Peer6 = "fd7a:115c:a1e0::2";

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly PacketFilter _filter;

    public PacketFilterTests()
    {
        _filter = new PacketFilter(_time, NullLogger.Instance, new ConnectionTrackingOptions { MaxFlows = 4 });
        // The peer may reach TCP 22 and UDP 53; ping needs its own rule.
        _filter.Update(Chunks(Rule([Peer, Peer6], [("*", 22, 22)], Tcp), Rule([Peer], [("*", 53, 53)], Udp)), enforced: true, policyVersion: 3);
    }

    public void Dispose() => _filter.Dispose();

    private FilterVerdict In(DatagramHeaders datagram) => _filter.Inspect(datagram);

    private void Out(DatagramHeaders datagram) => _filter.OnSent(datagram);

    [Fact]
    public void Until_a_policy_is_enforced_everything_is_admitted()
    {
        using var filter = new PacketFilter(_time, NullLogger.Instance);
        filter.Inspect(TcpSegment(Peer, 40000, Self, 8080, Syn)).Should().Be(FilterVerdict.Accept);
        filter.Inspect(Echo(Peer, Self, 1, request: false)).Should().Be(FilterVerdict.Accept);
        filter.Enforced.Should().BeFalse();
        filter.TotalDenied.Should().Be(0);
    }

    [Fact]
    public void A_connection_the_rules_admit_is_admitted_in_every_segment()
    {
        In(TcpSegment(Peer, 40000, Self, 22, Syn)).Should().Be(FilterVerdict.Accept);
        In(TcpSegment(Peer, 40000, Self, 22, Ack)).Should().Be(FilterVerdict.Accept);
        In(TcpSegment(Peer6, 40000, Self6, 22, Fin)).Should().Be(FilterVerdict.Accept);
        _filter.TotalDenied.Should().Be(0);
    }

    [Fact]
    public void A_connection_request_the_rules_deny_is_rejected_other_segments_dropped()
    {
        In(TcpSegment(Peer, 40000, Self, 8080, Syn)).Should().Be(FilterVerdict.Reject);
        In(TcpSegment(Peer, 40000, Self, 8080, Ack)).Should().Be(FilterVerdict.Drop);
        In(TcpSegment("100.64.0.3", 40000, Self, 22, Syn)).Should().Be(FilterVerdict.Reject, "the source is not in the rule");
        In(UdpDatagram(Peer, 5000, Self, 54)).Should().Be(FilterVerdict.Reject);
        _filter.Denied(MeshPolicyDenialReason.NoRule).Should().Be(4);
    }

    [Fact]
    public void Replies_in_flows_this_node_opened_are_admitted()
    {
        Out(TcpSegment(Self, 50000, Peer, 8080, Syn));
        In(TcpSegment(Peer, 8080, Self, 50000, SynAck)).Should().Be(FilterVerdict.Accept);
        In(TcpSegment(Peer, 8080, Self, 50000, Ack)).Should().Be(FilterVerdict.Accept);

        Out(UdpDatagram(Self6, 50001, Peer6, 9999));
        In(UdpDatagram(Peer6, 9999, Self6, 50001)).Should().Be(FilterVerdict.Accept);

        Out(Echo(Self, Peer, 42, request: true));
        In(Echo(Peer, Self, 42, request: false)).Should().Be(FilterVerdict.Accept);
        _filter.TotalDenied.Should().Be(0);
    }

    [Theory]
    [InlineData(SynAck)]
    [InlineData(Ack)]
    [InlineData(Rst)]
    [InlineData(Fin)]
    public void A_crafted_TCP_reply_for_a_flow_never_opened_is_dropped(byte flags)
    {
        Out(TcpSegment(Self, 50000, Peer, 8080, Syn));
        In(TcpSegment(Peer, 8080, Self, 50001, flags)).Should().Be(FilterVerdict.Drop, "another local port");
        In(TcpSegment(Peer, 8081, Self, 50000, flags)).Should().Be(FilterVerdict.Drop, "another remote port");
        In(TcpSegment("100.64.0.3", 8080, Self, 50000, flags)).Should().Be(FilterVerdict.Drop, "another peer");
        _filter.Denied(MeshPolicyDenialReason.NoRule).Should().Be(3);
    }

    [Fact]
    public void A_crafted_UDP_reply_or_echo_reply_for_a_flow_never_opened_is_denied()
    {
        Out(UdpDatagram(Self, 50000, Peer, 9999));
        In(UdpDatagram(Peer, 9999, Self, 50001)).Should().Be(FilterVerdict.Reject);
        In(Echo(Peer, Self, 42, request: false)).Should().Be(FilterVerdict.Drop);
        _filter.Denied(MeshPolicyDenialReason.UntrackedIcmp).Should().Be(1);
    }

    [Fact]
    public void ICMP_errors_are_admitted_only_about_our_own_flows_or_flows_the_rules_admit()
    {
        var ours = Flow(Tcp, Self, 50000, Peer, 8080);
        Out(new DatagramHeaders(ours, tcpFlags: Syn));
        In(Unreachable(Peer, Self, ours)).Should().Be(FilterVerdict.Accept);

        var neverSent = Flow(Tcp, Self, 50001, Peer, 8080);
        In(Unreachable(Peer, Self, neverSent)).Should().Be(FilterVerdict.Drop);

        var answerToAdmitted = Flow(Tcp, Self, 22, Peer, 40000); // our reply in a connection the rules admit
        In(Unreachable(Peer, Self, answerToAdmitted)).Should().Be(FilterVerdict.Accept);

        var notFromUs = Flow(Tcp, "100.64.0.9", 50000, Peer, 8080);
        In(Unreachable(Peer, Self, notFromUs)).Should().Be(FilterVerdict.Drop);

        _filter.Denied(MeshPolicyDenialReason.UntrackedIcmp).Should().Be(1);
        _filter.Denied(MeshPolicyDenialReason.Malformed).Should().Be(1);
    }

    [Fact]
    public void Echo_requests_need_a_rule()
    {
        In(Echo(Peer, Self, 1, request: true)).Should().Be(FilterVerdict.Drop);
        _filter.Update(Chunks(Rule([Peer], [("*", 0, 0)], Icmp)), enforced: true, policyVersion: 4);
        In(Echo(Peer, Self, 1, request: true)).Should().Be(FilterVerdict.Accept);
        In(Echo(Peer6, Self6, 1, request: true)).Should().Be(FilterVerdict.Drop, "the rule names ICMP, not ICMPv6");
    }

    [Fact]
    public void A_truncated_header_is_dropped_as_malformed()
    {
        var truncated = new DatagramHeaders(Flow(Tcp, Peer, 0, Self, 0), truncated: true);
        In(truncated).Should().Be(FilterVerdict.Drop);
        _filter.Denied(MeshPolicyDenialReason.Malformed).Should().Be(1);
        _filter.DenialsSnapshot().Should().Equal(new Dictionary<MeshPolicyDenialReason, long> { [MeshPolicyDenialReason.Malformed] = 1 });
    }

    [Fact]
    public void A_new_rule_set_revokes_inbound_flows_already_admitted()
    {
        In(TcpSegment(Peer, 40000, Self, 22, Syn)).Should().Be(FilterVerdict.Accept);
        Out(TcpSegment(Self, 22, Peer, 40000, SynAck)); // our answer does not make it our flow
        In(UdpDatagram(Peer, 5000, Self, 53)).Should().Be(FilterVerdict.Accept);
        Out(UdpDatagram(Self, 53, Peer, 5000));

        _filter.Update(NoChunks, enforced: true, policyVersion: 4);

        In(TcpSegment(Peer, 40000, Self, 22, Ack)).Should().Be(FilterVerdict.Drop);
        In(UdpDatagram(Peer, 5000, Self, 53)).Should().Be(FilterVerdict.Reject);
        _filter.PolicyVersion.Should().Be(4);
    }

    [Fact]
    public void Flows_this_node_opened_survive_a_rule_change()
    {
        Out(TcpSegment(Self, 50000, Peer, 8080, Syn));
        _filter.Update(NoChunks, enforced: true, policyVersion: 4);
        In(TcpSegment(Peer, 8080, Self, 50000, SynAck)).Should().Be(FilterVerdict.Accept);
    }

    [Fact]
    public void Stopping_enforcement_admits_everything_again()
    {
        In(TcpSegment(Peer, 40000, Self, 8080, Syn)).Should().Be(FilterVerdict.Reject);
        _filter.Update(NoChunks, enforced: false, policyVersion: 0);
        In(TcpSegment(Peer, 40000, Self, 8080, Syn)).Should().Be(FilterVerdict.Accept);
        _filter.Enforced.Should().BeFalse();
    }

    [Fact]
    public void The_same_chunks_are_not_compiled_twice()
    {
        var chunks = Chunks(Rule(["*"], [("*", 1, 1)]));
        _filter.Update(chunks, enforced: true, policyVersion: 5);
        var rules = _filter.Rules;
        _filter.Update(chunks, enforced: false, policyVersion: 5);
        _filter.Rules.Should().BeSameAs(rules);
    }
}
