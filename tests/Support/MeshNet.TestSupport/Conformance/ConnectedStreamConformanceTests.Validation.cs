using FluentAssertions;
using Xunit;

namespace MeshNet.TestSupport.Conformance;

// CA2022 (inexact read): the reads here are expected to throw, their count is irrelevant.
#pragma warning disable CA2022

// Capabilities, argument validation, behaviour once disposed, timeout properties.
// Usage errors throw synchronously (before any I/O), also from the Task/ValueTask-returning
// methods, as dotnet/runtime's suite requires: each check runs on the thread pool under a
// timeout because a missing check can turn into a read that blocks.
public abstract partial class ConnectedStreamConformanceTests
{
    private static readonly (int Offset, int Count)[] NullBufferArguments = [(0, 0), (1, 2)];
    private static readonly int[] BadCounts = [-1, 2];
    private static readonly (int Offset, int Count)[] BadRanges = [(1, 1), (2, 0), (int.MaxValue, int.MaxValue)];

    [Fact]
    public virtual async Task Capabilities_AreThoseOfANonSeekableDuplexStream()
    {
        await LeaveTestContext();
        await using StreamPair pair = await CreatePairAsync();
        await RunBounded(() =>
        {
            foreach (Stream stream in pair.Streams)
            {
                stream.CanRead.Should().BeTrue();
                stream.CanWrite.Should().BeTrue();
                stream.CanSeek.Should().BeFalse("a connection is not seekable");
                stream.CanTimeout.Should().Be(CanTimeout, "CanTimeout must match the suite's CanTimeout hook");

                stream.Invoking(s => s.Length).Should().Throw<NotSupportedException>();
                stream.Invoking(s => s.Position).Should().Throw<NotSupportedException>();
                stream.Invoking(s => s.Position = 0).Should().Throw<NotSupportedException>();
                stream.Invoking(s => s.Seek(0, SeekOrigin.Begin)).Should().Throw<NotSupportedException>();
                stream.Invoking(s => s.Seek(0, SeekOrigin.Current)).Should().Throw<NotSupportedException>();
                stream.Invoking(s => s.SetLength(1)).Should().Throw<NotSupportedException>();
            }
        }, "checking the capabilities");
    }

    [Fact]
    public virtual async Task ReadArguments_AreValidatedSynchronously()
    {
        await LeaveTestContext();
        await using StreamPair pair = await CreatePairAsync();
        byte[] one = new byte[1];
        await RunBounded(() =>
        {
            foreach (Stream stream in pair.Streams)
            {
                foreach ((int offset, int count) in NullBufferArguments) // (0, 0) must not be special-cased to allow null
                {
                    Expect<ArgumentNullException>(() => stream.Read(null!, offset, count), "buffer", $"Read(null, {offset}, {count})");
                    Expect<ArgumentNullException>(() => stream.ReadAsync(null!, offset, count), "buffer", $"ReadAsync(null, {offset}, {count})");
                    Expect<ArgumentNullException>(() => stream.ReadAsync(null!, offset, count, default), "buffer", $"ReadAsync(null, {offset}, {count}, ct)");
                    Expect<ArgumentNullException>(() => stream.BeginRead(null!, offset, count, null, null), "buffer", $"BeginRead(null, {offset}, {count})");
                }
                Expect<ArgumentNullException>(() => stream.EndRead(null!), "asyncResult", "EndRead(null)");

                Expect<ArgumentOutOfRangeException>(() => stream.Read(one, -1, 0), "offset", "Read offset -1");
                Expect<ArgumentOutOfRangeException>(() => stream.ReadAsync(one, -1, 0), "offset", "ReadAsync offset -1");
                Expect<ArgumentOutOfRangeException>(() => stream.ReadAsync(one, -1, 0, default), "offset", "ReadAsync offset -1");
                Expect<ArgumentOutOfRangeException>(() => stream.BeginRead(one, -1, 0, null, null), "offset", "BeginRead offset -1");

                foreach (int count in BadCounts)
                {
                    Expect<ArgumentOutOfRangeException>(() => stream.Read(one, 0, count), "count", $"Read count {count}");
                    Expect<ArgumentOutOfRangeException>(() => stream.ReadAsync(one, 0, count), "count", $"ReadAsync count {count}");
                    Expect<ArgumentOutOfRangeException>(() => stream.ReadAsync(one, 0, count, default), "count", $"ReadAsync count {count}");
                    Expect<ArgumentOutOfRangeException>(() => stream.BeginRead(one, 0, count, null, null), "count", $"BeginRead count {count}");
                }

                foreach ((int offset, int count) in BadRanges)
                {
                    Expect<ArgumentOutOfRangeException>(() => stream.Read(one, offset, count), "count", $"Read({offset}, {count}) on 1 byte");
                    Expect<ArgumentOutOfRangeException>(() => stream.ReadAsync(one, offset, count), "count", $"ReadAsync({offset}, {count}) on 1 byte");
                    Expect<ArgumentOutOfRangeException>(() => stream.ReadAsync(one, offset, count, default), "count", $"ReadAsync({offset}, {count}) on 1 byte");
                    Expect<ArgumentOutOfRangeException>(() => stream.BeginRead(one, offset, count, null, null), "count", $"BeginRead({offset}, {count}) on 1 byte");
                }

                ExpectType(InvalidAsyncResultExceptionType, () => stream.EndRead(new ForeignAsyncResult()), "EndRead(foreign IAsyncResult)");
            }
        }, "validating read arguments");
    }

