using System.Runtime.CompilerServices;
using FluentAssertions;
using Xunit;

namespace MeshNet.TestSupport.Conformance;

/// <summary>The API shape a read or a write goes through.</summary>
public enum ReadWriteMode
{
    /// <summary><see cref="Stream.ReadByte"/> / <see cref="Stream.WriteByte"/>, one byte a call.</summary>
    SyncByte,

    /// <summary><see cref="Stream.Read(byte[], int, int)"/> / <see cref="Stream.Write(byte[], int, int)"/>.</summary>
    SyncArray,

    /// <summary><see cref="Stream.Read(Span{byte})"/> / <see cref="Stream.Write(ReadOnlySpan{byte})"/>.</summary>
    SyncSpan,

    /// <summary><see cref="Stream.ReadAsync(byte[], int, int, CancellationToken)"/> / <see cref="Stream.WriteAsync(byte[], int, int, CancellationToken)"/>.</summary>
    AsyncArray,

    /// <summary><see cref="Stream.ReadAsync(Memory{byte}, CancellationToken)"/> / <see cref="Stream.WriteAsync(ReadOnlyMemory{byte}, CancellationToken)"/>.</summary>
    AsyncMemory,

    /// <summary><c>EndRead(BeginRead(...))</c> / <c>EndWrite(BeginWrite(...))</c> on the calling thread.</summary>
    SyncApm,

    /// <summary><see cref="TaskFactory.FromAsync(Func{AsyncCallback, object, IAsyncResult}, Action{IAsyncResult}, object)"/> over Begin/End.</summary>
    AsyncApm,
}

/// <summary>
/// A conformance suite for two connected streams (what one end writes the other reads, both
/// ways), modeled on the coverage of dotnet/runtime's <c>ConnectedStreamConformanceTests</c>
/// and extended with TCP concerns (half-close, graceful close with data in flight,
/// backpressure, cancellation races). A concrete class supplies
/// <see cref="CreateConnectedStreamsAsync"/> and overrides the capability hooks that differ from
/// the defaults; the defaults describe a NetworkStream-like TCP stream.
/// </summary>
/// <remarks>
/// <para>
/// A broken stream fails the tests, it does not hang the run: every test first leaves the test
/// framework's synchronization context (<see cref="LeaveTestContext"/>), every wait is bounded by
/// <see cref="Timeout"/> (failing with a <see cref="TimeoutException"/> that names the
/// operation), the helpers start every stream call (synchronous or not) on the thread pool, and
/// a watchdog disposes the streams of a test still running after <see cref="TestDeadline"/>.
/// Disposing the pair at the end of a test releases calls still blocked in the stream.
/// </para>
/// <para>
/// Where the Stream contract leaves room, the accepted outcomes are written next to the tests
/// (see the Lifetime part for dispose with operations pending).
/// </para>
/// </remarks>
[Trait("Category", "Unit")]
public abstract partial class ConnectedStreamConformanceTests
{
    // ------------------------------------------------------------------------------------------
    // Factory and capability hooks
    // ------------------------------------------------------------------------------------------

    /// <summary>Creates two freshly connected, readable and writable streams.</summary>
    protected abstract Task<StreamPair> CreateConnectedStreamsAsync();

    /// <summary>
    /// Whether one direction can be closed while the other stays open (TCP half-close): see
    /// <see cref="ShutdownWriteAsync"/>. Default false (the half-close tests do nothing).
    /// </summary>
    protected virtual bool SupportsHalfClose => false;

    /// <summary>
    /// Closes the write side of <paramref name="stream"/> after the data already written: the
    /// peer reads that data and then end of stream, and <paramref name="stream"/> can still read
    /// what the peer sends. Required when <see cref="SupportsHalfClose"/> is true.
    /// </summary>
    protected virtual Task ShutdownWriteAsync(Stream stream) =>
        throw new NotSupportedException($"{GetType().Name} declares SupportsHalfClose but does not override ShutdownWriteAsync.");

    /// <summary>
    /// Whether a read may wait until its whole buffer is filled (or end of stream) rather than
    /// return the data available. Default false: a read returns as soon as at least one byte is
    /// available, which the tests that read small messages into large buffers then require.
    /// </summary>
    protected virtual bool ReadsMayBlockUntilBufferFull => false;

