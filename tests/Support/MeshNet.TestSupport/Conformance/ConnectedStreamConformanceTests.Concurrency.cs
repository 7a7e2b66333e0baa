using System.Text;
using FluentAssertions;
using Xunit;

namespace MeshNet.TestSupport.Conformance;

// Concurrent use: both directions at once, parallel reads / writes, many connections,
// continuation scheduling of ReadAsync (contexts, execution context, inline execution).
public abstract partial class ConnectedStreamConformanceTests
{
    [ThreadStatic]
    private static bool t_insidePeerWrite;

    [Theory]
    [MemberData(nameof(BufferModes), MemberType = typeof(ConnectedStreamConformanceTests))]
    public virtual async Task ReadAndWrite_BothDirectionsAtOnce_LargeTransfer(ReadWriteMode mode)
    {
        await LeaveTestContext();
        const int Size = 4 * 1024 * 1024 + 17;
        await using StreamPair pair = await CreatePairAsync();
        byte[] oneToTwo = RandomBytes(Size);
        byte[] twoToOne = RandomBytes(Size);

        Task write1 = WriteAllAsync(mode, pair.Stream1, oneToTwo, chunk: 64 * 1024);
        Task write2 = WriteAllAsync(mode, pair.Stream2, twoToOne, chunk: 48 * 1024);
        Task<byte[]> read1 = ReadExactlyAsync(mode, pair.Stream1, Size, chunk: 32 * 1024);
        Task<byte[]> read2 = ReadExactlyAsync(mode, pair.Stream2, Size, chunk: 40 * 1024);
        await AllOrFirstFailure(write1, write2, read1, read2);

        AssertSameBytes(oneToTwo, await read2, "stream 1 to stream 2");
        AssertSameBytes(twoToOne, await read1, "stream 2 to stream 1");
    }

    [Fact]
    public virtual async Task SmallMessages_BothDirectionsAtOnce()
    {
        await LeaveTestContext();
        const int Rounds = 300;
        byte[] message = "This is a test.  This is only a test."u8.ToArray();
        await using StreamPair pair = await CreatePairAsync();

        Task Work(Stream writer, Stream reader) => Task.Run(async () =>
        {
            byte[] buffer = new byte[message.Length];
            for (int i = 0; i < Rounds; i++)
            {
                Task write = writer.WriteAsync(message, 0, message.Length);
                int received = 0;
                while (received < buffer.Length)
                {
                    int n = await reader.ReadAsync(buffer.AsMemory(received));
                    n.Should().BeGreaterThan(0, "the peer is open and writing (round {0})", i);
                    received += n;
                }
                await write;
                buffer.Should().Equal(message, "round {0}", i);
            }
        });

        await TimeLimit(AllOrFirstFailure(Work(pair.Stream1, pair.Stream2), Work(pair.Stream2, pair.Stream1)),
            $"{Rounds} small messages each way, both directions at once");
    }

    [Fact]
    public virtual async Task PingPong_ManyRoundTrips_DoNotStall()
    {
        await LeaveTestContext();
        const int Rounds = 500;
        await using StreamPair pair = await CreatePairAsync();

        Task echo = Task.Run(async () =>
        {
            byte[] buffer = new byte[ReadsMayBlockUntilBufferFull ? 1 : 256];
            int n;
            while ((n = await pair.Stream2.ReadAsync(buffer)) > 0)
            {
                await pair.Stream2.WriteAsync(buffer.AsMemory(0, n));
            }
        });

        Task client = Task.Run(async () =>
        {
            byte[] reply = new byte[100];
            for (int i = 0; i < Rounds; i++)
            {
                byte[] request = RandomBytes(1 + (i % 100));
                await pair.Stream1.WriteAsync(request);
                int received = 0;
                while (received < request.Length)
                {
                    int n = await pair.Stream1.ReadAsync(reply.AsMemory(received, request.Length - received));
                    n.Should().BeGreaterThan(0, "the echo side is open (round {0})", i);
                    received += n;
                }
                reply.AsSpan(0, received).SequenceEqual(request).Should().BeTrue("the echo of round {0} matches", i);
            }
            await pair.Stream1.DisposeAsync();
        });

        await TimeLimit(AllOrFirstFailure(client, echo), $"{Rounds} request/response round trips");
    }

