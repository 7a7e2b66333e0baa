using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using MeshNet.TestSupport.Impairment;
using static MeshNet.Interop.Tests.Relay.ArrivalStatistics;

namespace MeshNet.Interop.Tests.Relay;

/// <summary>
/// The <see cref="ImpairmentRelay"/> on loopback, statistically: each impairment does what its
/// profile says, at the rate it says, repeatably for a seed. Timing-sensitive measurements are
/// in <see cref="ImpairmentRelayTimingTests"/>.
/// </summary>
[Trait("Category", "Unit")]
public sealed class ImpairmentRelayTests
{
    [Fact]
    public void Without_impairment_every_datagram_arrives_once_in_order()
    {
        using var probe = RelayProbe.Start(ImpairmentProfile.None);
        var arrivals = probe.SendAndCollect(2000);

        arrivals.Select(a => a.Sequence).Should().Equal(Enumerable.Range(0, 2000));
        var counters = probe.Relay.AToB.Snapshot();
        counters.Should().Be(new ImpairmentStats(2000, 2000, 0, 0, 0, 0, 0, 0, 0, 0));
        probe.Relay.PeerA.Should().Be(probe.ClientEndPoint, "side A learned its peer from the first datagram");
        probe.Relay.PeerB.Should().Be(probe.ServerEndPoint);
    }

    [Fact]
    public void Random_loss_drops_at_the_configured_rate_and_repeats_for_a_seed()
    {
        const int count = 20_000;
        const double p = 0.05;
        List<int> Dropped(int seed, out ImpairmentStats stats)
        {
            using var probe = RelayProbe.Start(ImpairmentProfile.RandomLoss(p), seed: seed);
            var arrivals = probe.SendAndCollect(count);
            stats = probe.Relay.AToB.Snapshot();
            arrivals.Should().OnlyHaveUniqueItems(a => a.Sequence);
            return Enumerable.Range(0, count).Except(arrivals.Select(a => a.Sequence)).ToList();
        }

        var first = Dropped(seed: 7, out var stats);
        first.Count.Should().BeCloseTo((int)(count * p), (uint)BinomialBound(count, p));
        stats.Dropped.Should().Be(first.Count, "every datagram the relay did not drop arrived");
        stats.Forwarded.Should().Be(count - first.Count);
        stats.DroppedLarge.Should().Be(0, "200-byte datagrams are below the large threshold");
        Dropped(seed: 7, out _).Should().Equal(first, "the same seed and order give the same losses");
        Dropped(seed: 8, out _).Should().NotEqual(first);
    }

    [Fact]
    public void Bursty_loss_gives_longer_loss_runs_than_random_loss_at_the_same_rate()
    {
        const int count = 30_000;
        var model = new GilbertElliottLoss(GoodToBad: 0.01, BadToGood: 0.2); // 4.76% loss, Bad runs of 5
        List<int> runs;
        ImpairmentStats stats;
        using (var probe = RelayProbe.Start(ImpairmentProfile.Bursty(model), seed: 3))
        {
            runs = LossRuns(probe.SendAndCollect(count, size: 300), count);
            stats = probe.Relay.AToB.Snapshot();
        }
        List<int> randomRuns;
        using (var probe = RelayProbe.Start(ImpairmentProfile.RandomLoss(model.LossRate), seed: 3))
        {
            randomRuns = LossRuns(probe.SendAndCollect(count), count);
        }

        double rate = runs.Sum() / (double)count;
        rate.Should().BeInRange(model.LossRate * 0.6, model.LossRate * 1.4);
        stats.Dropped.Should().Be(runs.Sum());
        stats.DroppedLarge.Should().Be(stats.Dropped, "300-byte datagrams count as large");
        stats.LossBursts.Should().Be(runs.Count, "the relay counts each run of consecutive drops once");
        runs.Average().Should().BeInRange(3.5, 6.5, "Bad lasts 1/r = 5 datagrams on average");
        randomRuns.Average().Should().BeLessThan(1.3, "independent losses at 4.8% rarely come in pairs");
        runs.Max().Should().BeGreaterThan(randomRuns.Max());
    }

    [Fact]
    public void Duplication_sends_the_configured_share_twice()
    {
        const int count = 10_000;
        const double p = 0.05;
        using var probe = RelayProbe.Start(ImpairmentProfile.Duplicated(p), seed: 11);
        var arrivals = probe.SendAndCollect(count);

        var stats = probe.Relay.AToB.Snapshot();
        arrivals.Select(a => a.Sequence).Distinct().Should().HaveCount(count, "nothing is lost");
        int twice = arrivals.GroupBy(a => a.Sequence).Count(g => g.Count() == 2);
        arrivals.GroupBy(a => a.Sequence).Should().OnlyContain(g => g.Count() <= 2);
        twice.Should().Be((int)stats.Duplicated);
        arrivals.Should().HaveCount(count + twice);
        twice.Should().BeCloseTo((int)(count * p), (uint)BinomialBound(count, p));
        stats.Forwarded.Should().Be(count + twice);
    }