    /// <summary>Whether written data only reaches the peer after Flush/FlushAsync. Default false.</summary>
    protected virtual bool FlushRequiredToWriteData => false;

    /// <summary>
    /// Whether a zero-byte read with no data available waits until data is available (true,
    /// default, as NetworkStream: the idiom for "wait for data without a buffer"), or returns 0
    /// immediately (false).
    /// </summary>
    protected virtual bool BlocksOnZeroByteReads => true;

    /// <summary>
    /// The exception type a second read started while one is pending (or a second write while one
    /// is pending) throws, or null when concurrent reads and concurrent writes are supported
    /// (NetworkStream queues them). Default <see cref="InvalidOperationException"/>.
    /// </summary>
    protected virtual Type? UnsupportedConcurrentExceptionType => typeof(InvalidOperationException);

    /// <summary>The expected <see cref="Stream.CanTimeout"/>: whether ReadTimeout/WriteTimeout work. Default false.</summary>
    protected virtual bool CanTimeout => false;

    /// <summary>
    /// A number of bytes that a writer can never get rid of while the peer does not read (so
    /// writing that much blocks until the peer reads: flow control), or null when the stream
    /// buffers without limit or the limit is unknown (the backpressure tests then do nothing).
    /// Keep it a small multiple of the real send + receive buffering: the tests allocate it.
    /// </summary>
    protected virtual int? BackpressureBytes => null;

    /// <summary>The exception EndRead/EndWrite throw for an IAsyncResult they did not create. Default <see cref="ArgumentException"/> (Stream's).</summary>
    protected virtual Type InvalidAsyncResultExceptionType => typeof(ArgumentException);

    /// <summary>Whether CanRead and CanWrite return false once the stream is disposed. Default true.</summary>
    protected virtual bool CansReturnFalseAfterDispose => true;

    /// <summary>Whether awaiting a ValueTask from ReadAsync twice throws (IValueTaskSource-backed). Default false (not tested).</summary>
    protected virtual bool ReadWriteValueTasksProtectSingleConsumption => false;

    /// <summary>
    /// Whether writing to a stream whose peer was disposed eventually throws
    /// <see cref="IOException"/> (TCP: the peer answers data for a closed socket with a reset).
    /// Default true.
    /// </summary>
    protected virtual bool WritesFailAfterPeerDisposed => true;

    /// <summary>The most any single step of a test may take before the test fails. Default 30 s.</summary>
    protected virtual TimeSpan Timeout => TimeSpan.FromSeconds(30);

    /// <summary>How long a test may run before a watchdog disposes its streams (see <see cref="CreatePairAsync"/>). Default 3 × <see cref="Timeout"/>.</summary>
    protected virtual TimeSpan TestDeadline => Timeout * 3;

    /// <summary>How long a test waits to conclude that an operation is (still) pending. Default 100 ms.</summary>
    protected virtual TimeSpan PendingDelay => TimeSpan.FromMilliseconds(100);

    // ------------------------------------------------------------------------------------------
    // Shared data
    // ------------------------------------------------------------------------------------------

    /// <summary>Every read/write shape.</summary>
    public static TheoryData<ReadWriteMode> AllModes => new(Enum.GetValues<ReadWriteMode>());

    /// <summary>Every shape that can express a zero-byte read or write (not ReadByte/WriteByte).</summary>
    public static TheoryData<ReadWriteMode> BufferModes => new(Enum.GetValues<ReadWriteMode>().Where(m => m != ReadWriteMode.SyncByte));

    // ------------------------------------------------------------------------------------------
    // Helpers: set-up, timeouts
    // ------------------------------------------------------------------------------------------

    /// <summary>
    /// Continues the calling test on the thread pool, off the test framework's synchronization
    /// context (which has as many threads as cores): a stream call that blocks, or a broken
    /// stream that completes a task inline, then only blocks a pool thread, and the timeouts still
    /// fire. Every test starts with it.
    /// </summary>
    protected static ThreadPoolAwaitable LeaveTestContext() => default;

