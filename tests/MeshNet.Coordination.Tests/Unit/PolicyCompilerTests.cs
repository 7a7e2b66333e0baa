using MeshNet.Control.V1;
using MeshNet.Coordination.Policy;

namespace MeshNet.Coordination.Tests.Unit;

[Trait("Category", "Unit")]
public sealed class PolicyCompilerTests
{
    private const string Policy = """
        {
          "groups": { "group:eng": ["alice@example.com"] },
          "hosts": { "db": "100.64.0.3" },
          "tagOwners": { "tag:web": [], "tag:db": [] },
          "acls": [
            { "action": "accept", "src": ["group:eng"], "dst": ["tag:web:80,443"] },
            { "action": "accept", "src": ["tag:web"], "dst": ["db:5432"], "proto": "tcp" },
          ],
        }
        """;

    // 1: alice (eng), 2: web, 3: db (100.64.0.3), 4: carol (nobody), 5: bob
    private static AccessGraph Graph(string policy = Policy)
    {
        var graph = new AccessGraph(PolicyParser.Parse(policy), 7);
        graph.Upsert(1, Subject("alice@example.com", [], 1));
        graph.Upsert(2, Subject("", ["tag:web"], 2));
        graph.Upsert(3, Subject("", ["tag:db"], 3));
        graph.Upsert(4, Subject("carol@example.com", [], 4));
        graph.Upsert(5, Subject("bob@example.com", [], 5));
        return graph;
    }

    private static PolicySubject Subject(string user, string[] tags, int n) =>
        PolicySubject.ForNode(user, tags, [$"100.64.0.{n}", $"fd7a:115c:a1e0::{n}"]);

    private static ulong[] Peers(AccessGraph graph, ulong id) =>
        [.. graph.Visible(id).Slots().Select(graph.IdAt).Where(peer => peer != id).Order()];

    [Fact]
    public void VisibilityGoesEitherDirection()
    {
        var graph = Graph();
        Peers(graph, 1).Should().Equal(2ul);
        Peers(graph, 2).Should().Equal(1ul, 3ul);
        Peers(graph, 3).Should().Equal(2ul);
        Peers(graph, 4).Should().BeEmpty();
    }

    [Fact]
    public void ChunksListSourcesAndDestinationsPerNode()
    {
        var graph = Graph();
        graph.Chunks(1).Should().BeEmpty("alice is no destination");
        var web = graph.Chunks(2).Single().Wire;
        web.Name.Should().Be(graph.ChunkName(0));
        var rule = web.Rules.Single();
        rule.Sources.Should().Equal("100.64.0.1/32", "fd7a:115c:a1e0::1/128");
        rule.Destinations.Select(d => (d.Prefix, d.FirstPort, d.LastPort)).Should().Equal(("*", 80u, 80u), ("*", 443u, 443u));
        rule.Protocols.Should().BeEmpty();
        var db = graph.Chunks(3).Single().Wire.Rules.Single();
        db.Sources.Should().Equal("100.64.0.2/32", "fd7a:115c:a1e0::2/128");
        db.Destinations.Single().Should().Be(new PortRange { Prefix = "100.64.0.3/32", FirstPort = 5432, LastPort = 5432 });
        db.Protocols.Should().Equal(6u);
    }

    [Fact]
    public void NodesWithTheSameViewShareChunkObjects()
    {
        var graph = Graph();
        graph.Upsert(6, Subject("", ["tag:web"], 6));
        graph.Chunks(6).Single().Should().BeSameAs(graph.Chunks(2).Single());
    }

    [Fact]
    public void AJoiningSourceChangesTheRulesChunksAndATaggedNodeIsNotItsUser()
    {
        var graph = Graph();
        var before = graph.Chunks(2).Single();
        graph.Upsert(7, Subject("alice@example.com", [], 7)).Should().Equal(0);
        graph.Chunks(2).Single().Hash.Should().NotBe(before.Hash);
        graph.Chunks(2).Single().Wire.Rules[0].Sources.Should().Contain("100.64.0.7/32");
        graph.Upsert(8, Subject("alice@example.com", ["tag:db"], 8)).Should().BeEmpty("a tagged node is not its user's");
        Peers(graph, 8).Should().BeEmpty("tag:db is in no rule; alice's group rule does not apply to it");
        graph.Remove(7).Should().Equal(0);
        graph.Chunks(2).Single().Hash.Should().Be(before.Hash);
    }

    [Fact]
    public void WithoutAPolicyEveryoneSeesEveryone()
    {
        var graph = new AccessGraph(null, 3);
        graph.Upsert(1, Subject("a@x", [], 1));
        graph.Upsert(2, Subject("", ["tag:x"], 2));
        Peers(graph, 1).Should().Equal(2ul);
        graph.Chunks(1).Should().BeEmpty();
        graph.Enforced.Should().BeFalse();
        graph.Version.Should().Be(0);
    }

    [Fact]
    public void PrefixesUsersAndAnyNodeSelectorsMatch()
    {
        var graph = Graph("""
            { "acls": [
                { "action": "accept", "src": ["100.64.0.0/30"], "dst": ["bob@example.com:22"] },
                { "action": "accept", "src": ["*"], "dst": ["fd7a:115c:a1e0::4/128:1-1024"], "proto": "udp" },
            ] }
            """);
        Peers(graph, 5).Should().Equal(1ul, 2ul, 3ul, 4ul);
        var bob = graph.Chunks(5).Single().Wire.Rules.Single();
        bob.Sources.Should().Equal("100.64.0.0/30");
        bob.Destinations.Single().Prefix.Should().Be("*");
        var carol = graph.Chunks(4).Single().Wire.Rules.Single();
        carol.Sources.Should().Equal("*");
        carol.Destinations.Single().Should().Be(new PortRange { Prefix = "fd7a:115c:a1e0::4/128", FirstPort = 1, LastPort = 1024 });
        carol.Protocols.Should().Equal(17u);
        Peers(graph, 4).Should().Equal(1ul, 2ul, 3ul, 5ul);
    }

    [Fact]
    public void TenThousandNodesCompileAndChangePolicy()
    {
        var graph = new AccessGraph(null, 0);
        for (int i = 1; i <= 10_000; i++)
        {
            var tags = i % 10 == 0 ? new[] { "tag:web" } : [];
            graph.Upsert((ulong)i, PolicySubject.ForNode($"user{i % 50}@example.com", tags, [$"100.{64 + i / 65536}.{i / 256 % 256}.{i % 256}"]));
        }
        var policy = PolicyParser.Parse("""
            { "groups": { "group:a": ["user1@example.com", "user2@example.com"] }, "tagOwners": { "tag:web": [] },
              "acls": [ { "action": "accept", "src": ["group:a"], "dst": ["tag:web:443"] },
                        { "action": "accept", "src": ["tag:web"], "dst": ["tag:web:*"] } ] }
            """);
        var next = graph.WithPolicy(policy, 1);
        int changed = 0;
        for (ulong id = 1; id <= 10_000; id++)
        {
            if (!ReferenceEquals(graph.Visible(id), next.Visible(id)))
            {
                changed += next.Visible(id).Except(graph.Visible(id)).Count + graph.Visible(id).Except(next.Visible(id)).Count;
            }
            next.Chunks(id);
        }
        changed.Should().BePositive();
        next.Chunks(10).Should().HaveCount(2);
        next.Chunks(10)[0].Wire.Rules[0].Sources.Should().HaveCount(400);
    }
}
