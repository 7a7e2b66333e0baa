using MeshNet.Coordination.Storage;
using MeshNet.TestSupport;

namespace MeshNet.Coordination.Tests.Storage;

/// <summary>
/// What every lease store must do, run against SQLite and PostgreSQL alike: grants always raise
/// the epoch; renewals, expiry, takeover, handover, release; the sticky period and quarantine;
/// servers, roles, settings and incidents. Expiry is real (the database's clock): leases that
/// must expire get a TTL of a millisecond, and the test waits until the store says so.
/// </summary>
public abstract class LeaseStoreContractTests : IAsyncLifetime
{
    private static readonly TimeSpan Long = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan Instant = TimeSpan.FromMilliseconds(1);

    private readonly List<IAsyncDisposable> _owned = [];

    protected abstract Task<ContractStore> CreateStoreAsync();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var owned in _owned)
        {
            await owned.DisposeAsync();
        }
    }

    private async Task<ContractStore> OpenAsync(params string[] tailnets)
    {
        var store = await CreateStoreAsync();
        _owned.Add(store);
        foreach (var tailnet in tailnets)
        {
            await store.Data.TryCreateTailnetAsync(new StoredTailnet(tailnet, $"{tailnet}.meshnet.internal", DateTimeOffset.UtcNow, TimeSpan.FromDays(1)), default);
        }
        await store.Leases.RegisterServerAsync("s1", "http://s1.test", "i1", default);
        await store.Leases.RegisterServerAsync("s2", "http://s2.test", "i2", default);
        return store;
    }

    [ContractFact]
    public async Task AFreeLeaseIsClaimedOnceRenewedByItsOwnerAndNamedWithItsUrl()
    {
        var store = await OpenAsync("a", "b");
        var grants = await store.Leases.ClaimAsync(ContractStore.Claim("s1", "i1", Long), default);
        grants.Select(grant => (grant.Tailnet, grant.Epoch, grant.PreviousOwner)).Should().BeEquivalentTo([("a", 1UL, (string?)null), ("b", 1UL, (string?)null)]);
        (await store.Leases.ClaimAsync(ContractStore.Claim("s2", "i2", Long), default)).Should().BeEmpty("both are held");

        var renewal = await store.Leases.RenewAsync("s1", "i1", Long, "{\"streams\":3}", default);
        renewal.Registered.Should().BeTrue();
        renewal.Held.Should().BeEquivalentTo([new HeldLease("a", 1), new HeldLease("b", 1)]);
        var lease = (await store.Leases.GetLeaseAsync("a", default))!;
        lease.Owner.Should().Be("s1");
        lease.OwnerInstance.Should().Be("i1");
        lease.OwnerUrl.Should().Be("http://s1.test");
        lease.ExpiresIn.Should().BeGreaterThan(TimeSpan.FromMinutes(4));
        lease.Quarantined.Should().BeFalse();
        (await store.Leases.ListLeasesAsync(default)).Select(item => item.Tailnet).Should().Equal("a", "b");
        var servers = await store.Leases.ListServersAsync(default);
        servers.Select(server => server.Id).Should().Equal("s1", "s2");
        servers[0].Load.Should().Be("{\"streams\":3}");
        servers[0].HeartbeatAge.Should().BeLessThan(TimeSpan.FromMinutes(1));
        (await store.Leases.RenewAsync("s2", "i2", Long, "", default)).Held.Should().BeEmpty();
    }

    [ContractFact]
    public async Task AnExpiredLeaseIsTakenOverWithTheNextEpochAndTheOldOwnerLearnsItAtRenewal()
    {
        var store = await OpenAsync("a");
        (await store.Leases.ClaimAsync(ContractStore.Claim("s1", "i1", Instant), default)).Single().Epoch.Should().Be(1);
        await WaitExpiredAsync(store, "a");

        var takeover = (await store.Leases.ClaimAsync(ContractStore.Claim("s2", "i2", Long), default)).Single();
        takeover.Epoch.Should().Be(2);
        takeover.PreviousOwner.Should().Be("s1");
        takeover.PreviousInstance.Should().Be("i1");
        takeover.PreviousRenewal.Should().NotBeNull();
        takeover.Released.Should().BeFalse();
        (await store.Leases.RenewAsync("s1", "i1", Long, "", default)).Held.Should().BeEmpty("the lease is s2's now");
        (await store.Data.SavePolicyAsync(new TailnetFence("a", 1), "{}", DateTimeOffset.UtcNow, default)).Status.Should().Be(FencedStatus.Fenced);
        (await store.Data.SavePolicyAsync(new TailnetFence("a", 2), "{}", DateTimeOffset.UtcNow, default)).Status.Should().Be(FencedStatus.Committed);
    }

    [ContractFact]
    public async Task AnExpiredLeaseFencesItsOwnWritesUntilRenewedWithTheSameEpoch()
    {
        var store = await OpenAsync("a");
        var epoch = (await store.Leases.ClaimAsync(ContractStore.Claim("s1", "i1", Instant), default)).Single().Epoch;
        await WaitExpiredAsync(store, "a");
        (await store.Data.SavePolicyAsync(new TailnetFence("a", epoch), "{}", DateTimeOffset.UtcNow, default)).Status
            .Should().Be(FencedStatus.Fenced, "the database's clock says the lease expired");

        (await store.Leases.RenewAsync("s1", "i1", Long, "", default)).Held.Should().Equal([new HeldLease("a", epoch)], "nobody took it: the owner keeps its epoch");
        (await store.Data.SavePolicyAsync(new TailnetFence("a", epoch), "{}", DateTimeOffset.UtcNow, default)).Status.Should().Be(FencedStatus.Committed);
    }

    [ContractFact]
    public async Task ARestartedServerTakesItsOwnLeasesBackAtOnceAndTheOldInstanceIsToldItWasReplaced()
    {
        var store = await OpenAsync("a");
        await store.Leases.ClaimAsync(ContractStore.Claim("s1", "i1", Long), default);
        await store.Leases.RegisterServerAsync("s1", "http://s1.test", "i1b", default);

        var back = (await store.Leases.ClaimAsync(ContractStore.Claim("s1", "i1b", Long), default)).Single();
        back.Epoch.Should().Be(2, "its own unexpired lease, from its previous run");
        back.PreviousOwner.Should().Be("s1");
        (await store.Leases.RenewAsync("s1", "i1", Long, "", default)).Registered.Should().BeFalse("a newer process holds the id");
        (await store.Leases.RenewAsync("s1", "i1b", Long, "", default)).Held.Should().Equal(new HeldLease("a", 2));
        (await store.Leases.ClaimAsync(ContractStore.Claim("s1", "i1", Long), default)).Should().BeEmpty("the replaced instance claims nothing");
    }

    [ContractFact]
    public async Task AReleasedLeaseIsClaimableAtOnceWithoutAStrike()
    {
        var store = await OpenAsync("a");
        var epoch = (await store.Leases.ClaimAsync(ContractStore.Claim("s1", "i1", Long), default)).Single().Epoch;
        (await store.Leases.ReleaseAsync("a", "s2", epoch, default)).Should().BeFalse("only the owner releases");
        (await store.Leases.ReleaseAsync("a", "s1", epoch + 1, default)).Should().BeFalse("only with its epoch");
        (await store.Leases.ReleaseAsync("a", "s1", epoch, default)).Should().BeTrue();
        (await store.Leases.GetLeaseAsync("a", default))!.Owner.Should().BeNull();

        var grant = (await store.Leases.ClaimAsync(ContractStore.Claim("s2", "i2", Long, quarantine: TimeSpan.FromMinutes(10)), default)).Single();
        grant.Epoch.Should().Be(epoch + 1);
        grant.Released.Should().BeTrue();
        grant.PreviousOwner.Should().BeNull();
    }

    [ContractFact]
    public async Task TwoOwnersThatDieBeforeTheirFirstRenewalQuarantineTheTailnetUntilReleased()
    {
        var store = await OpenAsync("poison", "fine");
        var window = TimeSpan.FromMinutes(10);
        await store.Leases.ClaimAsync(ContractStore.Claim("s1", "i1", Instant, "poison", quarantine: window), default);
        await WaitExpiredAsync(store, "poison");
        var second = (await store.Leases.ClaimAsync(ContractStore.Claim("s2", "i2", Instant, "poison", quarantine: window), default)).Single();
        second.Quarantined.Should().BeFalse("one strike is not enough");
        await WaitExpiredAsync(store, "poison");

        var third = (await store.Leases.ClaimAsync(ContractStore.Claim("s1", "i1", Long, quarantine: window), default)).ToList();
        third.Single(grant => grant.Tailnet == "poison").Quarantined.Should().BeTrue();
        third.Single(grant => grant.Tailnet == "fine").Quarantined.Should().BeFalse();
        var lease = (await store.Leases.GetLeaseAsync("poison", default))!;
        lease.Quarantined.Should().BeTrue();
        lease.Owner.Should().BeNull();
        lease.QuarantineReason.Should().Contain("s2");
        (await store.Leases.ClaimAsync(ContractStore.Claim("s2", "i2", Long, quarantine: window), default)).Should().BeEmpty("nobody claims it");

        (await store.Leases.ReleaseQuarantineAsync("poison", default)).Should().BeTrue();
        (await store.Leases.ReleaseQuarantineAsync("poison", default)).Should().BeFalse();
        var released = (await store.Leases.ClaimAsync(ContractStore.Claim("s2", "i2", Long, "poison", quarantine: window), default)).Single();
        released.Quarantined.Should().BeFalse();
    }

    [ContractFact]
    public async Task AnOwnerThatRenewedOnceLeavesNoStrike()
    {
        var store = await OpenAsync("a");
        var window = TimeSpan.FromMinutes(10);
        for (int round = 0; round < 3; round++)
        {
            string server = round % 2 == 0 ? "s1" : "s2";
            string instance = round % 2 == 0 ? "i1" : "i2";
            (await store.Leases.ClaimAsync(ContractStore.Claim(server, instance, Instant, "a", quarantine: window), default)).Single().Quarantined.Should().BeFalse();
            await store.Leases.RenewAsync(server, instance, Instant, "", default);
            await WaitExpiredAsync(store, "a");
        }
        (await store.Leases.GetLeaseAsync("a", default))!.Quarantined.Should().BeFalse();
    }

    [ContractFact]
    public async Task DuringTheStickyPeriodOthersCannotClaimAnExpiredLeaseAndItsOwnerRenewsItWithItsEpoch()
    {
        var store = await OpenAsync("a");
        await store.Leases.ClaimAsync(ContractStore.Claim("s1", "i1", Instant), default);
        await WaitExpiredAsync(store, "a");
        var sticky = TimeSpan.FromDays(1);
        (await store.Leases.ClaimAsync(ContractStore.Claim("s2", "i2", Long, sticky: sticky), default)).Should().BeEmpty();
        (await store.Leases.ClaimAsync(ContractStore.Claim("s1", "i1", Long), default)).Should().BeEmpty("a holder renews, it does not claim");
        (await store.Leases.RenewAsync("s1", "i1", Long, "", default)).Held.Should().Equal([new HeldLease("a", 1)]);
        (await store.Leases.ClaimAsync(ContractStore.Claim("s2", "i2", Long), default)).Should().BeEmpty("renewed: not expired any more");
    }

    [ContractFact]
    public async Task AHandoverIsOneCompareAndSetThatRaisesTheEpoch()
    {
        var store = await OpenAsync("a");
        var epoch = (await store.Leases.ClaimAsync(ContractStore.Claim("s1", "i1", Long), default)).Single().Epoch;
        (await store.Leases.HandOverAsync("a", "s2", epoch, "s1", "i1", Long, default)).Should().BeNull("s2 does not hold it");
        (await store.Leases.HandOverAsync("a", "s1", epoch + 5, "s2", "i2", Long, default)).Should().BeNull("not at that epoch");

        var grant = (await store.Leases.HandOverAsync("a", "s1", epoch, "s2", "i2", Long, default))!;
        grant.Epoch.Should().Be(epoch + 1);
        grant.PreviousOwner.Should().Be("s1");
        var lease = (await store.Leases.GetLeaseAsync("a", default))!;
        (lease.Owner, lease.OwnerInstance, lease.Epoch).Should().Be(("s2", "i2", epoch + 1));
        lease.MovedAt.Should().NotBeNull();
        (await store.Leases.HandOverAsync("a", "s1", epoch, "s2", "i2", Long, default)).Should().BeNull("the compare-and-set happens once");
        (await store.Leases.RenewAsync("s1", "i1", Long, "", default)).Held.Should().BeEmpty();
        (await store.Leases.RenewAsync("s2", "i2", Long, "", default)).Held.Should().Equal(new HeldLease("a", epoch + 1));
    }

    [ContractFact]
    public async Task ADrainingServerClaimsNothing()
    {
        var store = await OpenAsync("a");
        (await store.Leases.SetDrainingAsync("s1", true, default)).Should().BeTrue();
        (await store.Leases.SetDrainingAsync("nobody", true, default)).Should().BeFalse();
        (await store.Leases.ClaimAsync(ContractStore.Claim("s1", "i1", Long), default)).Should().BeEmpty();
        (await store.Leases.ListServersAsync(default)).Single(server => server.Id == "s1").Draining.Should().BeTrue();
        await store.Leases.SetDrainingAsync("s1", false, default);
        (await store.Leases.ClaimAsync(ContractStore.Claim("s1", "i1", Long), default)).Should().ContainSingle();
        (await store.Leases.DeregisterServerAsync("s1", "i1", default)).Should().BeTrue();
        (await store.Leases.ListServersAsync(default)).Single(server => server.Id == "s1").Stopped.Should().BeTrue();
    }

    [ContractFact]
    public async Task ParallelClaimsNeverGrantALeaseTwice()
    {
        var tailnets = Enumerable.Range(0, 40).Select(i => $"t{i}").ToArray();
        var store = await OpenAsync(tailnets);
        var claims = await Task.WhenAll(Enumerable.Range(0, 8).Select(i =>
            Task.Run(() => store.Leases.ClaimAsync(ContractStore.Claim(i % 2 == 0 ? "s1" : "s2", i % 2 == 0 ? "i1" : "i2", Long, limit: 10), default))));
        var granted = claims.SelectMany(grants => grants).ToList();
        granted.Select(grant => grant.Tailnet).Should().OnlyHaveUniqueItems();
        granted.Should().HaveCount(40);
        granted.Should().OnlyContain(grant => grant.Epoch == 1);
    }

    [ContractFact]
    public async Task ARoleHasOneHolderUntilItExpires()
    {
        var store = await OpenAsync();
        (await store.Leases.TryHoldRoleAsync("rebalancer", "s1", "i1", Instant, default)).Should().BeTrue();
        for (int attempt = 0; !await store.Leases.TryHoldRoleAsync("rebalancer", "s2", "i2", Long, default); attempt++)
        {
            attempt.Should().BeLessThan(1000, "the 1 ms role expires");
            await Task.Yield();
        }
        (await store.Leases.TryHoldRoleAsync("rebalancer", "s1", "i1", Long, default)).Should().BeFalse("s2 holds it");
        (await store.Leases.TryHoldRoleAsync("rebalancer", "s2", "i2", Long, default)).Should().BeTrue("the holder keeps it");
        (await store.Leases.TryHoldRoleAsync("other", "s1", "i1", Long, default)).Should().BeTrue();
    }

    [ContractFact]
    public async Task SettingsAndIncidentsRoundTrip()
    {
        var store = await OpenAsync();
        (await store.Leases.GetSettingAsync("rebalancer.paused", default)).Should().BeNull();
        await store.Leases.SetSettingAsync("rebalancer.paused", "true", default);
        await store.Leases.SetSettingAsync("rebalancer.paused", "false", default);
        (await store.Leases.GetSettingAsync("rebalancer.paused", default)).Should().Be("false");

        var at = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        await store.Leases.OpenIncidentAsync(new StoredIncident("failover:s1:i1", "failover", "s1", at, 10, 500), default);
        await store.Leases.OpenIncidentAsync(new StoredIncident("failover:s1:i1", "other", "x", at, 1, 1), default);
        await store.Leases.OpenIncidentAsync(new StoredIncident("move:a:3", "planned-move", "a", at.AddSeconds(1), 10, 500), default);
        var part = new StoredIncidentTailnet("failover:s1:i1", "a", "s2", 2, TimeSpan.FromMilliseconds(4800), 100, 99, 512.5, TimeSpan.FromMilliseconds(900),
            TimeSpan.FromMilliseconds(1400), null, 3, "S1", false);
        await store.Leases.SaveIncidentTailnetAsync(part, default);
        await store.Leases.SaveIncidentTailnetAsync(part with { NodesResumed = 100, TimeToMitigate = TimeSpan.FromMilliseconds(6200), Closed = true }, default);
        await store.Leases.SaveIncidentTailnetAsync(part with { Tailnet = "b", NodesAffected = 0, NodesResumed = 0, Severity = "S3" }, default);

        var incidents = await store.Leases.ListIncidentsAsync(10, default);
        incidents.Select(incident => incident.Id).Should().Equal("move:a:3", "failover:s1:i1");
        var failover = incidents[1];
        (failover.Cause, failover.Subject, failover.StartedAt, failover.TailnetsTotal, failover.NodesTotal).Should().Be(("failover", "s1", at, 10L, 500L));
        failover.Tailnets.Select(item => item.Tailnet).Should().Equal("a", "b");
        failover.Tailnets[0].Should().Be(part with { NodesResumed = 100, TimeToMitigate = TimeSpan.FromMilliseconds(6200), Closed = true });
        (await store.Leases.ListIncidentsAsync(1, default)).Single().Id.Should().Be("move:a:3");
    }

    private static async Task WaitExpiredAsync(ContractStore store, string tailnet)
    {
        for (int attempt = 0; ; attempt++)
        {
            var lease = await store.Leases.GetLeaseAsync(tailnet, default);
            if (lease!.ExpiresIn <= TimeSpan.Zero)
            {
                return;
            }
            attempt.Should().BeLessThan(10_000, "a 1 ms lease expires");
            await Task.Yield();
        }
    }
}
