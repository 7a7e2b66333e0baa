using System.Buffers;
using System.Runtime.InteropServices;
using System.Text;
using FluentAssertions;
using Xunit;

namespace MeshNet.TestSupport.Conformance;

// Data transfer: every API shape, every size, write/read granularity, offsets, zero-byte
// operations, CopyTo, flush.
public abstract partial class ConnectedStreamConformanceTests
{
    /// <summary>
    /// Transfer sizes: tiny, around 1 KiB, around TCP segment sizes (536 minimum MSS; 1360/1380
    /// the MSS of a 1420-byte WireGuard MTU over IPv6/IPv4; 1460 Ethernet), around common buffer
    /// sizes (4/8/16/64 KiB, 80 KiB CopyTo buffer), and several MiB.
    /// </summary>
    private static readonly int[] TransferSizes =
    [
        1, 2, 3, 7, 100, 535, 536, 537, 1023, 1024, 1025, 1359, 1360, 1361, 1379, 1380, 1381, 1459, 1460, 1461,
        4095, 4096, 4097, 8191, 8192, 8193, 16383, 16384, 16385, 65535, 65536, 65537, 81920, 81921,
        262_145, 1_048_577, 4_194_307,
    ];

    /// <summary>Byte-at-a-time shapes stop here (one call per byte).</summary>
    private const int MaxByteModeSize = 16385;

    /// <summary>Every shape with every size (ReadByte/WriteByte up to 16 KiB).</summary>
    public static TheoryData<ReadWriteMode, int> ModesAndSizes()
    {
        var data = new TheoryData<ReadWriteMode, int>();
        foreach (ReadWriteMode mode in Enum.GetValues<ReadWriteMode>())
        {
            foreach (int size in TransferSizes)
            {
                if (mode != ReadWriteMode.SyncByte || size <= MaxByteModeSize)
                {
                    data.Add(mode, size);
                }
            }
        }
        return data;
    }

