using MeshNet.TestSupport;
using MeshNet.Userspace.WireGuard;

namespace MeshNet.Userspace.Tests.WireGuard;

/// <summary>
/// The replay-window sequence of wireguard-go replay/replay_test.go, itself ported from the
/// Linux selftest (counter.c). Each step is checked in order against the same filter.
/// </summary>
[Trait("Category", "Vectors")]
public sealed class ReplayFilterTests
{
    // The limit those tests use (not WireGuard's RejectAfterMessages, which is 2^64 - 2^13 - 1).
    private const ulong Limit = ulong.MaxValue - (1UL << 4); // 2^64 - 2^4 - 1
    private const ulong WindowSize = ReplayFilter.WindowSize;
    private const ulong TLim = WindowSize + 1;

    private readonly ReplayFilter _filter = new();
    private int _step;

    private void T(ulong counter, bool expected)
    {
        _step++;
        _filter.ValidateCounter(counter, Limit).Should().Be(expected, "step {0} validates counter {1}", _step, counter);
    }

    private void Restart()
    {
        _filter.Reset();
        _step = 0;
    }

    [Fact]
    public void Geometry_MatchesWireGuardGo()
    {
        ReplayFilter.WindowSize.Should().Be(8128);
    }

    [Fact]
    public void Sequence_EveryStep()
    {
        T(0, true);                         //  1
        T(1, true);                         //  2
        T(1, false);                        //  3
        T(9, true);                         //  4
        T(8, true);                         //  5
        T(7, true);                         //  6
        T(7, false);                        //  7
        T(TLim, true);                      //  8
        T(TLim - 1, true);                  //  9
        T(TLim - 1, false);                 // 10
        T(TLim - 2, true);                  // 11
        T(2, true);                         // 12
        T(2, false);                        // 13
        T(TLim + 16, true);                 // 14
        T(3, false);                        // 15
        T(TLim + 16, false);                // 16
        T(TLim * 4, true);                  // 17
        T(TLim * 4 - (TLim - 1), true);     // 18
        T(10, false);                       // 19
        T(TLim * 4 - TLim, false);          // 20
        T(TLim * 4 - (TLim + 1), false);    // 21
        T(TLim * 4 - (TLim - 2), true);     // 22
        T(TLim * 4 + 1 - TLim, false);      // 23
        T(0, false);                        // 24
        T(Limit, false);                    // 25
        T(Limit - 1, true);                 // 26
        T(Limit, false);                    // 27
        T(Limit - 1, false);                // 28
        T(Limit - 2, true);                 // 29
        T(Limit + 1, false);                // 30
        T(Limit + 2, false);                // 31
        T(Limit - 2, false);                // 32
        T(Limit - 3, true);                 // 33
        T(0, false);                        // 34
    }

    [Fact]
    public void Bulk1_AscendingThenZero()
    {
        Restart();
        for (ulong i = 1; i <= WindowSize; i++)
        {
            T(i, true);
        }
        T(0, true);
        T(0, false);
    }

    [Fact]
    public void Bulk2_AscendingFromTwoThenOne()
    {
        Restart();
        for (ulong i = 2; i <= WindowSize + 1; i++)
        {
            T(i, true);
        }
        T(1, true);
        T(0, false);
    }

    [Fact]
    public void Bulk3_DescendingWholeWindow()
    {
        Restart();
        for (ulong i = WindowSize + 1; i > 0; i--)
        {
            T(i, true);
        }
    }

    [Fact]
    public void Bulk4_DescendingThenTooOld()
    {
        Restart();
        for (ulong i = WindowSize + 2; i > 1; i--)
        {
            T(i, true);
        }
        T(0, false);
    }

    [Fact]
    public void Bulk5_DescendingThenAdvanceOne()
    {
        Restart();
        for (ulong i = WindowSize; i > 0; i--)
        {
            T(i, true);
        }
        T(WindowSize + 1, true);
        T(0, false);
    }

    [Fact]
    public void Bulk6_DescendingZeroThenAdvanceOne()
    {
        Restart();
        for (ulong i = WindowSize; i > 0; i--)
        {
            T(i, true);
        }
        T(0, true);
        T(WindowSize + 1, true);
    }

    [Fact]
    public void Bulk_RunTwiceOnOneFilter_ResetForgetsEverything()
    {
        // The bulk runs above on a single, reused filter: Reset must leave no stale bits anywhere
        // in the ring (not only in the block of counter 0).
        Bulk3_DescendingWholeWindow();
        Bulk1_AscendingThenZero();
        Bulk4_DescendingThenTooOld();
        Bulk6_DescendingZeroThenAdvanceOne();
    }
}

[Trait("Category", "Unit")]
public sealed class ReplayFilterUnitTests
{
    private const ulong Reject = ulong.MaxValue - (1UL << 13); // 2^64 - 2^13 - 1

    [Fact]
    public void LongJump_ClearsTheWholeRing()
    {
        var filter = new ReplayFilter();
        for (ulong i = 0; i < 8192; i++)
        {
            filter.ValidateCounter(i, Reject);
        }
        ulong far = 1_000_000;
        filter.ValidateCounter(far, Reject).Should().BeTrue();
        for (ulong back = 1; back <= ReplayFilter.WindowSize; back++)
        {
            filter.ValidateCounter(far - back, Reject).Should().BeTrue("counter {0} is inside the window and unseen", far - back);
        }
        filter.ValidateCounter(far - ReplayFilter.WindowSize - 1, Reject).Should().BeFalse();
    }

    [Fact]
    public void CounterAtOrAboveLimit_IsRejectedAndNotRecorded()
    {
        var filter = new ReplayFilter();
        filter.ValidateCounter(100, 100).Should().BeFalse();
        filter.ValidateCounter(100, 101).Should().BeTrue();
        filter.ValidateCounter(100, 101).Should().BeFalse();
    }

    [Fact]
    public void ValidateCounter_DoesNotAllocate()
    {
        var filter = new ReplayFilter();
        filter.ValidateCounter(0, Reject);
        filter.Reset();
        AllocationMeter.LeastOf(3, () =>
        {
            for (ulong i = 0; i < 10_000; i++)
            {
                filter.ValidateCounter(i * 37, Reject);
            }
            filter.Reset();
        }).Should().Be(0);
    }
}
