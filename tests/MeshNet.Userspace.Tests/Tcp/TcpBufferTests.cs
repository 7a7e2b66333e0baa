using MeshNet.Userspace.Stack;
using MeshNet.Userspace.Stack.Tcp;

namespace MeshNet.Userspace.Tests.Tcp;

/// <summary>The data structures: paged buffers, the receive buffer's reassembly, the send buffer, the SACK scoreboard.</summary>
[Trait("Category", "Unit")]
public sealed class TcpBufferTests
{
    private static byte[] Data(int length, int seed = 0) => TcpTestConnection.Bytes(length, seed);

    [Fact]
    public void PagesAreReservedAgainstTheBudgetAndReturnedWhenReleased()
    {
        var budget = new MemoryBudget(1 << 20);
        var pool = new PagePool(8);
        var buffer = new PagedBuffer(pool, budget);
        buffer.TryWrite(0, Data(40_000)).Should().BeTrue();
        buffer.PageCount.Should().Be(3);
        budget.Used.Should().Be(3 * BufferPage.Size);
        var copy = new byte[40_000];
        buffer.CopyTo(0, copy);
        copy.Should().Equal(Data(40_000));
        buffer.ReleaseBefore(BufferPage.Size + 1);
        buffer.PageCount.Should().Be(2);
        pool.FreeCount.Should().Be(1);
        buffer.ReleaseAll(40_000);
        budget.Used.Should().Be(0);
        pool.FreeCount.Should().Be(3);
    }

    [Fact]
    public void TheRingGrowsAndSequencesSpanPages()
    {
        var buffer = new PagedBuffer(new PagePool(0), new MemoryBudget(64 << 20));
        buffer.TryWrite(100, Data(200_000, 3)).Should().BeTrue();
        var sequence = buffer.GetSequence(100, 200_100);
        sequence.Length.Should().Be(200_000);
        sequence.IsSingleSegment.Should().BeFalse();
        System.Buffers.BuffersExtensions.ToArray(sequence).Should().Equal(Data(200_000, 3));
    }

    [Fact]
    public void AWriteTheBudgetCannotTakeChangesNothing()
    {
        var budget = new MemoryBudget(BufferPage.Size * 2);
        var buffer = new PagedBuffer(new PagePool(4), budget);
        buffer.TryWrite(0, Data(3 * BufferPage.Size)).Should().BeFalse();
        buffer.PageCount.Should().Be(0);
        budget.Used.Should().Be(0);
    }

    [Fact]
    public void OutOfOrderDataIsReassembledInPlace()
    {
        var buffer = new ReceiveBuffer(new PagePool(8), new MemoryBudget(1 << 20));
        buffer.Store(2000, Data(1000, 2)).Should().Be(ReceiveOutcome.OutOfOrder);
        buffer.Store(4000, Data(1000, 4)).Should().Be(ReceiveOutcome.OutOfOrder);
        buffer.RangeCount.Should().Be(2);
        buffer.Store(3000, Data(1000, 3)).Should().Be(ReceiveOutcome.OutOfOrder);
        buffer.RangeCount.Should().Be(1, "adjacent ranges merge");
        buffer.Available.Should().Be(0);
        buffer.Store(0, Data(2000, 0)).Should().Be(ReceiveOutcome.Advanced | ReceiveOutcome.FilledHole);
        buffer.End.Should().Be(5000);
        buffer.RangeCount.Should().Be(0);
        var read = new byte[5000];
        buffer.Read(read).Should().Be(5000);
        read[..2000].Should().Equal(Data(2000, 0));
        read[3000..4000].Should().Equal(Data(1000, 3));
        buffer.PageCount.Should().Be(0, "everything read: no page held");
    }

    [Fact]
    public void DuplicatesAreReportedForDsack()
    {
        var buffer = new ReceiveBuffer(new PagePool(8), new MemoryBudget(1 << 20));
        buffer.Store(0, Data(1000));
        buffer.Store(500, Data(1000)).Should().Be(ReceiveOutcome.Duplicate | ReceiveOutcome.Advanced);
        buffer.LastDuplicate.Should().Be((500L, 1000L));
        buffer.Store(3000, Data(500));
        buffer.Store(3100, Data(100)).Should().Be(ReceiveOutcome.Duplicate);
        buffer.LastDuplicate.Should().Be((3100L, 3200L));
    }

