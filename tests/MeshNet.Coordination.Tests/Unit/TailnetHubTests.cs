using MeshNet.Coordination.Bus;
using MeshNet.Coordination.Sharding;
using MeshNet.Coordination.Storage;
using MeshNet.Coordination.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace MeshNet.Coordination.Tests.Unit;

[Trait("Category", "Unit")]
public sealed class TailnetHubTests : IDisposable
{
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    private async Task<(TailnetHub Hub, SqliteCoordinationStore Store)> CreateAsync()
    {
        var clock = new FakeTimeProvider(CoordinationHarness.Epoch);
        var store = new SqliteCoordinationStore(_directory.File("hub.db"), clock);
        await store.InitializeAsync(default);
        await store.TryCreateTailnetAsync(new StoredTailnet("acme", "acme.meshnet.internal", CoordinationHarness.Epoch, TimeSpan.FromDays(1)), default);
        var settings = new BusSettings(8, 8, TimeSpan.FromMinutes(2), new KeepAliveJitter(TimeSpan.FromSeconds(50), null));
        var counters = new CoordinationCounters();
        var keeper = new LeaseKeeper(store, new ServerIdentity("embedded", "", ServerIdentity.NewInstance()),
            new LeaseSettings(TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(1), TimeSpan.FromMilliseconds(500), TimeSpan.FromMilliseconds(250), 16, TimeSpan.Zero),
            clock, counters, NullLogger<LeaseKeeper>.Instance);
        var recorder = new Incidents.IncidentRecorder(store, store, new Incidents.CoordinationMetrics(null, counters, () => 0), clock, TimeSpan.FromMinutes(1),
            "embedded", NullLogger<Incidents.IncidentRecorder>.Instance);
        var hub = new TailnetHub(store, keeper, settings, clock, counters, recorder, NullLogger<TailnetHub>.Instance);
        keeper.SetListener(hub);
        await keeper.StartAsync(default);
        return (hub, store);
    }

    [Fact]
    public async Task BusesLoadWhenTheirLeaseIsGrantedOrOnDemandAndUnknownTailnetsHaveNone()
    {
        var (hub, store) = await CreateAsync();
        using var _ = store;
        var bus = await hub.GetAsync("acme", default);
        bus!.Domain.Should().Be("acme.meshnet.internal");
        (await hub.GetAsync("acme", default)).Should().BeSameAs(bus);
        (await hub.GetAsync("nope", default)).Should().BeNull();
        (await hub.LockAsync("nope", default)).Should().BeNull();
        hub.RetireIdle().Should().Be(1);
        hub.TryGetLoaded("acme").Should().BeNull("a retired bus is unloaded; the lease is kept");
        (await hub.GetAsync("acme", default)).Should().NotBeSameAs(bus, "the next user loads it again");
    }

    [Fact]
    public async Task IdleBusesAreRetiredButNotWhileAWriterHoldsThem()
    {
        var (hub, store) = await CreateAsync();
        using var _ = store;
        var lease = (await hub.LockAsync("acme", default))!;
        hub.RetireIdle().Should().Be(0, "a writer holds the gate");
        lease.Dispose();

        hub.RetireIdle().Should().Be(1);
        lease.Bus.IsRetired.Should().BeTrue();
        using var next = (await hub.LockAsync("acme", default))!;
        next.Bus.Should().NotBeSameAs(lease.Bus, "a retired bus is never written to again");
        next.Bus.IsClosed.Should().BeFalse();
    }

    [Fact]
    public async Task AfterCloseAllNothingLoads()
    {
        var (hub, store) = await CreateAsync();
        using var _ = store;
        await hub.GetAsync("acme", default);
        hub.CloseAll(Validation.Failures.Unavailable("stopping"));
        (await hub.Invoking(h => h.GetAsync("acme", default)).Should().ThrowAsync<CoordinationException>()).Which.ErrorCode
            .Should().Be(CoordinationErrorCode.Unavailable);
    }
}
