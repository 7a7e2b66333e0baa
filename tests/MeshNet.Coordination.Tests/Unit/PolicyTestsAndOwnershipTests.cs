using MeshNet.Coordination.Policy;

namespace MeshNet.Coordination.Tests.Unit;

[Trait("Category", "Unit")]
public sealed class PolicyTestsAndOwnershipTests
{
    private const string Base = """
        {
          "groups": { "group:eng": ["alice@example.com"] },
          "hosts": { "db": "100.64.0.10" },
          "tagOwners": { "tag:web": ["group:eng"], "tag:db": ["tag:web"], "tag:ci": ["bob@example.com"] },
          "acls": [
            { "action": "accept", "src": ["group:eng"], "dst": ["tag:web:80", "db:5432"] },
            { "action": "accept", "src": ["tag:web"], "dst": ["db:*"], "proto": "icmp" },
          ],
          "tests": [ TESTS ],
        }
        """;

    private static PolicyDocument Parse(string tests) => PolicyParser.Parse(Base.Replace("TESTS", tests, StringComparison.Ordinal));

    [Fact]
    public void PassingTestsPass()
    {
        Parse("""
            { "src": "alice@example.com", "accept": ["tag:web:80", "db:5432", "100.64.0.10:5432"], "deny": ["db:22", "tag:web:81"] },
            { "src": "tag:web", "proto": "icmp", "accept": ["db:1"] },
            { "src": "tag:web", "accept": [], "deny": ["db:5432"] },
            { "src": "bob@example.com", "deny": ["tag:web:80"] },
            """).RunTests();
    }

    [Fact]
    public void AFailingAcceptNamesTheEntry()
    {
        var exception = FluentActions.Invoking(() => Parse("""{ "src": "bob@example.com", "accept": ["tag:web:80"] }""").RunTests())
            .Should().Throw<PolicyException>().Which;
        exception.IsTestFailure.Should().BeTrue();
        (exception.Line, exception.Column).Should().Be((9, 53));
        exception.Problem.Should().Contain("\"bob@example.com\" to \"tag:web:80\" (tcp) is expected to accept");
    }

    [Fact]
    public void AFailingDenyNamesTheEntry()
    {
        var exception = FluentActions.Invoking(() => Parse("""{ "src": "alice@example.com", "deny": ["db:5432"] }""").RunTests())
            .Should().Throw<PolicyException>().Which;
        exception.Problem.Should().Contain("expected to deny, but a rule allows it");
    }

    [Fact]
    public void TagOwnersGrantToUsersGroupsAndTags()
    {
        var policy = Parse("");
        policy.Owns("alice@example.com", [], "tag:web").Should().BeTrue("alice is in group:eng");
        policy.Owns("bob@example.com", [], "tag:web").Should().BeFalse();
        policy.Owns("bob@example.com", [], "tag:ci").Should().BeTrue();
        policy.Owns("", ["tag:web"], "tag:db").Should().BeTrue("tag:web owns tag:db");
        policy.Owns("alice@example.com", [], "tag:db").Should().BeFalse();
        policy.Owns("alice@example.com", [], "tag:unknown").Should().BeFalse();
    }
}
