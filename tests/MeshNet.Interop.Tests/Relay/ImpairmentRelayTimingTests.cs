using MeshNet.TestSupport.Impairment;
using Xunit.Abstractions;
using static MeshNet.Interop.Tests.Relay.ArrivalStatistics;

namespace MeshNet.Interop.Tests.Relay;

/// <summary>
/// The <see cref="ImpairmentRelay"/>'s delay and jitter, measured on loopback: datagrams leave
/// on time to well within a millisecond, jitter has the configured spread, and the scheduler
/// path allocates nothing per datagram.
/// </summary>
[Trait("Category", "Unit")]
[Collection(MeasurementCollection.Name)]
public sealed class ImpairmentRelayTimingTests(ITestOutputHelper output)
{
    [Fact]
    public void A_fixed_delay_is_met_to_within_a_millisecond()
    {
        using var probe = RelayProbe.Start(ImpairmentProfile.Delayed(TimeSpan.FromMilliseconds(10)));
        var arrivals = probe.SendAndCollect(600, burst: 1, pause: TimeSpan.FromMilliseconds(2));

        var delays = arrivals.Select(a => a.DelayMs).ToList();
        Report("10 ms", delays);
        arrivals.Should().HaveCount(600);
        delays.Min().Should().BeGreaterThanOrEqualTo(9.95, "a datagram never leaves early");
        Quantile(delays, 0.5).Should().BeLessThan(10.5);
        Quantile(delays, 0.9).Should().BeLessThan(11.5, "the relay is accurate to about 1 ms (with room for a busy shared machine)");
        probe.Relay.AToB.Delayed.Should().Be(600);
        LateArrivals(arrivals).Should().Be(0);
    }

    [Fact]
    public void Jitter_spreads_delays_uniformly_around_the_mean_and_may_reorder()
    {
        using var probe = RelayProbe.Start(ImpairmentProfile.Delayed(TimeSpan.FromMilliseconds(20), TimeSpan.FromMilliseconds(5), keepOrder: false), seed: 2);
        var arrivals = probe.SendAndCollect(1500, burst: 1, pause: TimeSpan.FromMilliseconds(1));

        var delays = arrivals.Select(a => a.DelayMs).ToList();
        Report("20 ± 5 ms", delays);
        arrivals.Should().HaveCount(1500);
        delays.Min().Should().BeGreaterThanOrEqualTo(14.95);
        Quantile(delays, 0.99).Should().BeLessThan(27.0, "at most 25 ms, plus 2 ms of scheduling on a busy shared machine");
        delays.Average().Should().BeInRange(19.5, 21.0);
        StandardDeviation(delays).Should().BeInRange(2.5, 3.4, "uniform on ±5 ms has a standard deviation of 2.89 ms");
        delays.Count(d => d < 17).Should().BeGreaterThan(150, "about 20% fall in [15, 17)");
        delays.Count(d => d > 23).Should().BeGreaterThan(150, "about 20% fall in (23, 25]");
        LateArrivals(arrivals).Should().BeGreaterThan(100, "jitter of ±5 ms reorders datagrams 1 ms apart");
    }

    [Fact]
    public void Jitter_that_keeps_order_never_reorders_nor_delivers_early()
    {
        using var probe = RelayProbe.Start(ImpairmentProfile.Delayed(TimeSpan.FromMilliseconds(20), TimeSpan.FromMilliseconds(5)), seed: 2);
        var arrivals = probe.SendAndCollect(1000, burst: 1, pause: TimeSpan.FromMilliseconds(1));

        var delays = arrivals.Select(a => a.DelayMs).ToList();
        Report("20 ± 5 ms ordered", delays);
        arrivals.Select(a => a.Sequence).Should().Equal(Enumerable.Range(0, 1000));
        delays.Min().Should().BeGreaterThanOrEqualTo(14.95);
        Quantile(delays, 0.99).Should().BeLessThan(27.0, "at most 25 ms, plus 2 ms of scheduling on a busy shared machine");
        StandardDeviation(delays).Should().BeGreaterThan(1.0, "jitter still varies the delay");
    }

    [Fact]
    public void The_scheduler_path_allocates_nothing_per_datagram()
    {
        var profile = new ImpairmentProfile
        {
            Delay = TimeSpan.FromMilliseconds(1),
            Jitter = TimeSpan.FromMilliseconds(0.5),
            DuplicateProbability = 0.01,
            ReorderProbability = 0.01,
        };
        using var probe = RelayProbe.Start(profile);
        probe.SendAndCollect(3000, size: 1200); // warm up: pools, queue capacity, JIT

        const int count = 20_000;
        long before = GC.GetTotalAllocatedBytes(precise: true);
        int arrived = probe.SendAndReceive(count, size: 1200);
        long allocated = GC.GetTotalAllocatedBytes(precise: true) - before;

        output.WriteLine($"{allocated} bytes allocated for {count} datagrams; {probe.Relay}");
        arrived.Should().BeGreaterThanOrEqualTo(count);
        // The probe allocates a thread and a 64 KiB buffer per run (about 3 bytes per datagram);
        // a relay copying each datagram into a new array would add over 1,200.
        (allocated / (double)count).Should().BeLessThan(64);
    }

    private void Report(string what, List<double> delays) =>
        output.WriteLine($"{what}: n={delays.Count} min={delays.Min():0.000} p50={Quantile(delays, 0.5):0.000} p90={Quantile(delays, 0.9):0.000} " +
            $"p99={Quantile(delays, 0.99):0.000} max={delays.Max():0.000} mean={delays.Average():0.000} sd={StandardDeviation(delays):0.000} ms");
}
