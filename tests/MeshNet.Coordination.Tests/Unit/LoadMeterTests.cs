using MeshNet.Coordination.Sharding;
using Microsoft.Extensions.Time.Testing;

namespace MeshNet.Coordination.Tests.Unit;

/// <summary>The rebalancer's per-tailnet change rate: an exponential average over the configured window.</summary>
[Trait("Category", "Unit")]
public sealed class LoadMeterTests
{
    [Fact]
    public void ChangesAreAveragedOverTheWindowAndDecayWhenTheyStop()
    {
        var time = new FakeTimeProvider();
        var meter = new LoadMeter(time, TimeSpan.FromSeconds(10));
        meter.TimeConstant.Should().Be(TimeSpan.FromSeconds(10));
        for (int second = 0; second < 100; second++)
        {
            for (int i = 0; i < 20; i++)
            {
                meter.Changed("busy");
            }
            meter.Changed("quiet");
            time.Advance(TimeSpan.FromSeconds(1));
            meter.Sample([], 0, 0);
        }
        meter.ChangesPerSecond("busy").Should().BeApproximately(20, 0.01, "a steady 20 changes a second, after ten windows");
        meter.ChangesPerSecond("quiet").Should().BeApproximately(1, 0.001);

        time.Advance(TimeSpan.FromSeconds(10));
        meter.Sample([], 0, 0);
        meter.ChangesPerSecond("busy").Should().BeApproximately(20 / Math.E, 0.01, "one window without changes takes it down by e");
        meter.ChangesPerSecond("unknown").Should().Be(0);
    }

    [Fact]
    public void ABurstWeighsLessTheLongerTheWindow()
    {
        double AfterBurst(TimeSpan window)
        {
            var time = new FakeTimeProvider();
            var meter = new LoadMeter(time, window);
            for (int i = 0; i < 100; i++)
            {
                meter.Changed("t");
            }
            time.Advance(TimeSpan.FromSeconds(1));
            meter.Sample([], 0, 0);
            return meter.ChangesPerSecond("t");
        }
        AfterBurst(TimeSpan.FromSeconds(30)).Should().BeApproximately(100 * (1 - Math.Exp(-1 / 30.0)), 1e-9);
        AfterBurst(TimeSpan.FromSeconds(2)).Should().BeGreaterThan(AfterBurst(TimeSpan.FromSeconds(30)) * 10);
        new LoadMeter(new FakeTimeProvider()).TimeConstant.Should().Be(TimeSpan.FromSeconds(30), "the default");
    }
}
