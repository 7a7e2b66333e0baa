using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;

namespace MeshNet.Interop.Tests.Tcp;

/// <summary>What one side of a transfer moved: byte count, SHA-256 and time taken.</summary>
internal sealed record TransferResult(long Bytes, string Sha256, TimeSpan Elapsed)
{
    /// <summary>Throughput in Mbit/s.</summary>
    public double Mbps => Elapsed > TimeSpan.Zero ? Bytes * 8 / Elapsed.TotalSeconds / 1e6 : 0;

    public override string ToString() => $"{Bytes} bytes in {Elapsed.TotalSeconds:0.00} s ({Mbps:0} Mbit/s), sha256 {Sha256[..16]}…";
}

/// <summary>Progress of a running transfer, readable from another thread.</summary>
internal sealed class TransferProgress
{
    private long _bytes;

    public long Bytes => Interlocked.Read(ref _bytes);

    internal void Add(int count) => Interlocked.Add(ref _bytes, count);
}

/// <summary>
/// Stops and resumes a reader between reads (to let the receive window fill up and close).
/// Open initially.
/// </summary>
internal sealed class ReadGate
{
    private readonly Lock _lock = new();
    private TaskCompletionSource? _closed; // guarded by _lock; null while open

    public bool IsPaused
    {
        get
        {
            lock (_lock)
            {
                return _closed is not null;
            }
        }
    }

    public void Pause()
    {
        lock (_lock)
        {
            _closed ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
    }

    public void Resume()
    {
        TaskCompletionSource? closed;
        lock (_lock)
        {
            closed = _closed;
            _closed = null;
        }
        closed?.TrySetResult();
    }

    internal Task WaitAsync(CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return _closed is null ? Task.CompletedTask : _closed.Task.WaitAsync(cancellationToken);
        }
    }
}

/// <summary>
/// Bulk transfers over any <see cref="Stream"/> (a Linux socket's <see cref="System.Net.Sockets.NetworkStream"/>
/// or a MeshNet <c>TcpConnection</c>), verified by SHA-256: the sender generates deterministic
/// pseudo-random bytes from a seed and hashes what it writes; the receiver hashes what it reads
/// until end of stream. One pooled buffer per transfer; no allocation per chunk.
/// </summary>
internal static class StreamTransfer
{
    /// <summary>The chunk size for writes and reads: large, to keep per-call overhead low.</summary>
    public const int ChunkSize = 256 * 1024;

    /// <summary>
    /// Writes <paramref name="bytes"/> pattern bytes (a function of <paramref name="seed"/> and the
    /// offset only) to <paramref name="stream"/>, then calls <paramref name="finish"/> (e.g. a
    /// half-close) if given.
    /// </summary>
    public static async Task<TransferResult> SendAsync(Stream stream, long bytes, ulong seed, Func<ValueTask>? finish = null,
        TransferProgress? progress = null, CancellationToken cancellationToken = default, int chunkSize = ChunkSize)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ValidateChunk(chunkSize);
        var buffer = ArrayPool<byte>.Shared.Rent(chunkSize);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var stopwatch = Stopwatch.StartNew();
        try
        {
            long sent = 0;
            while (sent < bytes)
            {
                int count = (int)Math.Min(chunkSize, bytes - sent);
                Fill(buffer.AsSpan(0, count), seed, sent);
                hash.AppendData(buffer, 0, count);
                await stream.WriteAsync(buffer.AsMemory(0, count), cancellationToken).ConfigureAwait(false);
                sent += count;
                progress?.Add(count);
            }
            await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
            if (finish is not null)
            {
                await finish().ConfigureAwait(false);
            }
            return new TransferResult(sent, Convert.ToHexString(hash.GetHashAndReset()), stopwatch.Elapsed);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Reads <paramref name="stream"/> to its end, hashing; waits at <paramref name="gate"/> before each read.</summary>
    public static async Task<TransferResult> ReceiveAsync(Stream stream, ReadGate? gate = null, TransferProgress? progress = null,
        CancellationToken cancellationToken = default, int chunkSize = ChunkSize)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ValidateChunk(chunkSize);
        var buffer = ArrayPool<byte>.Shared.Rent(chunkSize);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var stopwatch = Stopwatch.StartNew();
        try
        {
            long received = 0;
            while (true)
            {
                if (gate is not null)
                {
                    await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
                }
                int count = await stream.ReadAsync(buffer.AsMemory(0, chunkSize), cancellationToken).ConfigureAwait(false);
                if (count == 0)
                {
                    return new TransferResult(received, Convert.ToHexString(hash.GetHashAndReset()), stopwatch.Elapsed);
                }
                hash.AppendData(buffer, 0, count);
                received += count;
                progress?.Add(count);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Sends <paramref name="bytes"/> (then <paramref name="finish"/>, normally a half-close) while
    /// receiving to end of stream, on one connection: both directions at once.
    /// </summary>
    public static async Task<(TransferResult Sent, TransferResult Received)> ExchangeAsync(Stream stream, long bytes, ulong seed,
        Func<ValueTask> finish, CancellationToken cancellationToken = default, int chunkSize = ChunkSize)
    {
        var receive = Task.Run(() => ReceiveAsync(stream, cancellationToken: cancellationToken, chunkSize: chunkSize), cancellationToken);
        var send = Task.Run(() => SendAsync(stream, bytes, seed, finish, cancellationToken: cancellationToken, chunkSize: chunkSize), cancellationToken);
        await Task.WhenAll(receive, send).ConfigureAwait(false);
        return (await send.ConfigureAwait(false), await receive.ConfigureAwait(false));
    }

    /// <summary>The SHA-256 (hex) of the first <paramref name="bytes"/> pattern bytes of <paramref name="seed"/>, computed locally.</summary>
    public static string ExpectedSha256(long bytes, ulong seed)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(ChunkSize);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        try
        {
            for (long offset = 0; offset < bytes; offset += ChunkSize)
            {
                int count = (int)Math.Min(ChunkSize, bytes - offset);
                Fill(buffer.AsSpan(0, count), seed, offset);
                hash.AppendData(buffer, 0, count);
            }
            return Convert.ToHexString(hash.GetHashAndReset());
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static void ValidateChunk(int chunkSize)
    {
        if (chunkSize <= 0 || chunkSize % 8 != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(chunkSize), chunkSize, "The chunk size must be a positive multiple of 8.");
        }
    }

    /// <summary>
    /// Fills <paramref name="destination"/> with the pattern bytes at <paramref name="offset"/>
    /// (a multiple of 8): word i of the stream is SplitMix64(seed + i), little-endian.
    /// </summary>
    public static void Fill(Span<byte> destination, ulong seed, long offset)
    {
        if (offset % 8 != 0)
        {
            throw new ArgumentException("The offset must be a multiple of 8.", nameof(offset));
        }
        ulong word = (ulong)offset / 8;
        int i = 0;
        for (; i + 8 <= destination.Length; i += 8, word++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(destination[i..], SplitMix64(seed + word));
        }
        if (i < destination.Length)
        {
            Span<byte> last = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(last, SplitMix64(seed + word));
            last[..(destination.Length - i)].CopyTo(destination[i..]);
        }
    }

    private static ulong SplitMix64(ulong x)
    {
        x += 0x9E3779B97F4A7C15;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EB;
        return x ^ (x >> 31);
    }
}