    [Fact]
    public virtual async Task WriteArguments_AreValidatedSynchronously()
    {
        await LeaveTestContext();
        await using StreamPair pair = await CreatePairAsync();
        byte[] one = new byte[1];
        await RunBounded(() =>
        {
            foreach (Stream stream in pair.Streams)
            {
                foreach ((int offset, int count) in NullBufferArguments)
                {
                    Expect<ArgumentNullException>(() => stream.Write(null!, offset, count), "buffer", $"Write(null, {offset}, {count})");
                    Expect<ArgumentNullException>(() => stream.WriteAsync(null!, offset, count), "buffer", $"WriteAsync(null, {offset}, {count})");
                    Expect<ArgumentNullException>(() => stream.WriteAsync(null!, offset, count, default), "buffer", $"WriteAsync(null, {offset}, {count}, ct)");
                    Expect<ArgumentNullException>(() => stream.BeginWrite(null!, offset, count, null, null), "buffer", $"BeginWrite(null, {offset}, {count})");
                }
                Expect<ArgumentNullException>(() => stream.EndWrite(null!), "asyncResult", "EndWrite(null)");

                Expect<ArgumentOutOfRangeException>(() => stream.Write(one, -1, 0), "offset", "Write offset -1");
                Expect<ArgumentOutOfRangeException>(() => stream.WriteAsync(one, -1, 0), "offset", "WriteAsync offset -1");
                Expect<ArgumentOutOfRangeException>(() => stream.WriteAsync(one, -1, 0, default), "offset", "WriteAsync offset -1");
                Expect<ArgumentOutOfRangeException>(() => stream.BeginWrite(one, -1, 0, null, null), "offset", "BeginWrite offset -1");

                foreach (int count in BadCounts)
                {
                    Expect<ArgumentOutOfRangeException>(() => stream.Write(one, 0, count), "count", $"Write count {count}");
                    Expect<ArgumentOutOfRangeException>(() => stream.WriteAsync(one, 0, count), "count", $"WriteAsync count {count}");
                    Expect<ArgumentOutOfRangeException>(() => stream.WriteAsync(one, 0, count, default), "count", $"WriteAsync count {count}");
                    Expect<ArgumentOutOfRangeException>(() => stream.BeginWrite(one, 0, count, null, null), "count", $"BeginWrite count {count}");
                }

                foreach ((int offset, int count) in BadRanges)
                {
                    Expect<ArgumentException>(() => stream.Write(one, offset, count), null, $"Write({offset}, {count}) on 1 byte");
                    Expect<ArgumentException>(() => stream.WriteAsync(one, offset, count), null, $"WriteAsync({offset}, {count}) on 1 byte");
                    Expect<ArgumentException>(() => stream.WriteAsync(one, offset, count, default), null, $"WriteAsync({offset}, {count}) on 1 byte");
                    Expect<ArgumentException>(() => stream.BeginWrite(one, offset, count, null, null), null, $"BeginWrite({offset}, {count}) on 1 byte");
                }

                ExpectType(InvalidAsyncResultExceptionType, () => stream.EndWrite(new ForeignAsyncResult()), "EndWrite(foreign IAsyncResult)");
            }
        }, "validating write arguments");
    }

