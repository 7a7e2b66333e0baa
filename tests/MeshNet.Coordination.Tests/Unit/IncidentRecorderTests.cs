using MeshNet.Coordination.Incidents;
using MeshNet.Coordination.Storage;
using MeshNet.Coordination.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace MeshNet.Coordination.Tests.Unit;

[Trait("Category", "Unit")]
public sealed class IncidentRecorderTests : IDisposable
{
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public async Task APartThatClosesAtOnceIsStoredClosedUnderItsIncident()
    {
        var clock = new FakeTimeProvider(CoordinationHarness.Epoch);
        using var store = new SqliteCoordinationStore(_directory.File("incidents.db"), clock);
        await store.InitializeAsync(default);
        await PartsClosingAtOnceAreStoredAsync(store, store, clock);
    }

    /// <summary>
    /// Twenty moves of tailnets without connected nodes (each part closes as it opens) all end up
    /// stored closed under their incident (a store that checks the part's reference to its
    /// incident, as PostgreSQL does, refused a part saved before its incident).
    /// </summary>
    internal static async Task PartsClosingAtOnceAreStoredAsync(ICoordinationLeaseStore leases, ICoordinationStore store, TimeProvider clock)
    {
        using var recorder = new IncidentRecorder(leases, store, new CoordinationMetrics(null, new CoordinationCounters(), () => 0), clock,
            TimeSpan.FromMinutes(1), "s2", NullLogger<IncidentRecorder>.Instance);
        for (int i = 0; i < 20; i++)
        {
            recorder.Begin(new TailnetTakeover($"t{i}", 2, IncidentCauses.PlannedMove, $"{IncidentCauses.PlannedMove}:t{i}:2", $"t{i}",
                clock.GetTimestamp(), clock.GetUtcNow(), TimeSpan.Zero), []);
        }

        var deadline = DateTime.UtcNow.AddSeconds(30);
        IReadOnlyList<StoredIncident> incidents;
        while ((incidents = await leases.ListIncidentsAsync(50, default)).Sum(incident => incident.Tailnets.Count(part => part.Closed)) < 20)
        {
            DateTime.UtcNow.Should().BeBefore(deadline, "every part is stored closed ({0} so far)", incidents.Sum(incident => incident.Tailnets.Count));
            await Task.Delay(10);
        }
        incidents.Should().HaveCount(20);
        incidents.Should().OnlyContain(incident => incident.Tailnets.Count == 1 && incident.Tailnets[0].Closed && incident.Tailnets[0].Server == "s2");
    }
}