    [Fact]
    public virtual async Task ParallelReads_AreSupportedOrRejected()
    {
        await LeaveTestContext();
        await using StreamPair pair = await CreatePairAsync();
        byte[] first = new byte[1], second = new byte[1];
        Task<int> read1 = pair.Stream2.ReadAsync(first, 0, 1);
        await AssertPendingAsync(read1, "a read with no data");
        Task<int> read2;
        try
        {
            read2 = pair.Stream2.ReadAsync(second.AsMemory()).AsTask();
        }
        catch (Exception e)
        {
            read2 = Task.FromException<int>(e);
        }

        if (UnsupportedConcurrentExceptionType is Type rejected)
        {
            await Task.WhenAny(read2, Task.Delay(PendingDelay));
            read2.IsCompleted.Should().BeTrue("a second concurrent read must fail at once with {0} (UnsupportedConcurrentExceptionType); it is pending", rejected.Name);
            read2.Exception?.InnerException.Should().BeAssignableTo(rejected, "a second concurrent read is rejected with {0}", rejected.Name);
            read2.IsFaulted.Should().BeTrue("a second concurrent read is rejected");

            await WriteAllAsync(ReadWriteMode.AsyncMemory, pair.Stream1, [7]);
            (await TimeLimit(read1, "the first read")).Should().Be(1, "the rejected read does not disturb the pending one");
            first[0].Should().Be(7);
            return;
        }

        await AssertPendingAsync(read2, "a second concurrent read with no data");
        await WriteAllAsync(ReadWriteMode.AsyncMemory, pair.Stream1, [7, 8]);
        (await TimeLimit(read1, "the first of two concurrent reads")).Should().Be(1);
        (await TimeLimit(read2, "the second of two concurrent reads")).Should().Be(1);
        new[] { first[0], second[0] }.Should().BeEquivalentTo(new byte[] { 7, 8 }, "each concurrent read gets one of the bytes, none twice");
    }

    [Fact]
    public virtual async Task ParallelWrites_AreSupportedOrRejected()
    {
        await LeaveTestContext();
        await using StreamPair pair = await CreatePairAsync();
        int firstSize = BackpressureBytes ?? 1024 * 1024;
        byte[] a = RandomBytes(firstSize);
        byte[] b = RandomBytes(64 * 1024);

        Task writeA = pair.Stream1.WriteAsync(a, 0, a.Length);
        Task writeB;
        try
        {
            writeB = pair.Stream1.WriteAsync(b.AsMemory()).AsTask();
        }
        catch (Exception e)
        {
            writeB = Task.FromException(e);
        }

        if (UnsupportedConcurrentExceptionType is Type rejected)
        {
            if (BackpressureBytes is null)
            {
                // The first write may have completed already (buffered): only a pending write makes the second concurrent.
                await AllOrFirstFailure(TimeLimit(writeA, "the first write"), ReadExactlyAsync(ReadWriteMode.AsyncMemory, pair.Stream2, a.Length));
                await OutcomeAsync(writeB, "the second write");
                return;
            }

            await Task.WhenAny(writeB, Task.Delay(PendingDelay));
            writeB.IsCompleted.Should().BeTrue("a write started while another is pending must fail at once with {0}; it is pending", rejected.Name);
            writeB.IsFaulted.Should().BeTrue("a second concurrent write is rejected");
            writeB.Exception!.InnerException.Should().BeAssignableTo(rejected, "a second concurrent write is rejected with {0}", rejected.Name);

            Task<byte[]> onlyA = ReadExactlyAsync(ReadWriteMode.AsyncMemory, pair.Stream2, a.Length);
            await AllOrFirstFailure(TimeLimit(writeA, "the pending write"), onlyA);
            AssertSameBytes(a, await onlyA, "the data of the accepted write");
            await TimeLimit(pair.Stream1.DisposeAsync().AsTask(), "closing the writer");
            await AssertEofAsync(pair.Stream2, "the rejected write sent nothing");
            return;
        }

        Task<byte[]> both = ReadExactlyAsync(ReadWriteMode.AsyncMemory, pair.Stream2, a.Length + b.Length);
        await AllOrFirstFailure(TimeLimit(writeA, "the first concurrent write"), TimeLimit(writeB, "the second concurrent write"), both);
        byte[] received = await both;
        // Concurrent writes are each sent whole (not interleaved), in either order.
        byte[] aThenB = [.. a, .. b];
        byte[] bThenA = [.. b, .. a];
        if (received.AsSpan(0, 16).SequenceEqual(a.AsSpan(0, 16)))
        {
            AssertSameBytes(aThenB, received, "two concurrent writes (first, then second)");
        }
        else
        {
            AssertSameBytes(bThenA, received, "two concurrent writes (second, then first)");
        }
    }