    [Fact]
    public virtual async Task CopyToArguments_AreValidatedSynchronously()
    {
        await LeaveTestContext();
        await using StreamPair pair = await CreatePairAsync();
        await RunBounded(() =>
        {
            foreach (Stream stream in pair.Streams)
            {
                Expect<ArgumentNullException>(() => stream.CopyTo(null!), "destination", "CopyTo(null)");
                Expect<ArgumentNullException>(() => stream.CopyTo(null!, 1), "destination", "CopyTo(null, 1)");
                Expect<ArgumentNullException>(() => stream.CopyToAsync(null!, default(CancellationToken)), "destination", "CopyToAsync(null, ct)");
                Expect<ArgumentNullException>(() => stream.CopyToAsync(null!, 1), "destination", "CopyToAsync(null, 1)");
                Expect<ArgumentNullException>(() => stream.CopyToAsync(null!, 1, default), "destination", "CopyToAsync(null, 1, ct)");

                var destination = new MemoryStream();
                foreach (int bufferSize in new[] { 0, -1 })
                {
                    Expect<ArgumentOutOfRangeException>(() => stream.CopyTo(destination, bufferSize), "bufferSize", $"CopyTo(bufferSize {bufferSize})");
                    Expect<ArgumentOutOfRangeException>(() => stream.CopyToAsync(destination, bufferSize), "bufferSize", $"CopyToAsync(bufferSize {bufferSize})");
                    Expect<ArgumentOutOfRangeException>(() => stream.CopyToAsync(destination, bufferSize, default), "bufferSize", $"CopyToAsync(bufferSize {bufferSize}, ct)");
                }

                var readOnly = new MemoryStream(new byte[1], writable: false);
                Expect<NotSupportedException>(() => stream.CopyTo(readOnly), null, "CopyTo(read-only destination)");
                Expect<NotSupportedException>(() => stream.CopyToAsync(readOnly), null, "CopyToAsync(read-only destination)");

                var disposed = new MemoryStream(new byte[1]);
                disposed.Dispose();
                Expect<ObjectDisposedException>(() => stream.CopyTo(disposed), null, "CopyTo(disposed destination)");
                Expect<ObjectDisposedException>(() => stream.CopyToAsync(disposed), null, "CopyToAsync(disposed destination)");
            }
        }, "validating CopyTo arguments");
    }

    [Fact]
    public virtual async Task Timeouts_DefaultToInfinite_RoundTrip_OrAreUnsupported()
    {
        await LeaveTestContext();
        await using StreamPair pair = await CreatePairAsync();
        await RunBounded(() =>
        {
            foreach (Stream stream in pair.Streams)
            {
                if (!CanTimeout)
                {
                    stream.Invoking(s => s.ReadTimeout).Should().Throw<InvalidOperationException>();
                    stream.Invoking(s => s.ReadTimeout = 1).Should().Throw<InvalidOperationException>();
                    stream.Invoking(s => s.WriteTimeout).Should().Throw<InvalidOperationException>();
                    stream.Invoking(s => s.WriteTimeout = 1).Should().Throw<InvalidOperationException>();
                    continue;
                }

                stream.ReadTimeout.Should().Be(System.Threading.Timeout.Infinite, "the read timeout defaults to infinite");
                stream.WriteTimeout.Should().Be(System.Threading.Timeout.Infinite, "the write timeout defaults to infinite");
                foreach (int bad in new[] { 0, -2 })
                {
                    stream.Invoking(s => s.ReadTimeout = bad).Should().Throw<ArgumentOutOfRangeException>($"ReadTimeout {bad} is invalid");
                    stream.Invoking(s => s.WriteTimeout = bad).Should().Throw<ArgumentOutOfRangeException>($"WriteTimeout {bad} is invalid");
                }
                for (int i = 0; i < 2; i++) // the same value twice
                {
                    stream.ReadTimeout = 100;
                    stream.ReadTimeout.Should().BeGreaterThanOrEqualTo(100);
                    stream.WriteTimeout = 100;
                    stream.WriteTimeout.Should().BeGreaterThanOrEqualTo(100);
                }
                stream.ReadTimeout = System.Threading.Timeout.Infinite;
                stream.ReadTimeout.Should().Be(System.Threading.Timeout.Infinite);
                stream.WriteTimeout = System.Threading.Timeout.Infinite;
                stream.WriteTimeout.Should().Be(System.Threading.Timeout.Infinite);
            }
        }, "checking the timeout properties");
    }