    /// <summary>Every write shape with every read shape.</summary>
    public static TheoryData<ReadWriteMode, ReadWriteMode> ModePairs()
    {
        var data = new TheoryData<ReadWriteMode, ReadWriteMode>();
        foreach (ReadWriteMode write in Enum.GetValues<ReadWriteMode>())
        {
            foreach (ReadWriteMode read in Enum.GetValues<ReadWriteMode>())
            {
                data.Add(write, read);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(ModesAndSizes), MemberType = typeof(ConnectedStreamConformanceTests))]
    public virtual async Task ReadWrite_EverySize_ArrivesIntact_BothDirections(ReadWriteMode mode, int size)
    {
        await LeaveTestContext();
        await using StreamPair pair = await CreatePairAsync();
        foreach ((Stream writer, Stream reader) in pair.Directions)
        {
            byte[] data = RandomBytes(size);
            Task write = WriteAllAsync(mode, writer, data);
            Task<byte[]> read = ReadExactlyAsync(mode, reader, size);
            await AllOrFirstFailure(write, read);
            AssertSameBytes(data, await read, $"{size} bytes written and read with {mode}");
        }

        // Exactly that much arrived: after the writer closes, the reader is at end of stream.
        await TimeLimit(pair.Stream1.DisposeAsync().AsTask(), "disposing the writer");
        await AssertEofAsync(pair.Stream2, "nothing beyond the bytes written may arrive");
    }

    [Theory]
    [MemberData(nameof(ModePairs), MemberType = typeof(ConnectedStreamConformanceTests))]
    public virtual async Task ReadWrite_AnyWriteShape_ReadByAnyReadShape(ReadWriteMode writeMode, ReadWriteMode readMode)
    {
        await LeaveTestContext();
        await using StreamPair pair = await CreatePairAsync();
        byte[] data = RandomBytes(20_011);
        Task write = WriteAllAsync(writeMode, pair.Stream1, data, chunk: 3001);
        Task<byte[]> read = ReadExactlyAsync(readMode, pair.Stream2, data.Length, chunk: 1000);
        await AllOrFirstFailure(write, read);
        AssertSameBytes(data, await read, $"data written with {writeMode}, read with {readMode}");
    }

    [Theory]
    [MemberData(nameof(AllModes), MemberType = typeof(ConnectedStreamConformanceTests))]
    public virtual async Task ManySmallWrites_AreReadByLargeReads(ReadWriteMode mode)
    {
        await LeaveTestContext();
        await using StreamPair pair = await CreatePairAsync();
        byte[] data = RandomBytes(64 * 1024);
        Task write = IsSync(mode)
            ? TimeLimit(Task.Run(() =>
            {
                for (int done = 0, i = 0; done < data.Length; i++)
                {
                    int n = Math.Min(1 + (i % 31), data.Length - done);
                    WriteOnceSync(mode, pair.Stream1, data, done, n);
                    done += n;
                }
            }), "small writes")
            : TimeLimit(WriteSmallAsync(), "small writes");
        Task<byte[]> read = ReadExactlyAsync(mode, pair.Stream2, data.Length);
        await AllOrFirstFailure(write, read);
        AssertSameBytes(data, await read, $"{data.Length} bytes written 1..31 bytes at a time");

        async Task WriteSmallAsync()
        {
            for (int done = 0, i = 0; done < data.Length; i++)
            {
                int n = Math.Min(1 + (i % 31), data.Length - done);
                await StartWrite(mode, pair.Stream1, data, done, n);
                done += n;
            }
            await FlushIfRequiredAsync(mode, pair.Stream1);
        }
    }

    [Theory]
    [MemberData(nameof(AllModes), MemberType = typeof(ConnectedStreamConformanceTests))]
    public virtual async Task FewLargeWrites_AreReadBySmallReads(ReadWriteMode mode)
    {
        await LeaveTestContext();
        await using StreamPair pair = await CreatePairAsync();
        byte[] data = RandomBytes(64 * 1024);
        Task write = WriteAllAsync(mode, pair.Stream1, data, chunk: 16 * 1024);
        Task<byte[]> read = ReadExactlyAsync(mode, pair.Stream2, data.Length, chunk: 7);
        await AllOrFirstFailure(write, read);
        AssertSameBytes(data, await read, "16 KiB writes read 7 bytes at a time");
    }

    [Theory]
    [MemberData(nameof(BufferModes), MemberType = typeof(ConnectedStreamConformanceTests))]
    public virtual async Task Read_ReturnsAvailableData_WithoutWaitingForAFullBuffer(ReadWriteMode mode)
    {
        await LeaveTestContext();
        if (ReadsMayBlockUntilBufferFull)
        {
            return;
        }

        await using StreamPair pair = await CreatePairAsync();
        foreach ((Stream writer, Stream reader) in pair.Directions)
        {
            byte[] buffer = new byte[1024];
            for (int i = 0; i < 5; i++)
            {
                byte[] message = RandomBytes(512);
                await WriteAllAsync(mode, writer, message);
                int total = 0;
                while (total < message.Length)
                {
                    // Only 512 bytes exist: a read of up to 1024 must return what is there, not wait for more.
                    int n = await ReadOnceAsync(mode, reader, buffer, total, buffer.Length - total);
                    n.Should().BeInRange(1, message.Length - total, "only {0} bytes were written", message.Length);
                    total += n;
                }
                AssertSameBytes(message, buffer.AsMemory(0, total), $"message {i}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(AllModes), MemberType = typeof(ConnectedStreamConformanceTests))]
    public virtual async Task Read_FillsOnlyTheRangeAskedFor(ReadWriteMode mode)
    {
        await LeaveTestContext();
        const byte Sentinel = 0xEE;
        await using StreamPair pair = await CreatePairAsync();
        byte[] data = RandomBytes(20);
        await WriteAllAsync(ReadWriteMode.AsyncMemory, pair.Stream1, data);
        await TimeLimit(pair.Stream1.DisposeAsync().AsTask(), "disposing the writer");

        byte[] buffer = new byte[30];
        buffer.AsSpan().Fill(Sentinel);
        int n = await ReadOnceAsync(mode, pair.Stream2, buffer, 3, 4);
        n.Should().BeInRange(1, 4, "20 bytes are available and 4 were asked for");
        buffer.AsSpan(0, 3).ToArray().Should().OnlyContain(b => b == Sentinel, "bytes before the offset must not be touched");
        AssertSameBytes(data.AsMemory(0, n), buffer.AsMemory(3, n), "the bytes read");
        buffer.AsSpan(3 + n).ToArray().Should().OnlyContain(b => b == Sentinel, "bytes after offset + bytes read must not be touched");

        // The rest follows, at the offset given, then end of stream.
        int rest = await ReadUpToAsync(mode, pair.Stream2, buffer, 10, 20);
        rest.Should().Be(20 - n);
        AssertSameBytes(data.AsMemory(n), buffer.AsMemory(10, rest), "the rest of the data");
        buffer.AsSpan(10 + rest).ToArray().Should().OnlyContain(b => b == Sentinel);
    }

    [Theory]
    [MemberData(nameof(AllModes), MemberType = typeof(ConnectedStreamConformanceTests))]
    public virtual async Task Write_SendsOnlyTheRangeGiven(ReadWriteMode mode)
    {
        await LeaveTestContext();
        await using StreamPair pair = await CreatePairAsync();
        byte[] buffer = "\0\0hello\0\0"u8.ToArray();
        await WriteAllAsync(mode, pair.Stream1, buffer, 2, 5);
        await TimeLimit(pair.Stream1.DisposeAsync().AsTask(), "disposing the writer");
        Encoding.ASCII.GetString(await ReadToEndAsync(ReadWriteMode.AsyncMemory, pair.Stream2)).Should().Be("hello");
    }

    [Theory]
    [MemberData(nameof(BufferModes), MemberType = typeof(ConnectedStreamConformanceTests))]
    public virtual async Task ZeroByteWrite_SendsNothing(ReadWriteMode mode)
    {
        await LeaveTestContext();
        await using StreamPair pair = await CreatePairAsync();
        byte[] probe = new byte[1];
        Task<int> pendingRead = pair.Stream2.ReadAsync(probe, 0, 1);

        await TimeLimit(StartWrite(mode, pair.Stream1, [], 0, 0), "a zero-byte write");
        await TimeLimit(StartWrite(mode, pair.Stream1, new byte[1], 1, 0), "a zero-byte write at the end of a buffer");
        await TimeLimit(StartWrite(mode, pair.Stream1, new byte[1], 0, 0), "a zero-byte write");
        await FlushIfRequiredAsync(mode, pair.Stream1);
        await AssertPendingAsync(pendingRead, "a read after the peer's zero-byte writes (they must not look like data or end of stream)");

        byte[][] pieces = [[], "hello"u8.ToArray(), [], "world"u8.ToArray(), []];
        Task writes = TimeLimit(Task.Run(async () =>
        {
            foreach (byte[] piece in pieces)
            {
                await StartWrite(mode, pair.Stream1, piece, 0, piece.Length);
            }
            await FlushIfRequiredAsync(mode, pair.Stream1);
        }), "writing with zero-byte writes in between");
        int first = await TimeLimit(pendingRead, "the pending read");
        first.Should().Be(1);
        byte[] rest = await ReadExactlyAsync(ReadWriteMode.AsyncMemory, pair.Stream2, 9);
        await writes;
        Encoding.ASCII.GetString([probe[0], .. rest]).Should().Be("helloworld");
    }

    [Theory]
    [MemberData(nameof(BufferModes), MemberType = typeof(ConnectedStreamConformanceTests))]
    public virtual async Task ZeroByteRead_WaitsForData_AndConsumesNothing(ReadWriteMode mode)
    {
        await LeaveTestContext();
        await using StreamPair pair = await CreatePairAsync();
        foreach ((Stream writer, Stream reader) in pair.Directions)
        {
            for (int iteration = 0; iteration < 2; iteration++)
            {
                Task<int> zeroByteRead = StartRead(mode, reader, [], 0, 0);
                if (!BlocksOnZeroByteReads)
                {
                    (await TimeLimit(zeroByteRead, "a zero-byte read")).Should().Be(0);
                    continue;
                }

                if (iteration == 0)
                {
                    await AssertPendingAsync(zeroByteRead, "a zero-byte read with no data available");
                }
                await WriteAllAsync(ReadWriteMode.AsyncMemory, writer, "hello"u8.ToArray());
                (await TimeLimit(zeroByteRead, "a zero-byte read once data arrived")).Should().Be(0, "a zero-byte read returns 0");

                // Data is available now: another zero-byte read (with a non-empty array) returns at once.
                (await TimeLimit(StartRead(mode, reader, new byte[4], 2, 0), "a zero-byte read with data available")).Should().Be(0);

                // And nothing was consumed.
                byte[] hello = await ReadExactlyAsync(mode, reader, 5);
                Encoding.ASCII.GetString(hello).Should().Be("hello", "zero-byte reads consume nothing");
            }
        }
    }

    [Theory]
    [MemberData(nameof(BufferModes), MemberType = typeof(ConnectedStreamConformanceTests))]
    public virtual async Task ZeroByteRead_AtEndOfStream_ReturnsZero(ReadWriteMode mode)
    {
        await LeaveTestContext();
        await using StreamPair pair = await CreatePairAsync();
        await WriteAllAsync(ReadWriteMode.AsyncMemory, pair.Stream1, "x"u8.ToArray());
        await TimeLimit(pair.Stream1.DisposeAsync().AsTask(), "disposing the writer");

        (await ReadExactlyAsync(mode, pair.Stream2, 1)).Should().Equal((byte)'x');
        for (int i = 0; i < 3; i++)
        {
            (await ReadOnceAsync(mode, pair.Stream2, [], 0, 0)).Should().Be(0, "a zero-byte read at end of stream returns 0 at once");
            (await ReadOnceAsync(mode, pair.Stream2, new byte[8], 0, 8)).Should().Be(0, "end of stream is sticky");
        }
    }

    /// <summary>Sizes around CopyTo's 81,920-byte buffer (and one over 1 MiB) × CopyTo or CopyToAsync.</summary>
    public static TheoryData<int, bool> CopyToCases()
    {
        var data = new TheoryData<int, bool>();
        foreach (int size in new[] { 0, 1, 1024, 81920, 81921, 1_048_577 })
        {
            data.Add(size, false);
            data.Add(size, true);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(CopyToCases), MemberType = typeof(ConnectedStreamConformanceTests))]
    public virtual async Task CopyTo_CopiesEverythingUntilEndOfStream(int size, bool useAsync)
    {
        await LeaveTestContext();
        await using StreamPair pair = await CreatePairAsync();
        byte[] data = RandomBytes(size);
        var destination = new MemoryStream();
        Task copy = useAsync
            ? pair.Stream2.CopyToAsync(destination)
            : Task.Run(() => pair.Stream2.CopyTo(destination));

        Task write = Task.Run(async () =>
        {
            await WriteAllAsync(useAsync ? ReadWriteMode.AsyncMemory : ReadWriteMode.SyncSpan, pair.Stream1, data);
            await pair.Stream1.DisposeAsync();
        });
        await AllOrFirstFailure(TimeLimit(write, "writing then closing"), TimeLimit(copy, useAsync ? "CopyToAsync" : "CopyTo"));
        AssertSameBytes(data, destination.ToArray(), "the copied data");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public virtual async Task CopyTo_RelaysThroughASecondConnection(bool useAsync)
    {
        await LeaveTestContext();
        await using StreamPair first = await CreatePairAsync();
        await using StreamPair second = await CreatePairAsync();
        byte[] data = RandomBytes(1_048_577);

        // The stream is the destination here: CopyTo writes into it.
        Task relay = Task.Run(async () =>
        {
            if (useAsync)
            {
                await first.Stream2.CopyToAsync(second.Stream1);
            }
            else
            {
                first.Stream2.CopyTo(second.Stream1);
            }
            await second.Stream1.DisposeAsync();
        });
        Task write = Task.Run(async () =>
        {
            await WriteAllAsync(ReadWriteMode.AsyncMemory, first.Stream1, data, chunk: 100_000);
            await first.Stream1.DisposeAsync();
        });
        Task<byte[]> read = ReadToEndAsync(ReadWriteMode.AsyncMemory, second.Stream2);
        await AllOrFirstFailure(TimeLimit(write, "writing"), TimeLimit(relay, "relaying"), read);
        AssertSameBytes(data, await read, "data relayed by CopyTo");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public virtual async Task ReadWrite_MemoryNotBackedByAnArray(bool useAsync)
    {
        await LeaveTestContext();
        const int Size = 100_000;
        using var source = new NativeMemoryManager(Size);
        using var target = new NativeMemoryManager(Size);
        Random.Shared.NextBytes(source.GetSpan());
        target.GetSpan().Clear();

        await using (StreamPair pair = await CreatePairAsync())
        {
            Task write = useAsync
                ? pair.Stream1.WriteAsync(source.Memory).AsTask()
                : Task.Run(() => pair.Stream1.Write(source.Memory.Span));
            Task<int> read = Task.Run(async () =>
            {
                int total = 0;
                while (total < Size)
                {
                    int n = useAsync
                        ? await pair.Stream2.ReadAsync(target.Memory[total..])
                        : pair.Stream2.Read(target.Memory.Span[total..]);
                    n.Should().BeInRange(1, Size - total);
                    total += n;
                }
                return total;
            });
            await AllOrFirstFailure(TimeLimit(write, "writing native memory"), TimeLimit(read, "reading into native memory"));
        }

        AssertSameBytes(source.Memory, target.Memory, "data through native memory");
        source.PinCount.Should().Be(0, "every Pin of the written memory must be undone");
        target.PinCount.Should().Be(0, "every Pin of the read memory must be undone");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public virtual async Task Flush_IsHarmless(bool useAsync)
    {
        await LeaveTestContext();
        await using StreamPair pair = await CreatePairAsync();
        async Task FlushAsync(Stream stream) => await TimeLimit(useAsync ? stream.FlushAsync() : Task.Run(stream.Flush), "flushing");

        // Idle streams, either end.
        await FlushAsync(pair.Stream1);
        await FlushAsync(pair.Stream2);

        Task<int> pendingRead = pair.Stream2.ReadAsync(new byte[1], 0, 1);
        await AssertPendingAsync(pendingRead, "a read after the peer flushed nothing");

        ReadWriteMode mode = useAsync ? ReadWriteMode.AsyncMemory : ReadWriteMode.SyncArray;
        await WriteAllAsync(mode, pair.Stream1, "ab"u8.ToArray());
        await FlushAsync(pair.Stream1);
        await FlushAsync(pair.Stream1);
        await WriteAllAsync(mode, pair.Stream1, "cd"u8.ToArray());
        await FlushAsync(pair.Stream1);
        await FlushAsync(pair.Stream2); // flushing the reading end

        (await TimeLimit(pendingRead, "the pending read")).Should().Be(1);
        Encoding.ASCII.GetString(await ReadExactlyAsync(mode, pair.Stream2, 3)).Should().Be("bcd");
        await AssertPendingAsync(pair.Stream2.ReadAsync(new byte[1], 0, 1), "a read after all data (flushes send no data and no end of stream)");
    }

    /// <summary>Memory outside the managed heap (no array behind it), counting pins.</summary>
    private sealed unsafe class NativeMemoryManager : MemoryManager<byte>
    {
        private readonly int _length;
        private byte* _pointer;
        private int _pinCount;

        public NativeMemoryManager(int length)
        {
            _length = length;
            _pointer = (byte*)NativeMemory.Alloc((nuint)length);
        }

        public int PinCount => Volatile.Read(ref _pinCount);

        public override Span<byte> GetSpan()
        {
            ObjectDisposedException.ThrowIf(_pointer is null, this);
            return new Span<byte>(_pointer, _length);
        }

        public override MemoryHandle Pin(int elementIndex = 0)
        {
            ObjectDisposedException.ThrowIf(_pointer is null, this);
            ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)elementIndex, (uint)_length, nameof(elementIndex));
            Interlocked.Increment(ref _pinCount);
            return new MemoryHandle(_pointer + elementIndex, default, this);
        }

        public override void Unpin() => Interlocked.Decrement(ref _pinCount);

        protected override void Dispose(bool disposing)
        {
            // A stream still holding a pin could still touch the memory: leak it rather than free it.
            if (_pointer is not null && PinCount == 0)
            {
                NativeMemory.Free(_pointer);
                _pointer = null;
            }
        }
    }
}