    /// <summary>
    /// Creates a pair (bounded by <see cref="Timeout"/>) and checks both ends are open for reading
    /// and writing. A watchdog disposes the pair if the test is still running after
    /// <see cref="TestDeadline"/>: a stream call that blocks the test outside the helpers (which
    /// all time out) is then released, for any stream whose dispose releases blocked calls.
    /// </summary>
    protected async Task<StreamPair> CreatePairAsync()
    {
        StreamPair created = await TimeLimit(CreateConnectedStreamsAsync(), "creating the connected streams");
        var watchdog = new CancellationTokenSource(TestDeadline);
        CancellationTokenRegistration fire = watchdog.Token.Register(static state => _ = ((StreamPair)state!).DisposeAsync().AsTask(), created);
        var pair = new StreamPair(created.Stream1, created.Stream2, async () =>
        {
            await fire.DisposeAsync();
            watchdog.Dispose();
            await created.DisposeAsync();
        });
        try
        {
            foreach (Stream stream in pair.Streams)
            {
                stream.CanRead.Should().BeTrue("a fresh connected stream is readable");
                stream.CanWrite.Should().BeTrue("a fresh connected stream is writable");
            }
        }
        catch
        {
            await pair.DisposeAsync();
            throw;
        }
        return pair;
    }

    /// <summary>Awaits <paramref name="task"/>, failing with a <see cref="TimeoutException"/> naming <paramref name="what"/> after <see cref="Timeout"/>.</summary>
    protected async Task<T> TimeLimit<T>(Task<T> task, string what)
    {
        try
        {
            return await task.WaitAsync(Timeout);
        }
        catch (TimeoutException) when (!task.IsCompleted)
        {
            throw new StreamHangException($"{what} did not complete within {Timeout.TotalSeconds:0} s: the stream hangs.");
        }
    }

    /// <inheritdoc cref="TimeLimit{T}(Task{T}, string)"/>
    protected async Task TimeLimit(Task task, string what)
    {
        try
        {
            await task.WaitAsync(Timeout);
        }
        catch (TimeoutException) when (!task.IsCompleted)
        {
            throw new StreamHangException($"{what} did not complete within {Timeout.TotalSeconds:0} s: the stream hangs.");
        }
    }

    /// <summary>Runs synchronous code on the thread pool, bounded by <see cref="Timeout"/> (a call that should throw may block instead).</summary>
    protected Task RunBounded(Action action, string what) => TimeLimit(Task.Run(action), what);

    /// <summary>Waits <see cref="PendingDelay"/> and asserts <paramref name="task"/> has not completed.</summary>
    protected async Task AssertPendingAsync(Task task, string what)
    {
        await Task.WhenAny(task, Task.Delay(PendingDelay));
        if (task.IsCompleted)
        {
            string outcome = task.Status == TaskStatus.RanToCompletion
                ? (task is Task<int> t ? $"returned {t.Result}" : "completed")
                : $"ended {task.Status}: {task.Exception?.InnerException?.GetType().Name} {task.Exception?.InnerException?.Message}";
            throw new Xunit.Sdk.XunitException($"{what} should still be pending, but it {outcome}.");
        }
    }

    /// <summary>Awaits every task, but throws as soon as any of them fails (a failed writer must not leave its reader waiting).</summary>
    protected static async Task AllOrFirstFailure(params Task[] tasks)
    {
        var pending = new List<Task>(tasks);
        while (pending.Count > 0)
        {
            Task done = await Task.WhenAny(pending);
            pending.Remove(done);
            await done;
        }
    }

    /// <summary>Awaits <paramref name="task"/> (bounded) and returns the exception it ended with, or null.</summary>
    protected async Task<Exception?> OutcomeAsync(Task task, string what)
    {
        try
        {
            await TimeLimit(task, what);
            return null;
        }
        catch (StreamHangException)
        {
            throw;
        }
        catch (Exception e)
        {
            return e;
        }
    }

    // ------------------------------------------------------------------------------------------
    // Helpers: data
    // ------------------------------------------------------------------------------------------

    /// <summary>Random bytes (a different sequence per call, so misplaced or repeated data shows).</summary>
    protected static byte[] RandomBytes(int count)
    {
        byte[] bytes = new byte[count];
        Random.Shared.NextBytes(bytes);
        return bytes;
    }