    [Fact]
    public virtual async Task Disposed_OperationsThrowObjectDisposedException()
    {
        await LeaveTestContext();
        StreamPair pair = await CreatePairAsync();
        await pair.DisposeAsync();

        foreach (Stream stream in pair.Streams)
        {
            // Disposing again, in every shape, is harmless.
            await RunBounded(() =>
            {
                stream.Dispose();
                stream.Close();
            }, "disposing again");
            await TimeLimit(stream.DisposeAsync().AsTask(), "DisposeAsync again");

            byte[] one = new byte[1];
            await RunBounded(() =>
            {
                ExpectDisposed(() => stream.ReadByte(), "ReadByte");
                ExpectDisposed(() => stream.Read(one, 0, 1), "Read(byte[])");
                ExpectDisposed(() => stream.Read(one.AsSpan()), "Read(Span)");
                // Stream's default Begin/End check CanRead/CanWrite first (NotSupportedException once disposed).
                ExpectAnyOf(() => stream.EndRead(stream.BeginRead(one, 0, 1, null, null)), "Begin/EndRead", typeof(ObjectDisposedException), typeof(NotSupportedException));
                ExpectDisposed(() => stream.WriteByte(1), "WriteByte");
                ExpectDisposed(() => stream.Write(one, 0, 1), "Write(byte[])");
                ExpectDisposed(() => stream.Write(one.AsSpan()), "Write(ReadOnlySpan)");
                ExpectAnyOf(() => stream.EndWrite(stream.BeginWrite(one, 0, 1, null, null)), "Begin/EndWrite", typeof(ObjectDisposedException), typeof(NotSupportedException));
                ExpectDisposed(() => stream.CopyTo(new MemoryStream()), "CopyTo");

                // Not I/O: disposed or the not-supported answer both make sense.
                ExpectAnyOf(() => stream.Length, "Length", typeof(ObjectDisposedException), typeof(NotSupportedException));
                ExpectAnyOf(() => stream.Position, "Position", typeof(ObjectDisposedException), typeof(NotSupportedException));
                ExpectAnyOf(() => stream.Position = 0, "Position = 0", typeof(ObjectDisposedException), typeof(NotSupportedException));
                ExpectAnyOf(() => stream.Seek(0, SeekOrigin.Begin), "Seek", typeof(ObjectDisposedException), typeof(NotSupportedException));
                ExpectAnyOf(() => stream.SetLength(1), "SetLength", typeof(ObjectDisposedException), typeof(NotSupportedException));
                ExpectAnyOf(() => stream.ReadTimeout, "ReadTimeout", typeof(ObjectDisposedException), typeof(InvalidOperationException));
                ExpectAnyOf(() => stream.ReadTimeout = 1, "ReadTimeout = 1", typeof(ObjectDisposedException), typeof(InvalidOperationException));
                ExpectAnyOf(() => stream.WriteTimeout, "WriteTimeout", typeof(ObjectDisposedException), typeof(InvalidOperationException));
                ExpectAnyOf(() => stream.WriteTimeout = 1, "WriteTimeout = 1", typeof(ObjectDisposedException), typeof(InvalidOperationException));

                // Flushing a disposed stream may succeed (nothing to flush) or throw disposed.
                ExpectAnyOf(stream.Flush, "Flush", typeof(ObjectDisposedException), null);
            }, "using a disposed stream synchronously");

            // The asynchronous shapes may throw synchronously or return a faulted task.
            await ExpectDisposedAsync(() => stream.ReadAsync(one, 0, 1), "ReadAsync(byte[])");
            await ExpectDisposedAsync(async () => await stream.ReadAsync(one.AsMemory()), "ReadAsync(Memory)");
            await ExpectDisposedAsync(() => Task.Factory.FromAsync(stream.BeginRead, stream.EndRead, one, 0, 1, null), "FromAsync(BeginRead)", orNotSupported: true);
            await ExpectDisposedAsync(() => stream.WriteAsync(one, 0, 1), "WriteAsync(byte[])");
            await ExpectDisposedAsync(async () => await stream.WriteAsync(one.AsMemory()), "WriteAsync(ReadOnlyMemory)");
            await ExpectDisposedAsync(() => Task.Factory.FromAsync(stream.BeginWrite, stream.EndWrite, one, 0, 1, null), "FromAsync(BeginWrite)", orNotSupported: true);
            await ExpectDisposedAsync(() => stream.CopyToAsync(new MemoryStream()), "CopyToAsync");
            Exception? flush = await OutcomeAsync(Invoke(stream.FlushAsync), "FlushAsync on a disposed stream");
            if (flush is not null)
            {
                flush.Should().BeOfType<ObjectDisposedException>("FlushAsync on a disposed stream succeeds or throws ObjectDisposedException");
            }
        }
    }

