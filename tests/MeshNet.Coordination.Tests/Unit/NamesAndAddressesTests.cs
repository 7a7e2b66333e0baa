using System.Net;
using MeshNet.Coordination.Registry;
using MeshNet.Coordination.Validation;

namespace MeshNet.Coordination.Tests.Unit;

[Trait("Category", "Unit")]
public sealed class NamesAndAddressesTests
{
    [Theory]
    [InlineData("web-1", "web-1")]
    [InlineData("Web_Server.example.com", "web-server")]
    [InlineData("  ci runner #7 ", "ci-runner-7")]
    [InlineData("---", "node")]
    [InlineData("", "node")]
    [InlineData("élan", "lan")]
    [InlineData("a--b", "a-b")]
    public void LabelsComeFromTheFirstPartOfTheHostname(string hostname, string label) =>
        Names.LabelFromHostname(hostname).Should().Be(label);

    [Fact]
    public void LabelsAreAtMost63CharactersWithoutATrailingDash()
    {
        var label = Names.LabelFromHostname(new string('a', 62) + "-b" + new string('c', 20));
        label.Should().Be(new string('a', 62));
        Names.IsLabel(label).Should().BeTrue();
    }

    [Fact]
    public void CollisionCandidatesGetNumberedSuffixesWithinTheLengthLimit()
    {
        Names.Candidate("web", 1).Should().Be("web");
        Names.Candidate("web", 2).Should().Be("web-2");
        Names.Candidate("web", 13).Should().Be("web-13");
        var longLabel = new string('x', 63);
        Names.Candidate(longLabel, 2).Should().Be(new string('x', 61) + "-2");
        var dashed = new string('x', 60) + "-yy";
        Names.Candidate(dashed, 10).Should().Be(new string('x', 60) + "-10");
        foreach (int n in new[] { 2, 99, 12345, 1_000_000_000 })
        {
            var candidate = Names.Candidate(longLabel, n);
            candidate.Length.Should().BeLessThanOrEqualTo(63);
            candidate.Should().StartWith(Names.CandidatePrefix(longLabel));
        }
    }

    [Theory]
    [InlineData("tag:web", true)]
    [InlineData("tag:a-1", true)]
    [InlineData("tag:", false)]
    [InlineData("web", false)]
    [InlineData("tag:Web", false)]
    [InlineData("tag:-x", false)]
    [InlineData("tag:a b", false)]
    public void TagsAreTagColonAndALabel(string tag, bool valid) => Names.IsTag(tag).Should().Be(valid);

    [Fact]
    public void AddressesAreInTheRangesAndAvoidReservedOnes()
    {
        var allocator = new AddressAllocator();
        var ipv4Range = IPNetwork.Parse("100.64.0.0/10");
        var ipv6Range = IPNetwork.Parse("fd7a:115c:a1e0::/48");
        for (int i = 0; i < 2000; i++)
        {
            var (ipv4, ipv6) = allocator.Next();
            ipv4Range.Contains(ipv4).Should().BeTrue();
            ipv6Range.Contains(ipv6).Should().BeTrue();
            var bytes = ipv4.GetAddressBytes();
            bytes[3].Should().NotBe(0).And.NotBe(255);
            ipv6.GetAddressBytes()[12..].Should().Equal(bytes, "the IPv6 carries the IPv4's bits");
        }
    }

    [Fact]
    public void ReservedCandidatesAreSkipped()
    {
        // 0 → 100.64.0.0 (first), 0x3FFFFF → 100.127.255.255 (last), 0x242464 → 100.100.100.100 (service), then a usable one.
        var values = new Queue<uint>([0u, 0x3F_FFFFu, 0x24_6464u, 0x100u, 0x101u]);
        var allocator = new AddressAllocator(() => values.Dequeue());
        allocator.Next().IPv4.Should().Be(IPAddress.Parse("100.64.1.1"));
        AddressAllocator.IsUsable(0x6440_0001).Should().BeTrue();
        AddressAllocator.IsUsable(0x6464_6464).Should().BeFalse();
        AddressAllocator.IsUsable(0x6480_0001).Should().BeFalse("outside the /10");
    }

    [Fact]
    public void AuthKeysParseAndOnlyTheirSecretMatchesTheHash()
    {
        var (id, text, hash) = AuthKeySecret.Generate();
        text.Should().StartWith("mnkey-" + id + "-");
        AuthKeySecret.TryParse(text, out var parsedId, out var secret).Should().BeTrue();
        parsedId.Should().Be(id);
        AuthKeySecret.Matches(secret, hash).Should().BeTrue();
        AuthKeySecret.Matches(secret[..^1] + (secret[^1] == 'a' ? 'b' : 'a'), hash).Should().BeFalse();
        hash.Should().NotEqual(System.Text.Encoding.ASCII.GetBytes(secret));

        AuthKeySecret.TryParse("mnkey-short-secret", out _, out _).Should().BeFalse();
        AuthKeySecret.TryParse(text.ToUpperInvariant(), out _, out _).Should().BeFalse();
        AuthKeySecret.TryParse("tskey-" + text[6..], out _, out _).Should().BeFalse();
    }
}
