using System.Net;
using MeshNet.Netmap;
using static MeshNet.Tests.Support.TestNodes;

namespace MeshNet.Tests.Netmap;

[Trait("Category", "Unit")]
public sealed class NameResolverTests
{
    private readonly NetmapSnapshot _map = Map(Node(1, "self"), Node(2, "web"), Node(3, "db"));

    [Theory]
    [InlineData("web")]
    [InlineData("WEB")]
    [InlineData("web.")]
    [InlineData("web.acme.meshnet.internal")]
    [InlineData("Web.ACME.meshnet.internal.")]
    [InlineData(" web ")]
    [InlineData("100.64.0.2")]
    [InlineData("fd7a:115c:a1e0::2")]
    [InlineData("[fd7a:115c:a1e0::2]")]
    [InlineData("::ffff:100.64.0.2")]
    public void NamesAndAddressesOfAPeerResolve(string host)
    {
        var node = NameResolver.Resolve(_map, host, out _);
        node.Should().NotBeNull();
        node!.Id.Should().Be(2UL);
    }

    [Theory]
    [InlineData("mail")]
    [InlineData("web.other.domain")]
    [InlineData("web.meshnet.internal")]
    [InlineData("web.acme")]
    [InlineData("x.web.acme.meshnet.internal")]
    [InlineData("acme.meshnet.internal")]
    [InlineData(".")]
    [InlineData("100.64.0.99")]
    [InlineData("fd7a:115c:a1e0::99")]
    [InlineData("10.0.0.2")]
    public void AnythingElseDoesNotResolve(string host) =>
        NameResolver.Resolve(_map, host, out _).Should().BeNull();

    [Fact]
    public void TheNodeItselfResolves() =>
        NameResolver.Resolve(_map, "self.acme.meshnet.internal", out _)!.Should().BeSameAs(_map.Self);

    [Fact]
    public void NamesDialIPv4FirstAndLiteralsDialThemselves()
    {
        var byName = NameResolver.Resolve(_map, "db", out var literal)!;
        literal.Should().BeNull();
        NameResolver.SelectAddress(byName, literal).Should().Be(V4(3));

        var byV6 = NameResolver.Resolve(_map, "fd7a:115c:a1e0::3", out literal)!;
        literal.Should().Be(V6(3));
        NameResolver.SelectAddress(byV6, literal).Should().Be(V6(3));

        var byMapped = NameResolver.Resolve(_map, "::ffff:100.64.0.3", out literal)!;
        NameResolver.SelectAddress(byMapped, literal).Should().Be(V4(3), "an IPv4-mapped literal is the IPv4 address");
    }

    [Fact]
    public void AnIPv6OnlyPeerIsDialedOverIPv6()
    {
        var v6Only = Node(4, "six");
        v6Only.Addresses.RemoveAt(0);
        var map = Map(Node(1), v6Only);
        var node = NameResolver.Resolve(map, "six", out var literal)!;
        NameResolver.SelectAddress(node, literal).Should().Be(V6(4));
        NameResolver.OrderedAddresses(node).Should().Equal(V6(4));
    }

    [Fact]
    public void WithoutADomainOnlyTheLabelResolves()
    {
        var full = Full(Node(1), Node(2, "web"));
        full.Domain = "";
        var map = NetmapApplier.ApplyFull(full, "s", 1);
        NameResolver.Resolve(map, "web", out _).Should().NotBeNull();
        NameResolver.Resolve(map, "web.acme.meshnet.internal", out _).Should().BeNull();
        map.FqdnOf(map.Peers[2]).Should().Be("web");
    }
}
