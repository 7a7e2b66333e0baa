using System.Text;
using FluentAssertions;
using Xunit;

namespace MeshNet.TestSupport.Conformance;

// End of stream, dispose (graceful close, with data in flight, with operations pending),
// writes to a closed peer, half-close.
//
// Accepted outcomes where the Stream contract leaves room (as dotnet/runtime's suite does):
// - A read pending on a stream that gets disposed completes with 0 or throws
//   ObjectDisposedException, IOException or OperationCanceledException. It must complete.
// - A write pending on a stream that gets disposed throws one of those three.
// - A read pending on the peer of a disposed stream returns 0 (graceful close) or, when the
//   close was abortive (a pending operation, unread data), throws IOException.
// Not tested: disposing a stream that holds unread received data (BSD sockets then reset the
// connection, and the peer may lose data it wrote: by design, not a conformance question).
public abstract partial class ConnectedStreamConformanceTests
{
    /// <summary>Every shape, with and without data before end of stream.</summary>
    public static TheoryData<ReadWriteMode, bool> ModesAndDataFirst()
    {
        var data = new TheoryData<ReadWriteMode, bool>();
        foreach (ReadWriteMode mode in Enum.GetValues<ReadWriteMode>())
        {
            data.Add(mode, false);
            data.Add(mode, true);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(ModesAndDataFirst), MemberType = typeof(ConnectedStreamConformanceTests))]
    public virtual async Task Read_AfterPeerDisposed_ReturnsZero(ReadWriteMode mode, bool dataFirst)
    {
        await LeaveTestContext();
        await using StreamPair pair = await CreatePairAsync();
        Task close = Task.Run(async () =>
        {
            if (dataFirst)
            {
                await pair.Stream1.WriteAsync("hello"u8.ToArray());
            }
            await pair.Stream1.DisposeAsync();
        });

        if (dataFirst)
        {
            Encoding.ASCII.GetString(await ReadExactlyAsync(mode, pair.Stream2, 5)).Should().Be("hello");
        }
        (await ReadOnceAsync(mode, pair.Stream2, new byte[1], 0, 1)).Should().Be(0, "the peer closed: end of stream");
        (await ReadOnceAsync(mode, pair.Stream2, new byte[10], 0, 10)).Should().Be(0, "end of stream is sticky");
        await TimeLimit(close, "the peer's write and dispose");
    }

    /// <summary>0: Close(); 1: Dispose(); 2: DisposeAsync().</summary>
    private static async Task CloseAsync(Stream stream, int how)
    {
        switch (how)
        {
            case 0:
                await Task.Run(stream.Close);
                break;
            case 1:
                await Task.Run(stream.Dispose);
                break;
            default:
                await stream.DisposeAsync();
                break;
        }
    }

    [Theory]
    [InlineData(0, false)]
    [InlineData(1, false)]
    [InlineData(2, false)]
    [InlineData(0, true)]
    [InlineData(1, true)]
    [InlineData(2, true)]
    public virtual async Task Dispose_WithDataInFlight_DeliversAllOfItThenEndOfStream(int closeHow, bool readerStartsAfterClose)
    {
        await LeaveTestContext();
        await using StreamPair pair = await CreatePairAsync();
        // Data that fits in the connection's buffers when nobody reads yet; much more when the reader is running.
        byte[] data = RandomBytes(readerStartsAfterClose ? 16 * 1024 : 2 * 1024 * 1024);

        Task<byte[]>? read = readerStartsAfterClose ? null : ReadToEndAsync(ReadWriteMode.AsyncMemory, pair.Stream2);
        await WriteAllAsync(ReadWriteMode.AsyncMemory, pair.Stream1, data, chunk: 256 * 1024);
        await TimeLimit(CloseAsync(pair.Stream1, closeHow), "closing right after writing");
        if (readerStartsAfterClose)
        {
            await Task.Delay(PendingDelay);
            read = ReadToEndAsync(ReadWriteMode.AsyncMemory, pair.Stream2);
        }

        AssertSameBytes(data, await read!, "data written just before the writer closed");
    }

    [Theory]
    [MemberData(nameof(AllModes), MemberType = typeof(ConnectedStreamConformanceTests))]
    public virtual async Task Dispose_WhileReadPending_CompletesTheRead(ReadWriteMode mode)
    {
        await LeaveTestContext();
        await using StreamPair pair = await CreatePairAsync();
        Task<int> read = StartRead(mode, pair.Stream2, new byte[10], 0, 10);
        await AssertPendingAsync(read, "a read with no data");

        await TimeLimit(CloseAsync(pair.Stream2, 2), "disposing a stream with a read pending");
        Exception? e = await OutcomeAsync(read, $"a pending {mode} read when its stream is disposed");
        if (e is null)
        {
            (await read).Should().Be(0, "a read interrupted by dispose returns 0 (or throws)");
        }
        else
        {
            e.Should().Match<Exception>(x => x is ObjectDisposedException || x is IOException || x is OperationCanceledException,
                "a read interrupted by dispose throws ObjectDisposedException, IOException or OperationCanceledException, not {0}: {1}", e.GetType().Name, e.Message);
        }

        // The peer learns about the close.
        Exception? peer = await OutcomeAsync(pair.Stream1.ReadAsync(new byte[1], 0, 1), "the peer's read after the close");
        if (peer is not null)
        {
            peer.Should().BeAssignableTo<IOException>("the peer's read returns 0 or throws IOException (reset)");
        }
    }