    // ------------------------------------------------------------------------------------------
    // Assertion helpers for synchronous usage errors
    // ------------------------------------------------------------------------------------------

    /// <summary>Asserts <paramref name="call"/> throws <typeparamref name="T"/> (or a subclass) synchronously, naming <paramref name="paramName"/> when given.</summary>
    private static void Expect<T>(Action call, string? paramName, string what)
        where T : Exception
    {
        Exception? e = Capture(call);
        e.Should().NotBeNull("{0} must throw {1} synchronously (nothing was thrown, or only the returned task faulted)", what, typeof(T).Name);
        e.Should().BeAssignableTo<T>("{0} must throw {1}", what, typeof(T).Name);
        if (paramName is not null)
        {
            ((ArgumentException)e!).ParamName.Should().Be(paramName, "{0} names the bad argument", what);
        }
    }

    /// <summary>Asserts <paramref name="call"/> throws an exception assignable to <paramref name="type"/> synchronously.</summary>
    private static void ExpectType(Type type, Action call, string what)
    {
        Exception? e = Capture(call);
        e.Should().NotBeNull("{0} must throw {1}", what, type.Name);
        e.Should().BeAssignableTo(type, "{0} must throw {1}", what, type.Name);
    }

    /// <summary>Asserts <paramref name="call"/> throws <see cref="ObjectDisposedException"/> synchronously.</summary>
    private static void ExpectDisposed(Action call, string what) => Expect<ObjectDisposedException>(call, null, what + " on a disposed stream");

    /// <summary>Asserts <paramref name="call"/> throws one of <paramref name="types"/> (a null entry: may also succeed).</summary>
    private static void ExpectAnyOf(Action call, string what, params Type?[] types)
    {
        Exception? e = Capture(call);
        if (e is null)
        {
            types.Should().Contain((Type?)null, "{0} on a disposed stream must throw one of {1}", what, string.Join(", ", types.Select(t => t?.Name)));
            return;
        }
        types.Where(t => t is not null).Should().Contain(t => t!.IsInstanceOfType(e),
            "{0} on a disposed stream must throw one of {1}, not {2}: {3}", what, string.Join(", ", types.Select(t => t?.Name ?? "success")), e.GetType().Name, e.Message);
    }

    /// <summary>Asserts an asynchronous operation on a disposed stream throws <see cref="ObjectDisposedException"/> (synchronously or from the task).</summary>
    private async Task ExpectDisposedAsync(Func<Task> call, string what, bool orNotSupported = false)
    {
        Exception? e = await OutcomeAsync(Invoke(call), what + " on a disposed stream");
        e.Should().NotBeNull("{0} on a disposed stream must fail", what);
        if (orNotSupported && e is NotSupportedException)
        {
            return;
        }
        e.Should().BeOfType<ObjectDisposedException>("{0} on a disposed stream must throw ObjectDisposedException", what);
    }

    /// <summary>Turns a synchronous throw from <paramref name="call"/> into a faulted task.</summary>
    private static Task Invoke(Func<Task> call)
    {
        try
        {
            return call();
        }
        catch (Exception e)
        {
            return Task.FromException(e);
        }
    }

    private static Exception? Capture(Action call)
    {
        try
        {
            call();
            return null;
        }
        catch (Exception e)
        {
            return e;
        }
    }

    private static void ExpectAnyOf(Func<object?> call, string what, params Type?[] types) => ExpectAnyOf(() => { _ = call(); }, what, types);

    /// <summary>An IAsyncResult no stream created.</summary>
    private sealed class ForeignAsyncResult : IAsyncResult
    {
        public object? AsyncState => null;

        public WaitHandle AsyncWaitHandle => throw new NotSupportedException();

        public bool CompletedSynchronously => true;

        public bool IsCompleted => true;
    }
}