    [Fact]
    public void Reordering_holds_the_configured_share_until_three_later_datagrams_passed()
    {
        const int count = 10_000;
        const double p = 0.05;
        using var probe = RelayProbe.Start(ImpairmentProfile.Reordered(p, gap: 3), seed: 5);
        var arrivals = probe.SendAndCollect(count);

        var stats = probe.Relay.AToB.Snapshot();
        arrivals.Select(a => a.Sequence).Order().Should().Equal(Enumerable.Range(0, count), "each datagram arrives exactly once");
        stats.Reordered.Should().BeCloseTo((long)(count * p), (ulong)BinomialBound(count, p));
        int late = LateArrivals(arrivals);
        late.Should().BeInRange((int)stats.Reordered - 3, (int)stats.Reordered, "every held datagram is overtaken (bar the last few, released by time)");

        // An isolated held datagram arrives exactly three places late.
        var position = new int[count];
        for (int i = 0; i < arrivals.Count; i++)
        {
            position[arrivals[i].Sequence] = i;
        }
        var displacements = Enumerable.Range(0, count).Select(s => position[s] - s).Where(d => d > 0).ToList();
        displacements.GroupBy(d => d).MaxBy(g => g.Count())!.Key.Should().Be(3);
    }

    [Fact]
    public void A_bad_spell_ends_after_its_longest_duration_on_a_quiet_link()
    {
        // The chain enters Bad at the first datagram and (practically) never leaves it by itself:
        // one datagram every 10 ms is then dropped for 50 ms, one passes, and Bad starts again.
        var bounded = new GilbertElliottLoss(GoodToBad: 1, BadToGood: 1e-12) { MaxBadDuration = TimeSpan.FromMilliseconds(50) };
        List<Arrival> arrivals;
        TimeSpan elapsed;
        using (var probe = RelayProbe.Start(ImpairmentProfile.Bursty(bounded), seed: 4))
        {
            var stopwatch = Stopwatch.StartNew();
            arrivals = probe.SendAndCollect(40, burst: 1, pause: TimeSpan.FromMilliseconds(10));
            elapsed = stopwatch.Elapsed;
        }
        arrivals.Should().HaveCountGreaterThanOrEqualTo(2, $"40 datagrams over {elapsed.TotalMilliseconds:0} ms span several 50 ms spells");
        arrivals.Count.Should().BeLessThanOrEqualTo((int)(elapsed.TotalMilliseconds / 50) + 1, "at most one datagram passes per spell");
        arrivals.Select(a => a.Sequence).Should().NotContain(0, "the first datagram starts the spell");

        using (var probe = RelayProbe.Start(ImpairmentProfile.Bursty(bounded with { MaxBadDuration = null }), seed: 4))
        {
            probe.SendAndCollect(40, burst: 1, pause: TimeSpan.FromMilliseconds(10), timeout: TimeSpan.FromSeconds(5))
                .Should().BeEmpty("without the bound the spell lasts as long as the chain says");
        }
    }

    [Fact]
    public void Reordering_by_hold_time_releases_held_datagrams_after_the_hold()
    {
        var profile = new ImpairmentProfile { ReorderProbability = 0.1, ReorderGap = 0, ReorderHold = TimeSpan.FromMilliseconds(30) };
        using var probe = RelayProbe.Start(profile, seed: 9);
        var arrivals = probe.SendAndCollect(500, burst: 10, pause: TimeSpan.FromMilliseconds(1));

        var stats = probe.Relay.AToB.Snapshot();
        stats.Reordered.Should().BePositive();
        var held = arrivals.Where(a => a.DelayMs >= 29.5).ToList();
        held.Should().HaveCount((int)stats.Reordered, "exactly the held datagrams wait the hold time");
        arrivals.Except(held).Should().OnlyContain(a => a.DelayMs < 15);
        LateArrivals(arrivals).Should().BeGreaterThanOrEqualTo(held.Count - 1);
    }

    [Fact]
    public void Both_directions_are_relayed_and_counted_separately()
    {
        using var probe = RelayProbe.Start(ImpairmentProfile.None, ImpairmentProfile.Duplicated(1.0));
        probe.SendAndCollect(10);
        for (int i = 0; i < 20; i++)
        {
            probe.Server.SendTo(new byte[] { (byte)i }, probe.Relay.EndPointB);
        }

        var buffer = new byte[16];
        var received = new List<byte>();
        probe.Client.ReceiveTimeout = 5000;
        for (int i = 0; i < 40; i++)
        {
            int length = probe.Client.Receive(buffer);
            length.Should().Be(1);
            received.Add(buffer[0]);
        }
        received.Should().Equal(Enumerable.Range(0, 20).SelectMany(i => new[] { (byte)i, (byte)i }));
        probe.Relay.BToA.Snapshot().Should().Be(new ImpairmentStats(20, 40, 0, 0, 0, 20, 0, 0, 0, 0));
        probe.Relay.AToB.Received.Should().Be(10);
    }

