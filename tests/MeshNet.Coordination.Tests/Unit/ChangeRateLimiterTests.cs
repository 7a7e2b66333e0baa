using MeshNet.Coordination.Bus;
using Microsoft.Extensions.Time.Testing;

namespace MeshNet.Coordination.Tests.Unit;

/// <summary>The per-tailnet change budget: a token bucket whose refusals hand out turns one token apart.</summary>
[Trait("Category", "Unit")]
public sealed class ChangeRateLimiterTests
{
    [Fact]
    public void ABurstIsAllowedThenChangesFollowTheRate()
    {
        var time = new FakeTimeProvider();
        var limiter = new ChangeRateLimiter(perSecond: 10, burst: 5, time);
        Enumerable.Range(0, 5).Select(_ => limiter.TryTake(out var unused)).ToList().Should().AllBeEquivalentTo(true, "the burst");
        limiter.TryTake(out var retry).Should().BeFalse();
        retry.Should().Be(TimeSpan.FromMilliseconds(100), "one token comes every 100 ms");

        time.Advance(TimeSpan.FromMilliseconds(100));
        limiter.TryTake(out _).Should().BeTrue();
        limiter.TryTake(out _).Should().BeFalse();
        time.Advance(TimeSpan.FromSeconds(10));
        Enumerable.Range(0, 5).Select(_ => limiter.TryTake(out var unused)).ToList().Should().AllBeEquivalentTo(true, "an idle tailnet has its burst back, no more");
        limiter.TryTake(out _).Should().BeFalse();
    }

    [Fact]
    public void RefusedCallersAreGivenTurnsOneTokenApartSoThatTheyDoNotAllComeBackAtOnce()
    {
        var time = new FakeTimeProvider();
        var limiter = new ChangeRateLimiter(perSecond: 100, burst: 5, time);
        for (int i = 0; i < 5; i++)
        {
            limiter.TryTake(out _).Should().BeTrue();
        }
        var turns = Enumerable.Range(0, 40).Select(_ => limiter.TryTake(out var retry) ? TimeSpan.Zero : retry).ToList();
        turns.Should().BeInAscendingOrder().And.OnlyHaveUniqueItems();
        turns[0].Should().Be(TimeSpan.FromMilliseconds(10));
        turns[^1].TotalMilliseconds.Should().BeApproximately(400, 0.001, "the fortieth caller comes back 40 tokens later");

        // Each caller returning at its turn finds its token.
        int served = 0;
        foreach (var turn in turns)
        {
            time.Advance(turn - (served == 0 ? TimeSpan.Zero : turns[served - 1]));
            limiter.TryTake(out _).Should().BeTrue($"caller {served} came back at its turn");
            served++;
        }
    }

    [Fact]
    public void TurnsAreCappedAndForgottenAsTimePasses()
    {
        var time = new FakeTimeProvider();
        var limiter = new ChangeRateLimiter(perSecond: 1, burst: 1, time);
        limiter.TryTake(out _).Should().BeTrue();
        TimeSpan last = default;
        for (int i = 0; i < 30; i++)
        {
            limiter.TryTake(out last);
        }
        last.Should().Be(ChangeRateLimiter.MaxRetryAfter);

        time.Advance(TimeSpan.FromSeconds(60));
        limiter.TryTake(out _).Should().BeTrue();
        limiter.TryTake(out var retry).Should().BeFalse();
        retry.Should().Be(TimeSpan.FromSeconds(1), "turns handed out long ago no longer delay anyone");
    }
}
