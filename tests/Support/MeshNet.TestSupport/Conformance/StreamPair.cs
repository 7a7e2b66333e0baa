namespace MeshNet.TestSupport.Conformance;

/// <summary>
/// Two streams connected to each other: what is written to one is read from the other, in both
/// directions. Disposing the pair disposes both streams (concurrently, so a stream whose
/// dispose waits for its peer cannot deadlock) and then whatever else the pair owns
/// (listeners, stacks, links...).
/// </summary>
public sealed class StreamPair : IAsyncDisposable
{
    /// <summary>How long disposing the pair may take before the test fails.</summary>
    public static readonly TimeSpan DisposeTimeout = TimeSpan.FromSeconds(10);

    private readonly Func<ValueTask>? _disposeOwned;
    private int _disposed;

    /// <param name="stream1">One end.</param>
    /// <param name="stream2">The other end.</param>
    /// <param name="disposeOwned">Disposes what the pair owns besides the streams, after them.</param>
    public StreamPair(Stream stream1, Stream stream2, Func<ValueTask>? disposeOwned = null)
    {
        ArgumentNullException.ThrowIfNull(stream1);
        ArgumentNullException.ThrowIfNull(stream2);
        Stream1 = stream1;
        Stream2 = stream2;
        _disposeOwned = disposeOwned;
    }

    /// <summary>The first end (for socket-based pairs, the connecting side).</summary>
    public Stream Stream1 { get; }

    /// <summary>The second end (for socket-based pairs, the accepting side).</summary>
    public Stream Stream2 { get; }

    /// <summary>Both ends.</summary>
    public IReadOnlyList<Stream> Streams => [Stream1, Stream2];

    /// <summary>Both directions: (writer, reader) = (Stream1, Stream2) then (Stream2, Stream1).</summary>
    public IReadOnlyList<(Stream Writer, Stream Reader)> Directions => [(Stream1, Stream2), (Stream2, Stream1)];

    /// <summary>Disposes both streams, then what the pair owns; fails if that takes longer than <see cref="DisposeTimeout"/>.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        Task streams = Task.WhenAll(
            Task.Run(async () => await Stream1.DisposeAsync()),
            Task.Run(async () => await Stream2.DisposeAsync()));
        await streams.WaitAsync(DisposeTimeout);
        if (_disposeOwned is not null)
        {
            await _disposeOwned().AsTask().WaitAsync(DisposeTimeout);
        }
    }
}
