using MeshNet.Filter;
using MeshNet.TestSupport;
using MeshNet.Userspace.Stack;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using static MeshNet.Tests.Filter.FilterTestData;

namespace MeshNet.Tests.Filter;

/// <summary>Tests that measure allocations run alone.</summary>
[CollectionDefinition(nameof(FilterAllocationTests), DisableParallelization = true)]
public sealed class FilterAllocationTestsCollection;

/// <summary>The filter's per-packet paths allocate nothing once a flow exists.</summary>
[Trait("Category", "Unit")]
[Collection(nameof(FilterAllocationTests))]
public sealed class FilterAllocationTests
{
    [Fact]
    public void Admitting_replies_rule_matches_and_tracking_sent_packets_allocate_nothing()
    {
        var time = new FakeTimeProvider();
        using var filter = new PacketFilter(time, NullLogger.Instance);
        filter.Update(Chunks(
            Rule(["100.64.0.0/10", "fd7a:115c:a1e0::2/128"], [("*", 22, 22)], Tcp),
            Rule(["100.64.0.2", "100.64.0.3"], [("100.64.0.1/32", 53, 53)], Udp)), enforced: true, policyVersion: 1);
        var syn = TcpSegment("100.64.0.1", 50000, "100.64.0.2", 80, Syn);
        var ack = TcpSegment("100.64.0.1", 50000, "100.64.0.2", 80, Ack);
        var synAck = TcpSegment("100.64.0.2", 80, "100.64.0.1", 50000, SynAck);
        var data = TcpSegment("100.64.0.2", 80, "100.64.0.1", 50000, Ack);
        var inboundSsh = TcpSegment("fd7a:115c:a1e0::2", 40000, "fd7a:115c:a1e0::1", 22, Ack);
        var inboundDns = UdpDatagram("100.64.0.3", 4000, "100.64.0.1", 53);
        var dnsAnswer = UdpDatagram("100.64.0.1", 53, "100.64.0.3", 4000);
        var echo = Echo("100.64.0.1", "100.64.0.2", 7, request: true);
        var echoReply = Echo("100.64.0.2", "100.64.0.1", 7, request: false);
        var error = Unreachable("100.64.0.2", "100.64.0.1", ack.Flow);
        int accepted = 0;

        void Round()
        {
            filter.OnSent(ack);
            filter.OnSent(echo);
            filter.OnSent(dnsAnswer);
            accepted += filter.Inspect(data) == FilterVerdict.Accept ? 1 : 0;
            accepted += filter.Inspect(inboundSsh) == FilterVerdict.Accept ? 1 : 0;
            accepted += filter.Inspect(inboundDns) == FilterVerdict.Accept ? 1 : 0;
            accepted += filter.Inspect(echoReply) == FilterVerdict.Accept ? 1 : 0;
            accepted += filter.Inspect(error) == FilterVerdict.Accept ? 1 : 0;
        }

        filter.OnSent(syn);
        filter.Inspect(synAck);
        for (int i = 0; i < 100; i++)
        {
            Round(); // the flows exist from here on
        }
        long allocated = AllocationMeter.LeastOf(3, () =>
        {
            accepted = 0;
            for (int i = 0; i < 10_000; i++)
            {
                Round();
            }
        });

        accepted.Should().Be(50_000);
        allocated.Should().Be(0);
    }
}
