using System.Diagnostics;
using System.Text;
using FluentAssertions;
using Xunit;

namespace MeshNet.TestSupport.Conformance;

// CA2022 (inexact read): the reads here are expected to throw, their count is irrelevant.
#pragma warning disable CA2022

// Cancellation, backpressure (flow control) and timeouts.
public abstract partial class ConnectedStreamConformanceTests
{
    [Fact]
    public virtual async Task PreCanceledOperations_Throw_AndChangeNothing()
    {
        await LeaveTestContext();
        await using StreamPair pair = await CreatePairAsync();
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        CancellationToken canceled = cts.Token;

        foreach ((Stream writer, Stream reader) in pair.Directions)
        {
            byte[] one = [42];
            await ExpectCanceledAsync(() => reader.ReadAsync(new byte[1], 0, 1, canceled), canceled, "ReadAsync(byte[]) with a canceled token");
            await ExpectCanceledAsync(async () => await reader.ReadAsync(new byte[1].AsMemory(), canceled), canceled, "ReadAsync(Memory) with a canceled token");
            await ExpectCanceledAsync(() => writer.WriteAsync(one, 0, 1, canceled), canceled, "WriteAsync(byte[]) with a canceled token");
            await ExpectCanceledAsync(async () => await writer.WriteAsync(one.AsMemory(), canceled), canceled, "WriteAsync(ReadOnlyMemory) with a canceled token");
            await ExpectCanceledAsync(() => reader.CopyToAsync(new MemoryStream(), canceled), canceled, "CopyToAsync with a canceled token");
            Exception? flush = await OutcomeAsync(Invoke(() => writer.FlushAsync(canceled)), "FlushAsync with a canceled token");
            if (flush is not null)
            {
                flush.Should().BeAssignableTo<OperationCanceledException>("FlushAsync with a canceled token succeeds or is canceled");
            }

            // With data available, a canceled read still consumes nothing.
            await WriteAllAsync(ReadWriteMode.AsyncMemory, writer, "ab"u8.ToArray());
            (await ReadExactlyAsync(ReadWriteMode.AsyncMemory, reader, 1)).Should().Equal((byte)'a');
            await ExpectCanceledAsync(async () => await reader.ReadAsync(new byte[1].AsMemory(), canceled), canceled, "ReadAsync with a canceled token and data available");
            await ExpectCanceledAsync(() => reader.ReadAsync(new byte[1], 0, 1, canceled), canceled, "ReadAsync with a canceled token and data available");

            // The canceled writes wrote nothing, the canceled reads took nothing.
            await WriteAllAsync(ReadWriteMode.AsyncMemory, writer, "cd"u8.ToArray());
            Encoding.ASCII.GetString(await ReadExactlyAsync(ReadWriteMode.AsyncMemory, reader, 3)).Should().Be("bcd");
        }
    }

    [Theory]
    [InlineData(false, 0)]
    [InlineData(false, 50)]
    [InlineData(true, 0)]
    [InlineData(true, 50)]
    public virtual async Task ReadAsync_CanceledWhileWaiting_Throws(bool memoryOverload, int cancelAfterMs)
    {
        await LeaveTestContext();
        await using StreamPair pair = await CreatePairAsync();
        foreach ((_, Stream reader) in pair.Directions)
        {
            using var cts = new CancellationTokenSource();
            Task<int> read = memoryOverload
                ? reader.ReadAsync(new byte[1].AsMemory(), cts.Token).AsTask()
                : reader.ReadAsync(new byte[1], 0, 1, cts.Token);
            cts.CancelAfter(cancelAfterMs);
            await ExpectCanceledAsync(() => read, cts.Token, "a pending read whose token was canceled");
        }
    }

