using MeshNet.Diagnostics;
using Microsoft.Extensions.Time.Testing;

namespace MeshNet.Tests.Diagnostics;

/// <summary>The limit on repeated log lines shared by the packet filter's denials and the netmap cache's failed writes.</summary>
[Trait("Category", "Unit")]
public sealed class LogRateLimitTests
{
    [Fact]
    public void OneMessagePassesPerIntervalAndTheNextOneToPassSaysHowManyWereHeldBack()
    {
        var time = new FakeTimeProvider();
        var limit = new LogRateLimit(time, TimeSpan.FromSeconds(1));

        limit.TryEnter(out long suppressed).Should().BeTrue("the first message passes at once");
        suppressed.Should().Be(0);
        for (int i = 0; i < 5; i++)
        {
            limit.TryEnter(out _).Should().BeFalse("within the interval");
        }
        time.Advance(TimeSpan.FromMilliseconds(999));
        limit.TryEnter(out _).Should().BeFalse("999 ms after the first");

        time.Advance(TimeSpan.FromMilliseconds(1));
        limit.TryEnter(out suppressed).Should().BeTrue("one interval after the first");
        suppressed.Should().Be(6);
        time.Advance(TimeSpan.FromSeconds(1));
        limit.TryEnter(out suppressed).Should().BeTrue();
        suppressed.Should().Be(0, "the count starts again from each message that passes");
    }

    [Fact]
    public void OfManyThreadsAtOnceExactlyOnePassesAndTheOthersAreAllCounted()
    {
        var time = new FakeTimeProvider();
        var limit = new LogRateLimit(time, TimeSpan.FromMinutes(1));
        int passed = 0;
        Parallel.For(0, 10_000, _ =>
        {
            if (limit.TryEnter(out _))
            {
                Interlocked.Increment(ref passed);
            }
        });
        passed.Should().Be(1);
        time.Advance(TimeSpan.FromMinutes(1));
        limit.TryEnter(out long suppressed).Should().BeTrue();
        suppressed.Should().Be(9_999);
    }
}