    [Fact]
    public virtual async Task ManyConnections_InParallel_StayIndependent()
    {
        await LeaveTestContext();
        const int Connections = 10, Size = 64 * 1024 + 3;
        StreamPair[] pairs = new StreamPair[Connections];
        try
        {
            for (int i = 0; i < Connections; i++)
            {
                pairs[i] = await CreatePairAsync();
            }

            await Task.WhenAll(pairs.Select(pair => Task.Run(async () =>
            {
                byte[] oneToTwo = RandomBytes(Size), twoToOne = RandomBytes(Size);
                Task<byte[]> read2 = ReadExactlyAsync(ReadWriteMode.AsyncMemory, pair.Stream2, Size, chunk: 5000);
                Task<byte[]> read1 = ReadExactlyAsync(ReadWriteMode.AsyncMemory, pair.Stream1, Size, chunk: 7000);
                await AllOrFirstFailure(
                    WriteAllAsync(ReadWriteMode.AsyncMemory, pair.Stream1, oneToTwo, chunk: 4000),
                    WriteAllAsync(ReadWriteMode.AsyncMemory, pair.Stream2, twoToOne, chunk: 6000),
                    read1,
                    read2);
                AssertSameBytes(oneToTwo, await read2, "one of many connections, 1 to 2");
                AssertSameBytes(twoToOne, await read1, "one of many connections, 2 to 1");
            })));
        }
        finally
        {
            foreach (StreamPair? pair in pairs)
            {
                if (pair is not null)
                {
                    await pair.DisposeAsync();
                }
            }
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public virtual async Task ReadContinuation_DoesNotRunInsideThePeersWrite(bool syncWrite)
    {
        await LeaveTestContext();
        await using StreamPair pair = await CreatePairAsync();
        // Off the test framework's synchronization context, so that an inline continuation would show.
        bool ranInsideWrite = await TimeLimit(Task.Run(async () =>
        {
            byte[] buffer = new byte[3];
            Task<bool> observed = ObserveAsync(pair.Stream2.ReadAsync(buffer));
            await AssertPendingAsync(observed, "a read with no data");

            Task write = Task.Factory.StartNew(() =>
            {
                t_insidePeerWrite = true;
                try
                {
                    if (syncWrite)
                    {
                        pair.Stream1.Write([1, 2, 3]);
                    }
                    else
                    {
                        _ = pair.Stream1.WriteAsync(new byte[] { 1, 2, 3 }.AsMemory()).AsTask();
                    }
                }
                finally
                {
                    t_insidePeerWrite = false;
                }
            }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            await write;
            return await observed;
        }), "a read completed by the peer's write");
        ranInsideWrite.Should().BeFalse("the continuation of a read completed by the peer's write must not run inline inside that write");

        static async Task<bool> ObserveAsync(ValueTask<int> read)
        {
            await read;
            return t_insidePeerWrite;
        }
    }

    /// <summary>Whether the execution context flows × ConfigureAwait (not called, false, true), for the continuation tests.</summary>
    public static TheoryData<bool, bool?> ContinuationCases()
    {
        var data = new TheoryData<bool, bool?>();
        foreach (bool flowExecutionContext in new[] { true, false })
        {
            foreach (bool? continueOnCapturedContext in new bool?[] { null, false, true })
            {
                data.Add(flowExecutionContext, continueOnCapturedContext);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(ContinuationCases), MemberType = typeof(ConnectedStreamConformanceTests))]
    public virtual async Task ReadAsync_Continuation_HonorsSynchronizationContextAndExecutionContext(bool flowExecutionContext, bool? continueOnCapturedContext)
    {
        await LeaveTestContext();
        await using StreamPair pair = await CreatePairAsync();
        await TimeLimit(Task.Run(async () =>
        {
            foreach ((Stream writer, Stream reader) in pair.Directions)
            {
                var ran = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                var local = new AsyncLocal<int>();
                bool contextFlowed = false, executionContextFlowed = false;
                Action continuation = () =>
                {
                    contextFlowed = SynchronizationContext.Current is PostingSynchronizationContext;
                    executionContextFlowed = local.Value == 42;
                    ran.SetResult();
                };

                ValueTask<int> read = reader.ReadAsync(new byte[1]);
                read.IsCompleted.Should().BeFalse("no data was written yet");
                SynchronizationContext.SetSynchronizationContext(new PostingSynchronizationContext());
                local.Value = 42;
                try
                {
                    Register(read, continuation, flowExecutionContext, continueOnCapturedContext);
                }
                finally
                {
                    local.Value = 0;
                    SynchronizationContext.SetSynchronizationContext(null);
                }

                await writer.WriteAsync(new byte[] { 42 });
                await FlushIfRequiredAsync(ReadWriteMode.AsyncMemory, writer);
                await ran.Task;
                read.IsCompletedSuccessfully.Should().BeTrue();
                contextFlowed.Should().Be(continueOnCapturedContext != false, "the captured SynchronizationContext is used unless ConfigureAwait(false)");
                executionContextFlowed.Should().Be(flowExecutionContext, "OnCompleted flows the ExecutionContext, UnsafeOnCompleted does not");
            }
        }), "read continuations");
    }

    [Theory]
    [MemberData(nameof(ContinuationCases), MemberType = typeof(ConnectedStreamConformanceTests))]
    public virtual async Task ReadAsync_Continuation_HonorsTaskSchedulerAndExecutionContext(bool flowExecutionContext, bool? continueOnCapturedContext)
    {
        await LeaveTestContext();
        await using StreamPair pair = await CreatePairAsync();
        await TimeLimit(Task.Run(async () =>
        {
            foreach ((Stream writer, Stream reader) in pair.Directions)
            {
                var ran = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                var local = new AsyncLocal<int>();
                bool schedulerFlowed = false, executionContextFlowed = false;
                Action continuation = () =>
                {
                    schedulerFlowed = TaskScheduler.Current is QueueingTaskScheduler;
                    executionContextFlowed = local.Value == 42;
                    ran.SetResult();
                };

                ValueTask<int> read = reader.ReadAsync(new byte[1]);
                read.IsCompleted.Should().BeFalse("no data was written yet");
                await Task.Factory.StartNew(() =>
                {
                    local.Value = 42;
                    try
                    {
                        Register(read, continuation, flowExecutionContext, continueOnCapturedContext);
                    }
                    finally
                    {
                        local.Value = 0;
                    }
                }, CancellationToken.None, TaskCreationOptions.None, new QueueingTaskScheduler());

                await writer.WriteAsync(new byte[] { 42 });
                await FlushIfRequiredAsync(ReadWriteMode.AsyncMemory, writer);
                await ran.Task;
                read.IsCompletedSuccessfully.Should().BeTrue();
                schedulerFlowed.Should().Be(continueOnCapturedContext != false, "the current TaskScheduler is used unless ConfigureAwait(false)");
                executionContextFlowed.Should().Be(flowExecutionContext, "OnCompleted flows the ExecutionContext, UnsafeOnCompleted does not");
            }
        }), "read continuations");
    }

    [Fact]
    public virtual async Task ReadAsync_ValueTask_ConsumedTwice_Throws()
    {
        await LeaveTestContext();
        if (!ReadWriteValueTasksProtectSingleConsumption)
        {
            return;
        }

        await using StreamPair pair = await CreatePairAsync();
        foreach ((Stream writer, Stream reader) in pair.Directions)
        {
            byte[] buffer = new byte[1];
            ValueTask<int> read = reader.ReadAsync(buffer);
            await writer.WriteAsync(new byte[] { 42 });
            await FlushIfRequiredAsync(ReadWriteMode.AsyncMemory, writer);
            (await TimeLimit(read.AsTask(), "the read")).Should().Be(1);
            buffer[0].Should().Be(42);

            // The ValueTask's source was recycled: any further use is an error.
            Func<Task> awaitAgain = async () => await read;
            await awaitAgain.Should().ThrowAsync<InvalidOperationException>();
            FluentActions.Invoking(() => read.GetAwaiter().IsCompleted).Should().Throw<InvalidOperationException>();
            FluentActions.Invoking(() => read.GetAwaiter().OnCompleted(() => { })).Should().Throw<InvalidOperationException>();
        }
    }

    private static void Register(ValueTask<int> read, Action continuation, bool flowExecutionContext, bool? continueOnCapturedContext)
    {
        switch (continueOnCapturedContext)
        {
            case null when flowExecutionContext:
                read.GetAwaiter().OnCompleted(continuation);
                break;
            case null:
                read.GetAwaiter().UnsafeOnCompleted(continuation);
                break;
            default:
                if (flowExecutionContext)
                {
                    read.ConfigureAwait(continueOnCapturedContext.Value).GetAwaiter().OnCompleted(continuation);
                }
                else
                {
                    read.ConfigureAwait(continueOnCapturedContext.Value).GetAwaiter().UnsafeOnCompleted(continuation);
                }
                break;
        }
    }

    /// <summary>A SynchronizationContext that runs posted work on the thread pool, installed while it runs.</summary>
    private sealed class PostingSynchronizationContext : SynchronizationContext
    {
        public override void Post(SendOrPostCallback d, object? state) =>
            ThreadPool.QueueUserWorkItem(_ =>
            {
                SetSynchronizationContext(this);
                try
                {
                    d(state);
                }
                finally
                {
                    SetSynchronizationContext(null);
                }
            });
    }

    /// <summary>A TaskScheduler that queues every task to the thread pool and never inlines.</summary>
    private sealed class QueueingTaskScheduler : TaskScheduler
    {
        protected override void QueueTask(Task task) => ThreadPool.QueueUserWorkItem(_ => TryExecuteTask(task));

        protected override bool TryExecuteTaskInline(Task task, bool taskWasPreviouslyQueued) => false;

        protected override IEnumerable<Task> GetScheduledTasks() => [];
    }
}