    [Fact]
    public virtual async Task ReadAsync_Canceled_StreamStaysUsable()
    {
        await LeaveTestContext();
        await using StreamPair pair = await CreatePairAsync();
        foreach ((Stream writer, Stream reader) in pair.Directions)
        {
            for (int i = 0; i < 3; i++)
            {
                using var cts = new CancellationTokenSource();
                Task<int> read = i % 2 == 0
                    ? reader.ReadAsync(new byte[100], 0, 100, cts.Token)
                    : reader.ReadAsync(new byte[100].AsMemory(), cts.Token).AsTask();
                await AssertPendingAsync(read, "a read with no data");
                cts.Cancel();
                await ExpectCanceledAsync(() => read, cts.Token, "the canceled read");
            }

            // A read started after the cancellations gets the data written next, all of it.
            byte[] data = RandomBytes(10_000);
            byte[] buffer = new byte[data.Length];
            Task<int> next = reader.ReadAsync(buffer, 0, buffer.Length);
            await AssertPendingAsync(next, "a read after canceled reads, before data");
            await WriteAllAsync(ReadWriteMode.AsyncMemory, writer, data);
            int n = await TimeLimit(next, "the read after canceled reads");
            n.Should().BeInRange(1, data.Length);
            int rest = await ReadUpToAsync(ReadWriteMode.AsyncMemory, reader, buffer, n, data.Length - n);
            (n + rest).Should().Be(data.Length);
            AssertSameBytes(data, buffer, "data read after canceled reads");
        }
    }

