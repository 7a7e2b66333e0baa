using MeshNet.Control;

namespace MeshNet.Tests.Control;

[Trait("Category", "Unit")]
public sealed class ReconnectBackoffTests
{
    [Fact]
    public void CeilingDoublesUpToTheMaximum()
    {
        var backoff = new ReconnectBackoff(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(60));
        Enumerable.Range(0, 9).Select(n => backoff.Ceiling(n).TotalSeconds).Should().Equal(1, 2, 4, 8, 16, 32, 60, 60, 60);
        backoff.Ceiling(1000).Should().Be(TimeSpan.FromSeconds(60));
        backoff.Ceiling(int.MaxValue).Should().Be(TimeSpan.FromSeconds(60));
    }

    [Fact]
    public void FullJitterStaysWithinZeroAndTheCeilingAndSpreadsOverIt()
    {
        var backoff = new ReconnectBackoff(TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(30), new Random(1234));
        for (int failures = 0; failures < 12; failures++)
        {
            var ceiling = backoff.Ceiling(failures);
            var delays = Enumerable.Range(0, 2000).Select(_ => backoff.Next(failures)).ToList();
            delays.Should().OnlyContain(d => d >= TimeSpan.Zero && d < ceiling);
            // Full jitter: spread across the whole range, not bunched near the ceiling.
            delays.Min().Should().BeLessThan(ceiling * 0.05);
            delays.Max().Should().BeGreaterThan(ceiling * 0.95);
            var mean = TimeSpan.FromTicks((long)delays.Average(d => d.Ticks));
            mean.Should().BeCloseTo(ceiling / 2, ceiling / 10);
        }
    }

    [Fact]
    public void SameSeedSameDelays()
    {
        var a = new ReconnectBackoff(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(10), new Random(7));
        var b = new ReconnectBackoff(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(10), new Random(7));
        Enumerable.Range(0, 20).Select(a.Next).Should().Equal(Enumerable.Range(0, 20).Select(b.Next));
    }
}