    /// <summary>Asserts equal length and content, naming the first differing index (fast on MiB buffers).</summary>
    protected static void AssertSameBytes(ReadOnlyMemory<byte> expected, ReadOnlyMemory<byte> actual, string what)
    {
        actual.Length.Should().Be(expected.Length, "{0} must have the length that was written", what);
        int same = expected.Span.CommonPrefixLength(actual.Span);
        same.Should().Be(expected.Length,
            "{0} must arrive intact and in order; first difference at index {1} (expected 0x{2:X2})",
            what, same, same < expected.Length ? expected.Span[same] : 0);
    }

    // ------------------------------------------------------------------------------------------
    // Helpers: one read / one write in a given shape
    // ------------------------------------------------------------------------------------------

    /// <summary>Whether <paramref name="mode"/> blocks the calling thread.</summary>
    protected static bool IsSync(ReadWriteMode mode) =>
        mode is ReadWriteMode.SyncByte or ReadWriteMode.SyncArray or ReadWriteMode.SyncSpan or ReadWriteMode.SyncApm;

    /// <summary>One synchronous read (a zero count with ReadByte returns 0 without calling).</summary>
    protected static int ReadOnceSync(ReadWriteMode mode, Stream stream, byte[] buffer, int offset, int count)
    {
        switch (mode)
        {
            case ReadWriteMode.SyncByte:
                if (count == 0)
                {
                    return 0;
                }
                int b = stream.ReadByte();
                b.Should().BeInRange(-1, 255, "ReadByte returns a byte or -1");
                if (b < 0)
                {
                    return 0;
                }
                buffer[offset] = (byte)b;
                return 1;
            case ReadWriteMode.SyncArray:
                return stream.Read(buffer, offset, count);
            case ReadWriteMode.SyncSpan:
                return stream.Read(buffer.AsSpan(offset, count));
            case ReadWriteMode.SyncApm:
                return stream.EndRead(stream.BeginRead(buffer, offset, count, null, null));
            default:
                throw new ArgumentOutOfRangeException(nameof(mode), mode, "not a synchronous mode");
        }
    }

    /// <summary>
    /// Starts one read in the given shape and returns it as a task, not bounded by a timeout.
    /// The call is made on the thread pool whatever the shape: an asynchronous API that blocks
    /// (Stream's default Begin/End serialize reads and writes on a semaphore, and wait for it
    /// synchronously) then cannot block the test, which still times out.
    /// </summary>
    protected static Task<int> StartRead(ReadWriteMode mode, Stream stream, byte[] buffer, int offset, int count, CancellationToken cancellationToken = default) =>
        mode switch
        {
            ReadWriteMode.AsyncArray => Task.Run(() => stream.ReadAsync(buffer, offset, count, cancellationToken), CancellationToken.None),
            ReadWriteMode.AsyncMemory => Task.Run(() => stream.ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask(), CancellationToken.None),
            ReadWriteMode.AsyncApm => Task.Run(() => Task.Factory.FromAsync(stream.BeginRead, stream.EndRead, buffer, offset, count, null), CancellationToken.None),
            _ => Task.Run(() => ReadOnceSync(mode, stream, buffer, offset, count), CancellationToken.None),
        };

    /// <summary>One read in the given shape, bounded by <see cref="Timeout"/>; checks the count returned is in range.</summary>
    protected async Task<int> ReadOnceAsync(ReadWriteMode mode, Stream stream, byte[] buffer, int offset, int count)
    {
        int n = await TimeLimit(StartRead(mode, stream, buffer, offset, count), $"a {mode} read of {count} bytes");
        n.Should().BeInRange(0, count, "a read returns at most the count asked for");
        return n;
    }