    [Fact]
    public virtual async Task ReadAsync_CancellationRacingWithData_LosesAndDuplicatesNothing()
    {
        await LeaveTestContext();
        const int Rounds = 200;
        await using StreamPair pair = await CreatePairAsync();
        var received = new List<byte>();
        byte[] buffer = new byte[ReadsMayBlockUntilBufferFull ? 1 : 16];
        int canceledReads = 0;

        for (int i = 0; i < Rounds; i++)
        {
            using var cts = new CancellationTokenSource();
            Task<int> read = pair.Stream2.ReadAsync(buffer.AsMemory(), cts.Token).AsTask();
            Task write = pair.Stream1.WriteAsync(new[] { (byte)i }.AsMemory()).AsTask();
            if (i % 2 == 0)
            {
                await TimeLimit(write, "a one-byte write");
                cts.Cancel();
            }
            else
            {
                cts.Cancel();
                await TimeLimit(write, "a one-byte write");
            }

            // Either the read completed with data (which counts) or it was canceled having consumed nothing.
            Exception? e = await OutcomeAsync(read, "a read racing with its cancellation");
            if (e is null)
            {
                int n = await read;
                n.Should().BeInRange(1, buffer.Length, "a read that was not canceled returns data (the peer is open)");
                received.AddRange(buffer.AsSpan(0, n).ToArray());
            }
            else
            {
                e.Should().BeAssignableTo<OperationCanceledException>("a read canceled while racing with data is canceled or returns the data");
                canceledReads++;
            }
        }

        await TimeLimit(pair.Stream1.DisposeAsync().AsTask(), "disposing the writer");
        received.AddRange(await ReadToEndAsync(ReadWriteMode.AsyncMemory, pair.Stream2));
        byte[] expected = Enumerable.Range(0, Rounds).Select(i => (byte)i).ToArray();
        AssertSameBytes(expected, received.ToArray(), $"bytes written while reads were being canceled ({canceledReads} of {Rounds} reads canceled)");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public virtual async Task WriteAsync_BlockedByBackpressure_Canceled_Throws(bool memoryOverload)
    {
        await LeaveTestContext();
        if (BackpressureBytes is not int size)
        {
            return;
        }

        await using StreamPair pair = await CreatePairAsync();
        byte[] data = new byte[size];
        using var cts = new CancellationTokenSource();
        Task write = memoryOverload
            ? pair.Stream1.WriteAsync(data.AsMemory(), cts.Token).AsTask()
            : pair.Stream1.WriteAsync(data, 0, data.Length, cts.Token);
        await AssertPendingAsync(write, $"writing {size} bytes (BackpressureBytes) while the peer does not read");
        cts.Cancel();
        await ExpectCanceledAsync(() => write, cts.Token, "a write blocked by backpressure whose token was canceled");
        // What a canceled write left in the stream is unspecified (part may have been sent); the
        // stream must still dispose cleanly, which disposing the pair checks.
    }

    [Theory]
    [InlineData(ReadWriteMode.SyncArray)]
    [InlineData(ReadWriteMode.AsyncMemory)]
    [InlineData(ReadWriteMode.AsyncApm)]
    public virtual async Task Write_BlockedByBackpressure_ResumesWhenThePeerReads(ReadWriteMode mode)
    {
        await LeaveTestContext();
        if (BackpressureBytes is not int size)
        {
            return;
        }

        await using StreamPair pair = await CreatePairAsync();
        byte[] data = RandomBytes(size);
        Task write = StartWrite(mode, pair.Stream1, data, 0, data.Length);
        await AssertPendingAsync(write, $"writing {size} bytes (BackpressureBytes) while the peer does not read");

        Task<byte[]> read = ReadExactlyAsync(ReadWriteMode.AsyncMemory, pair.Stream2, size);
        await AllOrFirstFailure(TimeLimit(write, "the write once the peer reads"), read);
        AssertSameBytes(data, await read, "data written under backpressure");
    }

    /// <summary>The synchronous read shapes that ReadTimeout bounds (the APM ones are left out).</summary>
    public static TheoryData<ReadWriteMode> SyncReadModes => new(ReadWriteMode.SyncArray, ReadWriteMode.SyncSpan, ReadWriteMode.SyncByte);

    [Theory]
    [MemberData(nameof(SyncReadModes), MemberType = typeof(ConnectedStreamConformanceTests))]
    public virtual async Task ReadTimeout_Expires_ThrowsIOException(ReadWriteMode mode)
    {
        await LeaveTestContext();
        if (!CanTimeout)
        {
            return;
        }

        await using StreamPair pair = await CreatePairAsync();
        pair.Stream2.ReadTimeout = 100;
        var watch = Stopwatch.StartNew();
        Exception? e = await OutcomeAsync(Task.Run(() => ReadOnceSync(mode, pair.Stream2, new byte[1], 0, 1)), "a read with a 100 ms ReadTimeout");
        watch.Stop();
        e.Should().BeAssignableTo<IOException>("a synchronous read that times out throws IOException");
        watch.Elapsed.Should().BeGreaterThanOrEqualTo(TimeSpan.FromMilliseconds(80), "the read waits for the timeout");
    }

    [Fact]
    public virtual async Task WriteTimeout_Expires_ThrowsIOException()
    {
        await LeaveTestContext();
        if (!CanTimeout || BackpressureBytes is not int size)
        {
            return;
        }

        await using StreamPair pair = await CreatePairAsync();
        pair.Stream1.WriteTimeout = 100;
        Exception? e = await OutcomeAsync(Task.Run(() => pair.Stream1.Write(new byte[size], 0, size)), "a write blocked by backpressure with a 100 ms WriteTimeout");
        e.Should().BeAssignableTo<IOException>("a synchronous write that times out throws IOException");
    }

    /// <summary>
    /// Asserts the operation ends with <see cref="OperationCanceledException"/> carrying
    /// <paramref name="token"/> (thrown synchronously or from the task), within the timeout.
    /// </summary>
    protected async Task ExpectCanceledAsync(Func<Task> operation, CancellationToken token, string what)
    {
        Exception? e = await OutcomeAsync(Invoke(operation), what);
        e.Should().NotBeNull("{0} must throw OperationCanceledException", what);
        e.Should().BeAssignableTo<OperationCanceledException>("{0} must throw OperationCanceledException", what);
        ((OperationCanceledException)e!).CancellationToken.Should().Be(token, "{0} reports the caller's token", what);
    }
}