    [Fact]
    public void A_datagram_towards_a_side_without_a_peer_is_dropped_and_counted()
    {
        using var probe = RelayProbe.Start(ImpairmentProfile.None);
        probe.Server.SendTo(new byte[] { 1 }, probe.Relay.EndPointB);
        Poll(() => probe.Relay.BToA.NoPeer == 1);
        probe.Relay.BToA.Forwarded.Should().Be(0);
        probe.Relay.PeerA.Should().BeNull();
    }

    [Fact]
    public void Changing_the_profile_applies_to_the_next_datagrams()
    {
        using var probe = RelayProbe.Start(ImpairmentProfile.RandomLoss(1.0));
        probe.SendAndCollect(100, timeout: TimeSpan.FromSeconds(5)).Should().BeEmpty();
        probe.Relay.Impair(ImpairmentProfile.None, ImpairmentProfile.None);
        probe.SendAndCollect(100).Should().HaveCount(100);
        probe.Relay.AToB.Dropped.Should().Be(100);
        FluentActions.Invoking(() => probe.Relay.Impair(ImpairmentProfile.RandomLoss(1.5), ImpairmentProfile.None))
            .Should().Throw<ArgumentException>().WithMessage("*LossProbability*");
    }

    [Fact]
    public void Dispose_stops_the_threads_frees_the_ports_and_drops_what_is_queued()
    {
        var probe = RelayProbe.Start(ImpairmentProfile.Delayed(TimeSpan.FromMilliseconds(300)));
        var endPointA = probe.Relay.EndPointA;
        var target = endPointA.Serialize();
        for (int i = 0; i < 50; i++)
        {
            probe.Client.SendTo(new byte[12], SocketFlags.None, target);
        }
        Poll(() => probe.Relay.Pending == 50);

        var started = DateTime.UtcNow;
        probe.Relay.Dispose();
        (DateTime.UtcNow - started).Should().BeLessThan(TimeSpan.FromSeconds(2));
        probe.Relay.ThreadsStopped.Should().BeTrue();
        probe.Relay.Pending.Should().Be(0);
        probe.Server.Poll(500_000, SelectMode.SelectRead).Should().BeFalse("queued datagrams are dropped, not sent");
        probe.Relay.AToB.Forwarded.Should().Be(0);
        using (var rebound = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp))
        {
            rebound.Bind(endPointA); // the relay's socket is closed
        }
        probe.Relay.Dispose(); // idempotent
        probe.Dispose();
    }

    [Fact]
    public void Relay_accepts_pre_bound_sockets_and_validates_them()
    {
        var a = RelayProbe.Open();
        var b = RelayProbe.Open();
        var tcp = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        FluentActions.Invoking(() => ImpairmentRelay.Start(a, tcp)).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => a.Send(new byte[1])).Should().Throw<ObjectDisposedException>("a failed start disposes the sockets");

        var c = RelayProbe.Open();
        using var relay = ImpairmentRelay.Start(b, c);
        relay.EndPointA.Should().Be(b.LocalEndPoint);
        relay.EndPointB.Should().Be(c.LocalEndPoint);
    }

    [Fact]
    public void Invalid_profiles_are_rejected_naming_the_property()
    {
        FluentActions.Invoking(() => ImpairmentRelay.Start(new ImpairmentRelayOptions { BToA = new ImpairmentProfile { Delay = TimeSpan.FromMilliseconds(-1) } }))
            .Should().Throw<ArgumentException>().WithMessage("*BToA*Delay*");
        FluentActions.Invoking(() => ImpairmentRelay.Start(new ImpairmentRelayOptions { AToB = ImpairmentProfile.Bursty(new GilbertElliottLoss(0.1, 0)) }))
            .Should().Throw<ArgumentException>().WithMessage("*BadToGood*");
        FluentActions.Invoking(() => ImpairmentRelay.Start(new ImpairmentRelayOptions { AToB = ImpairmentProfile.Bursty(new GilbertElliottLoss(0.1, 0.5) { MaxBadDuration = TimeSpan.Zero }) }))
            .Should().Throw<ArgumentException>().WithMessage("*MaxBadDuration*");
        GilbertElliottLoss.Bursty.LossRate.Should().BeApproximately(0.0079, 0.0001);
        GilbertElliottLoss.Bursty.MeanBadRun.Should().Be(4);
    }

    private static void Poll(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!condition())
        {
            DateTime.UtcNow.Should().BeBefore(deadline, "the condition should hold within 10 s");
            Thread.Sleep(5);
        }
    }
}
