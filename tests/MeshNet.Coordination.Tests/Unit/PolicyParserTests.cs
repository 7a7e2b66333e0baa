using MeshNet.Coordination.Policy;

namespace MeshNet.Coordination.Tests.Unit;

[Trait("Category", "Unit")]
public sealed class PolicyParserTests
{
    internal const string Sample = """
        {
          // who is who
          "groups":    { "group:eng": ["alice@example.com", "bob@example.com"], },
          "hosts":     { "db": "100.64.0.10", "lab": "100.64.1.0/24" },
          /* tags and their owners */
          "tagOwners": { "tag:web": ["group:eng", "alice@example.com"], "tag:db": ["tag:web"], "tag:ci": [] },
          "acls": [
            { "action": "accept", "src": ["group:eng", "tag:ci", "100.64.0.0/10", "db", "*"],
              "dst": ["tag:web:80,443", "db:5432", "alice@example.com:8000-8100", "*:22", "[fd7a:115c:a1e0::1]:80", "fd7a:115c:a1e0::/48:*"],
              "proto": "tcp" },
            { "action": "accept", "src": ["tag:web"], "dst": ["tag:db:*"], "proto": "icmp", },
          ],
          "tests": [
            { "src": "alice@example.com", "proto": "tcp", "accept": ["tag:web:80", "db:5432"], "deny": [] },
          ],
        }
        """;

    [Fact]
    public void ParsesCommentsTrailingCommasAndEverySelectorKind()
    {
        var policy = PolicyParser.Parse(Sample);
        policy.Groups["group:eng"].Should().BeEquivalentTo(["alice@example.com", "bob@example.com"]);
        policy.Hosts["lab"].ToString().Should().Be("100.64.1.0/24");
        policy.Rules.Should().HaveCount(2);
        var rule = policy.Rules[0];
        rule.Sources.Select(s => s.Kind).Should().Equal(SelectorKind.Group, SelectorKind.Tag, SelectorKind.Prefix, SelectorKind.Prefix, SelectorKind.All);
        rule.Destinations.Select(d => d.Selector.Text).Should().Equal("tag:web", "db", "alice@example.com", "*", "fd7a:115c:a1e0::1", "fd7a:115c:a1e0::/48");
        rule.Destinations[0].Ports.Should().Equal(new PortSpan(80, 80), new PortSpan(443, 443));
        rule.Destinations[2].Ports.Should().Equal(new PortSpan(8000, 8100));
        rule.Destinations[5].Ports.Should().Equal(PortSpan.Any);
        rule.Protocols.Should().Equal(6u);
        policy.Rules[1].Protocols.Should().Equal(1u);
        policy.Tests.Single().Accept.Should().HaveCount(2);
        rule.ChunkName.Should().StartWith("acl-");
    }

    [Theory]
    [InlineData("{\n  \"acl\": []\n}", 2, 3, "unknown key \"acl\"")]
    [InlineData("{\"acls\": [{\"action\": \"deny\", \"src\": [\"*\"], \"dst\": [\"*:*\"]}]}", 1, 22, "only \"accept\"")]
    [InlineData("{\"acls\": [{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*:*\"], \"port\": 1}]}", 1, 62, "unknown key \"port\"")]
    [InlineData("{\"acls\": {}}", 1, 10, "must be an array")]
    [InlineData("{\"acls\": [{\"action\": \"accept\", \"src\": \"*\", \"dst\": [\"*:*\"]}]}", 1, 39, "array of strings")]
    [InlineData("{\"acls\": [{\"action\": \"accept\", \"src\": [\"group:x\"], \"dst\": [\"*:*\"]}]}", 1, 40, "undefined group \"group:x\"")]
    [InlineData("{\"acls\": [{\"action\": \"accept\", \"src\": [\"nohost\"], \"dst\": [\"*:*\"]}]}", 1, 40, "unknown selector \"nohost\"")]
    [InlineData("{\"acls\": [{\"action\": \"accept\", \"src\": [\"tag:x\"], \"dst\": [\"*:*\"]}]}", 1, 40, "not declared in \"tagOwners\"")]
    [InlineData("{\"groups\": {\"group:a\": [\"group:b\"]}}", 1, 25, "groups cannot contain groups")]
    [InlineData("{\"acls\": [{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*:0\"]}]}", 1, 54, "port 0")]
    [InlineData("{\"acls\": [{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*:65536\"]}]}", 1, 54, "bad port \"65536\"")]
    [InlineData("{\"acls\": [{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*:90-80\"]}]}", 1, 54, "ends before it starts")]
    [InlineData("{\"acls\": [{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"tag:web\"]}]}", 1, 54, "bad port \"web\"")]
    [InlineData("{\"acls\": [{\"action\": \"accept\", \"src\": [\"100.64.0.1/10\"], \"dst\": [\"*:*\"]}]}", 1, 40, "did you mean 100.64.0.0/10")]
    [InlineData("{\"acls\": [{\"action\": \"accept\", \"src\": [\"100.64.0.0/33\"], \"dst\": [\"*:*\"]}]}", 1, 40, "bad prefix length")]
    [InlineData("{\"acls\": [{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*:22\"], \"proto\": \"icmp\"}]}", 1, 54, "ICMP has no ports")]
    [InlineData("{\"acls\": [{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*:*\"], \"proto\": \"gre\"}]}", 1, 71, "unknown protocol")]
    [InlineData("{\"acls\": [{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*:*\"], \"proto\": 256}]}", 1, 71, "unknown protocol")]
    [InlineData("{\"hosts\": {\"db\": \"not-an-ip\"}}", 1, 18, "not an address or prefix")]
    [InlineData("{\"acls\": [{\"src\": [\"*\"], \"dst\": [\"*:*\"]}]}", 1, 11, "needs \"action\"")]
    [InlineData("{\"acls\": [,]}", 1, 11, "malformed JSON")]
    [InlineData("{\n  \"acls\": [\n    { \"action\": \"accept\" \"src\": [] }\n  ]\n}", 3, 26, "malformed JSON")]
    [InlineData("{\"tests\": [{\"src\": \"group:eng\", \"accept\": []}]}", 1, 20, "one principal")]
    [InlineData("{\"a\": 1, \"a\": 2}", 1, 10, "duplicate key \"a\"")]
    [InlineData("[]", 1, 1, "must be an object")]
    [InlineData("", 1, 1, "empty")]
    public void ErrorsNameTheirLineAndColumn(string text, int line, int column, string problem)
    {
        var exception = FluentActions.Invoking(() => PolicyParser.Parse(text)).Should().Throw<PolicyException>().Which;
        exception.Message.Should().Be($"line {exception.Line}, column {exception.Column}: {exception.Problem}");
        exception.Problem.Should().Contain(problem);
        (exception.Line, exception.Column).Should().Be((line, column));
    }