    [Fact]
    public virtual async Task Dispose_WhileWritePending_CompletesTheWrite()
    {
        await LeaveTestContext();
        if (BackpressureBytes is not int size)
        {
            return;
        }

        await using StreamPair pair = await CreatePairAsync();
        Task write = pair.Stream1.WriteAsync(new byte[size], 0, size);
        await AssertPendingAsync(write, $"writing {size} bytes (BackpressureBytes) while the peer does not read");

        await TimeLimit(CloseAsync(pair.Stream1, 2), "disposing a stream with a write pending");
        Exception? e = await OutcomeAsync(write, "a pending write when its stream is disposed");
        e.Should().NotBeNull("the peer never read, so the write cannot have completed");
        e.Should().Match<Exception>(x => x is ObjectDisposedException || x is IOException || x is OperationCanceledException,
            "a write interrupted by dispose throws ObjectDisposedException, IOException or OperationCanceledException, not {0}: {1}", e!.GetType().Name, e.Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public virtual async Task Dispose_ClosesTheStream_AndIsIdempotent(int closeHow)
    {
        await LeaveTestContext();
        await using StreamPair pair = await CreatePairAsync();
        await TimeLimit(CloseAsync(pair.Stream1, closeHow), "closing");
        if (CansReturnFalseAfterDispose)
        {
            pair.Stream1.CanRead.Should().BeFalse("a disposed stream cannot read");
            pair.Stream1.CanWrite.Should().BeFalse("a disposed stream cannot write");
            pair.Stream1.CanSeek.Should().BeFalse();
        }

        for (int how = 0; how < 3; how++)
        {
            await TimeLimit(CloseAsync(pair.Stream1, how), "closing again");
        }
        await AssertEofAsync(pair.Stream2, "the peer closed (once)");
    }

    [Fact]
    public virtual async Task Write_AfterPeerDisposed_EventuallyThrowsIOException()
    {
        await LeaveTestContext();
        if (!WritesFailAfterPeerDisposed)
        {
            return;
        }

        await using StreamPair pair = await CreatePairAsync();
        await TimeLimit(pair.Stream2.DisposeAsync().AsTask(), "disposing the peer");
        (await ReadOnceAsync(ReadWriteMode.AsyncMemory, pair.Stream1, new byte[1], 0, 1)).Should().Be(0, "the peer closed");

        // The first writes may be accepted (the peer's answer to them is what tells the writer); the rest fail.
        Task<Exception?> writeUntilFailure = Task.Run(async () =>
        {
            byte[] chunk = new byte[1024];
            while (true)
            {
                try
                {
                    await pair.Stream1.WriteAsync(chunk);
                }
                catch (Exception e)
                {
                    return (Exception?)e;
                }
                await Task.Delay(10);
            }
        });
        Exception? failure = await TimeLimit(writeUntilFailure, "writing to a closed peer until a write fails");
        failure.Should().BeAssignableTo<IOException>("writing to a closed peer fails with IOException (connection reset / broken pipe)");
    }

    // ------------------------------------------------------------------------------------------
    // Half-close
    // ------------------------------------------------------------------------------------------

    [Theory]
    [MemberData(nameof(AllModes), MemberType = typeof(ConnectedStreamConformanceTests))]
    public virtual async Task ShutdownWrite_PeerReadsAllDataThenEof_AndCanStillReply(ReadWriteMode mode)
    {
        await LeaveTestContext();
        if (!SupportsHalfClose)
        {
            return;
        }

        await using StreamPair pair = await CreatePairAsync();
        int size = mode == ReadWriteMode.SyncByte ? 4000 : 300_000;
        byte[] request = RandomBytes(size);
        byte[] reply = RandomBytes(size / 2 + 1);

        Task send = Task.Run(async () =>
        {
            await WriteAllAsync(mode, pair.Stream1, request, chunk: 64 * 1024);
            await TimeLimit(ShutdownWriteAsync(pair.Stream1), "ShutdownWriteAsync");
        });
        Task<byte[]> received = ReadToEndAsync(mode, pair.Stream2, bufferSize: 50_000);
        await AllOrFirstFailure(TimeLimit(send, "writing then shutting down"), received);
        AssertSameBytes(request, await received, "data written before the shutdown");
        (await ReadOnceAsync(mode, pair.Stream2, new byte[1], 0, 1)).Should().Be(0, "end of stream is sticky");
        if (mode != ReadWriteMode.SyncByte)
        {
            (await ReadOnceAsync(mode, pair.Stream2, [], 0, 0)).Should().Be(0, "a zero-byte read at end of stream returns 0");
        }

        // The other direction is still open.
        Task answer = WriteAllAsync(mode, pair.Stream2, reply, chunk: 64 * 1024);
        Task<byte[]> answered = ReadExactlyAsync(mode, pair.Stream1, reply.Length);
        await AllOrFirstFailure(answer, answered);
        AssertSameBytes(reply, await answered, "the reply after the half-close");

        await TimeLimit(pair.Stream2.DisposeAsync().AsTask(), "closing the replying end");
        (await ReadOnceAsync(mode, pair.Stream1, new byte[1], 0, 1)).Should().Be(0, "both directions are now closed");
    }

    [Fact]
    public virtual async Task ShutdownWrite_CompletesAPendingPeerReadWithZero()
    {
        await LeaveTestContext();
        if (!SupportsHalfClose)
        {
            return;
        }

        await using StreamPair pair = await CreatePairAsync();
        Task<int> read = pair.Stream2.ReadAsync(new byte[10], 0, 10);
        await AssertPendingAsync(read, "a read with no data");
        await TimeLimit(ShutdownWriteAsync(pair.Stream1), "ShutdownWriteAsync");
        (await TimeLimit(read, "the peer's pending read after the shutdown")).Should().Be(0, "the shutdown is end of stream for the peer");
    }

    [Fact]
    public virtual async Task ShutdownWrite_LeavesReadingOpen_IncludingAPendingRead()
    {
        await LeaveTestContext();
        if (!SupportsHalfClose)
        {
            return;
        }

        await using StreamPair pair = await CreatePairAsync();
        byte[] buffer = new byte[5];
        Task<int> read = pair.Stream1.ReadAsync(buffer, 0, buffer.Length);
        await AssertPendingAsync(read, "a read with no data");
        await TimeLimit(ShutdownWriteAsync(pair.Stream1), "ShutdownWriteAsync");
        await AssertPendingAsync(read, "a read pending on the end that shut down its writing");

        await WriteAllAsync(ReadWriteMode.AsyncMemory, pair.Stream2, "reply"u8.ToArray());
        int n = await TimeLimit(read, "the pending read once the peer writes");
        n.Should().BeInRange(1, 5);
        byte[] rest = await ReadExactlyAsync(ReadWriteMode.AsyncMemory, pair.Stream1, 5 - n);
        Encoding.ASCII.GetString([.. buffer.AsSpan(0, n), .. rest]).Should().Be("reply");
    }

    [Fact]
    public virtual async Task ShutdownWrite_ThenWrite_Throws_AndShutdownAgainIsHarmless()
    {
        await LeaveTestContext();
        if (!SupportsHalfClose)
        {
            return;
        }

        await using StreamPair pair = await CreatePairAsync();
        await WriteAllAsync(ReadWriteMode.AsyncMemory, pair.Stream1, "x"u8.ToArray());
        await TimeLimit(ShutdownWriteAsync(pair.Stream1), "ShutdownWriteAsync");
        await TimeLimit(ShutdownWriteAsync(pair.Stream1), "ShutdownWriteAsync a second time");

        Exception? sync = await OutcomeAsync(Task.Run(() => pair.Stream1.Write(new byte[1], 0, 1)), "Write after ShutdownWrite");
        AssertWriteAfterShutdownFailure(sync, "Write");
        Exception? async = await OutcomeAsync(Invoke(async () => await pair.Stream1.WriteAsync(new byte[1].AsMemory())), "WriteAsync after ShutdownWrite");
        AssertWriteAfterShutdownFailure(async, "WriteAsync");

        // The peer got exactly the data written before the shutdown.
        (await ReadToEndAsync(ReadWriteMode.AsyncMemory, pair.Stream2)).Should().Equal((byte)'x');

        static void AssertWriteAfterShutdownFailure(Exception? e, string what)
        {
            e.Should().NotBeNull("{0} after the write side was shut down must fail", what);
            e.Should().Match<Exception>(x => (x is IOException || x is InvalidOperationException) && !(x is ObjectDisposedException),
                "{0} after shutdown throws IOException or InvalidOperationException (the stream is not disposed), not {1}: {2}", what, e!.GetType().Name, e.Message);
        }
    }

    [Fact]
    public virtual async Task ShutdownWrite_BothEnds_EachReadsThePeersDataThenEof()
    {
        await LeaveTestContext();
        if (!SupportsHalfClose)
        {
            return;
        }

        await using StreamPair pair = await CreatePairAsync();
        await WriteAllAsync(ReadWriteMode.AsyncMemory, pair.Stream1, "from 1"u8.ToArray());
        await TimeLimit(ShutdownWriteAsync(pair.Stream1), "ShutdownWriteAsync on stream 1");
        await WriteAllAsync(ReadWriteMode.AsyncMemory, pair.Stream2, "from 2"u8.ToArray());
        await TimeLimit(ShutdownWriteAsync(pair.Stream2), "ShutdownWriteAsync on stream 2");

        Encoding.ASCII.GetString(await ReadToEndAsync(ReadWriteMode.AsyncMemory, pair.Stream2)).Should().Be("from 1");
        Encoding.ASCII.GetString(await ReadToEndAsync(ReadWriteMode.AsyncMemory, pair.Stream1)).Should().Be("from 2");
        // Disposing the pair after both half-closes must be clean (bounded by StreamPair.DisposeTimeout).
    }
}