    [Fact]
    public void SackRangesComeMostRecentlyChangedFirst()
    {
        var buffer = new ReceiveBuffer(new PagePool(8), new MemoryBudget(1 << 20));
        buffer.Store(1000, Data(10));
        buffer.Store(3000, Data(10));
        buffer.Store(5000, Data(10));
        buffer.Store(1010, Data(10)); // extends the first range: now the most recent
        Span<long> pairs = stackalloc long[8];
        buffer.GetSackRanges(pairs, 4).Should().Be(3);
        pairs[..6].ToArray().Should().Equal(1000, 1020, 5000, 5010, 3000, 3010);
    }

    [Fact]
    public void TheNumberOfOutOfOrderRangesIsBounded()
    {
        var buffer = new ReceiveBuffer(new PagePool(8), new MemoryBudget(64 << 20));
        for (int i = 0; i < ReceiveBuffer.MaxRanges; i++)
        {
            buffer.Store(100 + (i * 10), Data(1)).Should().Be(ReceiveOutcome.OutOfOrder);
        }
        buffer.Store(100 + (ReceiveBuffer.MaxRanges * 10), Data(1)).Should().Be(ReceiveOutcome.TooManyRanges);
        buffer.Store(101, Data(1)).Should().Be(ReceiveOutcome.OutOfOrder, "extending a range is still possible");
        buffer.RangeCount.Should().Be(ReceiveBuffer.MaxRanges);
    }

    [Fact]
    public void TheSendBufferFreesAcknowledgedPagesAndHoldsNoneWhenEmpty()
    {
        var budget = new MemoryBudget(1 << 20);
        var buffer = new SendBuffer(new PagePool(8), budget);
        buffer.Append(Data(50_000)).Should().Be(50_000);
        buffer.Publish();
        buffer.Tail.Should().Be(50_000);
        var copy = new byte[1000];
        buffer.CopyTo(20_000, copy);
        copy.Should().Equal(Data(50_000)[20_000..21_000]);
        buffer.Acknowledge(40_000);
        buffer.PageCount.Should().Be(2, "pages 2 and 3 still hold unacknowledged bytes");
        buffer.Acknowledge(50_000);
        buffer.PageCount.Should().Be(0);
        budget.Used.Should().Be(0);
    }

    [Fact]
    public void ThePipeWritersPageSurvivesAnAcknowledgmentOfEverything()
    {
        var buffer = new SendBuffer(new PagePool(8), new MemoryBudget(1 << 20));
        buffer.Append(Data(100));
        buffer.Publish();
        var memory = buffer.GetWriterMemory(10);
        memory.Length.Should().Be(BufferPage.Size - 100);
        buffer.Acknowledge(100);
        buffer.PageCount.Should().Be(1, "the application is writing into it");
        Data(10).CopyTo(memory);
        buffer.AdvanceWriter(10);
        buffer.Publish();
        var copy = new byte[10];
        buffer.CopyTo(100, copy);
        copy.Should().Equal(Data(10));
    }

    [Fact]
    public void TheScoreboardKeepsPipeTotalsExact()
    {
        var queue = new RetransmitQueue();
        for (uint i = 0; i < 6; i++)
        {
            queue.Add(1000 + (i * 100), 100, false, 0, i);
        }
        queue.MarkSacked(2);
        queue.MarkSacked(3);
        queue.MarkLost(0);
        queue.MarkLost(1);
        queue.MarkRetransmitted(0, 5, 10);
        (queue.SackedBytes, queue.LostBytes, queue.RetransBytes).Should().Be((200L, 200L, 100L));
        queue.HighSacked.Should().Be(1400);
        queue.MarkLost(0); // the retransmission is lost too
        queue.RetransBytes.Should().Be(0);
        queue.MarkSacked(1); // a lost segment arrives after all
        queue.LostBytes.Should().Be(100);
        queue.Find(1250).Should().Be(2);
        queue.FirstEndingAfter(1300).Should().Be(3);
        queue.TrimHead(1050);
        queue.LostBytes.Should().Be(50);
        queue.RemoveHead();
        queue.RemoveHead();
        (queue.SackedBytes, queue.SackedSegments).Should().Be((200L, 2));
        queue.Split(0, 40);
        queue.Count.Should().Be(5);
        (queue[0].Seq, queue[0].Length, queue[1].Seq, queue[1].Length).Should().Be((1200u, 40, 1240u, 60));
        queue.SackedSegments.Should().Be(3);
        while (queue.Count > 0)
        {
            queue.RemoveHead();
        }
        (queue.SackedBytes, queue.LostBytes, queue.RetransBytes).Should().Be((0L, 0L, 0L));
    }
}
