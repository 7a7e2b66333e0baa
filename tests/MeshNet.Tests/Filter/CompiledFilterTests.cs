using MeshNet.Filter;
using static MeshNet.Tests.Filter.FilterTestData;

namespace MeshNet.Tests.Filter;

/// <summary>Rule matching: sources and destinations as prefixes of both families, ports and ranges, protocols, "*".</summary>
[Trait("Category", "Unit")]
public sealed class CompiledFilterTests
{
    private static CompiledFilter Compile(params global::MeshNet.Control.V1.FilterRule[] rules) => CompiledFilter.Compile(Chunks(rules).Values);

    [Theory]
    [InlineData("100.64.0.7/32", "100.64.0.7", true)]
    [InlineData("100.64.0.7/32", "100.64.0.8", false)]
    [InlineData("100.64.0.7", "100.64.0.7", true)]
    [InlineData("100.64.0.0/10", "100.127.255.255", true)]
    [InlineData("100.64.0.0/10", "100.128.0.1", false)]
    [InlineData("100.64.1.9/16", "100.64.200.1", true)] // host bits beyond the length are ignored
    [InlineData("0.0.0.0/0", "100.64.0.9", true)]
    [InlineData("0.0.0.0/0", "fd7a:115c:a1e0::9", false)] // an IPv4 prefix never matches IPv6
    [InlineData("fd7a:115c:a1e0::9/128", "fd7a:115c:a1e0::9", true)]
    [InlineData("fd7a:115c:a1e0::/48", "fd7a:115c:a1e0:ab::1", true)]
    [InlineData("fd7a:115c:a1e0::/48", "fd7a:115c:a1e1::1", false)]
    [InlineData("::/0", "100.64.0.9", false)]
    [InlineData("::ffff:100.64.0.7/128", "100.64.0.7", false)] // a mapped prefix length counts in IPv6 bits: unusable, skipped
    [InlineData("*", "100.64.0.9", true)]
    [InlineData("*", "fd7a:115c:a1e0::9", true)]
    public void Sources_match_by_prefix(string prefix, string source, bool admitted)
    {
        var filter = Compile(Rule([prefix], [("*", 0, 65535)]));
        bool v6 = A(source).IsIPv6;
        string self = v6 ? "fd7a:115c:a1e0::1" : "100.64.0.1";
        filter.Admits(Flow(Tcp, source, 40000, self, 80)).Should().Be(admitted);
    }

    [Theory]
    [InlineData(79, false)]
    [InlineData(80, true)]
    [InlineData(81, true)]
    [InlineData(90, true)]
    [InlineData(91, false)]
    [InlineData(443, true)]
    public void Destination_ports_match_inclusive_ranges(ushort port, bool admitted)
    {
        var filter = Compile(Rule(["*"], [("*", 80, 90), ("*", 443, 443)]));
        filter.Admits(Flow(Tcp, "100.64.0.2", 40000, "100.64.0.1", port)).Should().Be(admitted);
        filter.Admits(Flow(Udp, "100.64.0.2", 40000, "100.64.0.1", port)).Should().Be(admitted);
    }

    [Fact]
    public void A_destination_prefix_limits_which_of_our_addresses_are_reachable()
    {
        var filter = Compile(Rule(["*"], [("fd7a:115c:a1e0::1/128", 22, 22)]));
        filter.Admits(Flow(Tcp, "fd7a:115c:a1e0::2", 40000, "fd7a:115c:a1e0::1", 22)).Should().BeTrue();
        filter.Admits(Flow(Tcp, "100.64.0.2", 40000, "100.64.0.1", 22)).Should().BeFalse();
    }

    [Fact]
    public void No_protocols_means_TCP_UDP_ICMP_and_ICMPv6()
    {
        var filter = Compile(Rule(["*"], [("*", 80, 80)]));
        filter.Admits(Flow(Tcp, "100.64.0.2", 1, "100.64.0.1", 80)).Should().BeTrue();
        filter.Admits(Flow(Udp, "100.64.0.2", 1, "100.64.0.1", 80)).Should().BeTrue();
        filter.Admits(Flow(Icmp, "100.64.0.2", 7, "100.64.0.1", 7)).Should().BeTrue("ports are ignored for ICMP");
        filter.Admits(Flow(IcmpV6, "fd7a:115c:a1e0::2", 7, "fd7a:115c:a1e0::1", 7)).Should().BeTrue();
        filter.Admits(Flow(132, "100.64.0.2", 0, "100.64.0.1", 0)).Should().BeFalse("SCTP is not among the defaults");
    }

    [Fact]
    public void Listed_protocols_are_the_only_ones_admitted()
    {
        var filter = Compile(Rule(["*"], [("*", 53, 53)], Udp));
        filter.Admits(Flow(Udp, "100.64.0.2", 1, "100.64.0.1", 53)).Should().BeTrue();
        filter.Admits(Flow(Tcp, "100.64.0.2", 1, "100.64.0.1", 53)).Should().BeFalse();
        filter.Admits(Flow(Icmp, "100.64.0.2", 1, "100.64.0.1", 1)).Should().BeFalse();
    }

    [Fact]
    public void A_packet_is_admitted_when_any_rule_of_any_chunk_admits_it()
    {
        var one = new global::MeshNet.Control.V1.FilterChunk { Name = "a" };
        one.Rules.Add(Rule(["100.64.0.2"], [("*", 80, 80)]));
        var two = new global::MeshNet.Control.V1.FilterChunk { Name = "b" };
        two.Rules.Add(Rule(["100.64.0.3"], [("*", 22, 22)]));
        var filter = CompiledFilter.Compile([one, two]);
        filter.Admits(Flow(Tcp, "100.64.0.2", 1, "100.64.0.1", 80)).Should().BeTrue();
        filter.Admits(Flow(Tcp, "100.64.0.3", 1, "100.64.0.1", 22)).Should().BeTrue();
        filter.Admits(Flow(Tcp, "100.64.0.2", 1, "100.64.0.1", 22)).Should().BeFalse("sources and destinations pair up within a rule");
    }

    [Fact]
    public void Invalid_entries_are_skipped_and_counted_never_thrown()
    {
        var filter = Compile(
            Rule(["not-an-address", "100.64.0.2/33", "100.64.0.2"], [("*", 90, 80), ("bogus", 1, 2), ("*", 70000, 70001), ("*", 80, 70000)], 6, 300),
            Rule(["garbage"], [("*", 1, 1)]));
        filter.InvalidEntries.Should().Be(7);
        filter.RuleCount.Should().Be(1, "a rule left without sources matches nothing and is dropped");
        filter.Admits(Flow(Tcp, "100.64.0.2", 1, "100.64.0.1", 65535)).Should().BeTrue("a last port beyond 65535 is clamped");
        filter.Admits(Flow(Tcp, "100.64.0.2", 1, "100.64.0.1", 79)).Should().BeFalse();
    }

    [Fact]
    public void The_empty_filter_admits_nothing()
    {
        CompiledFilter.Empty.Admits(Flow(Tcp, "100.64.0.2", 1, "100.64.0.1", 80)).Should().BeFalse();
        Compile().Admits(Flow(Icmp, "100.64.0.2", 1, "100.64.0.1", 1)).Should().BeFalse();
    }
}
