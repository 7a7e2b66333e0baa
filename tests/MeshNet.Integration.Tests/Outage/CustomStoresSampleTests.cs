using MeshNet.Integration.Tests.Infrastructure;

namespace MeshNet.Integration.Tests.Outage;

/// <summary>
/// samples/CustomStores does what its README says: two nodes on SQLite stores talk with the
/// coordination service, and again after it was stopped, started from the stores alone.
/// </summary>
[Trait("Category", "Outage")]
public sealed class CustomStoresSampleTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task TwoNodesOnSqliteStoresTalkAgainAfterTheCoordinationServiceStopped()
    {
        await using var run = await SampleProcess.RunAsync("CustomStores", new Dictionary<string, string>(), Timeout);
        var output = run.Output;
        run.ExitCode.Should().Be(0, output);
        output.Should().Contain("mode 0600")
            .And.Contain("beta -> alpha:7000: alpha heard \"hello from beta (round 1)\"")
            .And.Contain("coordination service stopped")
            .And.Contain("beta -> alpha:7000: alpha heard \"hello from beta (round 2, no coordination)\"")
            .And.Contain("CustomStores: success.");
        output.Should().MatchRegex(@"(?m)^  row 'alpha': node \d+, UDP port [1-9]\d*, netmap [1-9]\d* bytes$");
        output.Should().MatchRegex(@"(?m)^  row 'beta': node \d+, UDP port [1-9]\d*, netmap [1-9]\d* bytes$");
    }
}