    [Fact]
    public void DuplicateKeysAndColumnsCountCharactersNotBytes()
    {
        var duplicate = FluentActions.Invoking(() => PolicyParser.Parse("{\"groups\": {}, \"groups\": {}}")).Should().Throw<PolicyException>().Which;
        (duplicate.Line, duplicate.Column).Should().Be((1, 16));
        duplicate.Problem.Should().Contain("duplicate key");
        // "é" is two bytes in UTF-8 but one character: the selector after it is at column 45, not 46.
        var text = "{\"acls\": [{\"action\": \"accept\", \"src\": [\"é@x\", \"x\"], \"dst\": [\"*:*\"]}]}";
        var exception = FluentActions.Invoking(() => PolicyParser.Parse(text)).Should().Throw<PolicyException>().Which;
        (exception.Line, exception.Column).Should().Be((1, 47));
        exception.Problem.Should().Contain("\"x\"");
    }

    [Fact]
    public void ProtocolsAndPortListsParse()
    {
        PolicySyntax.Ports(new PolicyValue(PolicyValueKind.String, 1, 1), "0-1023,8080").Should().Equal(new PortSpan(0, 1023), new PortSpan(8080, 8080));
        foreach (var (name, number) in new[] { ("tcp", 6u), ("udp", 17u), ("icmp", 1u), ("ipv6-icmp", 58u), ("icmpv6", 58u), ("47", 47u) })
        {
            PolicySyntax.Protocol(new PolicyValue(PolicyValueKind.String, 1, 1, name), out _).Should().Equal(number);
        }
        var noProto = PolicyParser.Parse("{\"acls\": [{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*:*\"]}]}");
        noProto.Rules[0].Protocols.Should().BeEmpty("absent means TCP, UDP, ICMP and ICMPv6");
    }

    [Fact]
    public void ChunkNamesDependOnRuleContentOnly()
    {
        const string a = "{ \"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*:22\"] }";
        const string b = "{ \"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*:80\"] }";
        var first = PolicyParser.Parse($"{{\"acls\": [{a}, {b}]}}");
        var swapped = PolicyParser.Parse($"{{\"acls\": [{b}, {a}]}}");
        first.Rules[0].ChunkName.Should().Be(swapped.Rules[1].ChunkName);
        first.Rules[1].ChunkName.Should().Be(swapped.Rules[0].ChunkName);
        first.Rules[0].ChunkName.Should().NotBe(first.Rules[1].ChunkName);
    }

    [Fact]
    public void RandomMutationsGiveOnlyPolicyExceptionsOrSuccess()
    {
        var random = new Random(1234);
        const string alphabet = "{}[]\",:/*\\@-.0123456789abcdefgtagroup \n\t\u00e9\ud83d\ude00";
        int failures = 0;
        for (int i = 0; i < 3000; i++)
        {
            var chars = Sample.ToCharArray().ToList();
            int edits = random.Next(1, 6);
            for (int e = 0; e < edits && chars.Count > 0; e++)
            {
                int at = random.Next(chars.Count);
                switch (random.Next(3))
                {
                    case 0: chars.RemoveAt(at); break;
                    case 1: chars.Insert(at, alphabet[random.Next(alphabet.Length)]); break;
                    default: chars[at] = alphabet[random.Next(alphabet.Length)]; break;
                }
            }
            var text = new string([.. chars]);
            try
            {
                PolicyParser.Parse(text).RunTests();
            }
            catch (PolicyException exception)
            {
                exception.Line.Should().BePositive();
                exception.Column.Should().BePositive();
                failures++;
            }
        }
        failures.Should().BePositive("most mutations break the policy");
    }
}