    /// <summary>One synchronous write (a zero count with WriteByte writes nothing).</summary>
    protected static void WriteOnceSync(ReadWriteMode mode, Stream stream, byte[] buffer, int offset, int count)
    {
        switch (mode)
        {
            case ReadWriteMode.SyncByte:
                for (int i = offset; i < offset + count; i++)
                {
                    stream.WriteByte(buffer[i]);
                }
                break;
            case ReadWriteMode.SyncArray:
                stream.Write(buffer, offset, count);
                break;
            case ReadWriteMode.SyncSpan:
                stream.Write(buffer.AsSpan(offset, count));
                break;
            case ReadWriteMode.SyncApm:
                stream.EndWrite(stream.BeginWrite(buffer, offset, count, null, null));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(mode), mode, "not a synchronous mode");
        }
    }

    /// <summary>Starts one write in the given shape, not bounded by a timeout (made on the thread pool, as <see cref="StartRead"/>).</summary>
    protected static Task StartWrite(ReadWriteMode mode, Stream stream, byte[] buffer, int offset, int count, CancellationToken cancellationToken = default) =>
        mode switch
        {
            ReadWriteMode.AsyncArray => Task.Run(() => stream.WriteAsync(buffer, offset, count, cancellationToken), CancellationToken.None),
            ReadWriteMode.AsyncMemory => Task.Run(() => stream.WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask(), CancellationToken.None),
            ReadWriteMode.AsyncApm => Task.Run(() => Task.Factory.FromAsync(stream.BeginWrite, stream.EndWrite, buffer, offset, count, null), CancellationToken.None),
            _ => Task.Run(() => WriteOnceSync(mode, stream, buffer, offset, count), CancellationToken.None),
        };

    /// <summary>Flushes if <see cref="FlushRequiredToWriteData"/>, in the sync or async shape matching <paramref name="mode"/>.</summary>
    protected async Task FlushIfRequiredAsync(ReadWriteMode mode, Stream stream)
    {
        if (!FlushRequiredToWriteData)
        {
            return;
        }
        if (IsSync(mode))
        {
            await TimeLimit(Task.Run(stream.Flush), "Flush");
        }
        else
        {
            await TimeLimit(stream.FlushAsync(), "FlushAsync");
        }
    }

    // ------------------------------------------------------------------------------------------
    // Helpers: whole transfers
    // ------------------------------------------------------------------------------------------

    /// <summary>
    /// Writes <paramref name="count"/> bytes in calls of at most <paramref name="chunk"/> bytes
    /// (then flushes if required), bounded by <see cref="Timeout"/>.
    /// </summary>
    protected async Task WriteAllAsync(ReadWriteMode mode, Stream stream, byte[] data, int offset, int count, int chunk = int.MaxValue)
    {
        Task loop = IsSync(mode)
            ? Task.Run(() =>
            {
                for (int done = 0; done < count;)
                {
                    int n = Math.Min(chunk, count - done);
                    WriteOnceSync(mode, stream, data, offset + done, n);
                    done += n;
                }
            })
            : Task.Run(WriteLoopAsync);
        await TimeLimit(loop, $"writing {count} bytes ({mode}, chunks of {Math.Min(chunk, count)})");
        await FlushIfRequiredAsync(mode, stream);

        async Task WriteLoopAsync()
        {
            for (int done = 0; done < count;)
            {
                int n = Math.Min(chunk, count - done);
                await StartWrite(mode, stream, data, offset + done, n);
                done += n;
            }
        }
    }

    /// <inheritdoc cref="WriteAllAsync(ReadWriteMode, Stream, byte[], int, int, int)"/>
    protected Task WriteAllAsync(ReadWriteMode mode, Stream stream, byte[] data, int chunk = int.MaxValue) =>
        WriteAllAsync(mode, stream, data, 0, data.Length, chunk);

    /// <summary>
    /// Reads until <paramref name="count"/> bytes or end of stream, in calls asking for at most
    /// <paramref name="chunk"/> bytes, bounded by <see cref="Timeout"/>; returns the byte count read.
    /// </summary>
    protected async Task<int> ReadUpToAsync(ReadWriteMode mode, Stream stream, byte[] buffer, int offset, int count, int chunk = int.MaxValue)
    {
        Task<int> loop = IsSync(mode)
            ? Task.Run(() =>
            {
                int total = 0;
                while (total < count)
                {
                    int ask = Math.Min(chunk, count - total);
                    int n = ReadOnceSync(mode, stream, buffer, offset + total, ask);
                    n.Should().BeInRange(0, ask, "a read returns at most the count asked for");
                    if (n == 0)
                    {
                        break;
                    }
                    total += n;
                }
                return total;
            })
            : Task.Run(ReadLoopAsync);
        return await TimeLimit(loop, $"reading {count} bytes ({mode}, reads of {Math.Min(chunk, count)})");

        async Task<int> ReadLoopAsync()
        {
            int total = 0;
            while (total < count)
            {
                int ask = Math.Min(chunk, count - total);
                int n = await StartRead(mode, stream, buffer, offset + total, ask);
                n.Should().BeInRange(0, ask, "a read returns at most the count asked for");
                if (n == 0)
                {
                    break;
                }
                total += n;
            }
            return total;
        }
    }

    /// <summary>Reads exactly <paramref name="count"/> bytes and returns them; fails on an early end of stream.</summary>
    protected async Task<byte[]> ReadExactlyAsync(ReadWriteMode mode, Stream stream, int count, int chunk = int.MaxValue)
    {
        byte[] buffer = new byte[count];
        int n = await ReadUpToAsync(mode, stream, buffer, 0, count, chunk);
        n.Should().Be(count, "the peer wrote {0} bytes; end of stream came after {1}", count, n);
        return buffer;
    }

    /// <summary>Reads to end of stream (bounded by <see cref="Timeout"/>) and returns everything read.</summary>
    protected async Task<byte[]> ReadToEndAsync(ReadWriteMode mode, Stream stream, int bufferSize = 64 * 1024)
    {
        var all = new MemoryStream();
        byte[] buffer = new byte[bufferSize];
        Task loop = IsSync(mode)
            ? Task.Run(() =>
            {
                int n;
                while ((n = ReadOnceSync(mode, stream, buffer, 0, buffer.Length)) > 0)
                {
                    all.Write(buffer, 0, n);
                }
            })
            : Task.Run(ReadLoopAsync);
        await TimeLimit(loop, $"reading to end of stream ({mode})");
        return all.ToArray();

        async Task ReadLoopAsync()
        {
            int n;
            while ((n = await StartRead(mode, stream, buffer, 0, buffer.Length)) > 0)
            {
                n.Should().BeInRange(1, buffer.Length);
                all.Write(buffer, 0, n);
            }
        }
    }

    /// <summary>Asserts the next read returns 0 (end of stream), in every buffer shape.</summary>
    protected async Task AssertEofAsync(Stream stream, string because)
    {
        byte[] buffer = new byte[16];
        (await TimeLimit(stream.ReadAsync(buffer.AsMemory()).AsTask(), "a read at end of stream")).Should().Be(0, because);
        (await TimeLimit(Task.Run(() => stream.Read(buffer, 0, buffer.Length)), "a read at end of stream")).Should().Be(0, because);
        (await TimeLimit(Task.Run(stream.ReadByte), "ReadByte at end of stream")).Should().Be(-1, because);
    }

    /// <summary>An operation did not complete within <see cref="Timeout"/>.</summary>
    protected sealed class StreamHangException(string message) : TimeoutException(message);

    /// <summary>An awaitable that always resumes on the thread pool (with no synchronization context).</summary>
    protected readonly struct ThreadPoolAwaitable : ICriticalNotifyCompletion
    {
        /// <summary>Always false: awaiting always moves to the thread pool.</summary>
        public bool IsCompleted => false;

        /// <summary>The awaiter: the awaitable itself.</summary>
        public ThreadPoolAwaitable GetAwaiter() => this;

        /// <summary>Nothing to return: the await only changes threads.</summary>
        public void GetResult()
        {
        }

        /// <summary>Queues <paramref name="continuation"/> to the thread pool (flowing the execution context).</summary>
        public void OnCompleted(Action continuation) => ThreadPool.QueueUserWorkItem(static c => c(), continuation, preferLocal: false);

        /// <summary>Queues <paramref name="continuation"/> to the thread pool (without the execution context).</summary>
        public void UnsafeOnCompleted(Action continuation) => ThreadPool.UnsafeQueueUserWorkItem(static c => c(), continuation, preferLocal: false);
    }
}
