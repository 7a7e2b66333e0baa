using System.Threading.Channels;
using MeshNet.Control.V1;

namespace MeshNet.Coordination.Bus;

/// <summary>
/// One connected map stream: a bounded queue of messages the gRPC call sends in order. The bus
/// writes with <see cref="TryWrite"/> under its lock (never blocking); a full queue means the
/// client does not keep up, and the bus terminates the stream instead of buffering without
/// bound. After <see cref="Terminate"/> the call ends with <see cref="Failure"/>.
/// </summary>
internal sealed class MapStream
{
    private readonly Channel<MapResponse> _channel;
    private readonly CancellationTokenSource _terminated = new();
    private CoordinationException? _failure;

    public MapStream(MapSession session, int capacity)
    {
        Session = session;
        _channel = Channel.CreateBounded<MapResponse>(new BoundedChannelOptions(capacity)
        {
            SingleReader = true,
            SingleWriter = false,
            FullMode = BoundedChannelFullMode.Wait,
        });
    }

    public MapSession Session { get; }

    public ulong NodeId => Session.NodeId;

    /// <summary>The messages to send, in sequence order.</summary>
    public ChannelReader<MapResponse> Reader => _channel.Reader;

    /// <summary>Canceled when the bus ends the stream (replaced, too slow, node removed or expired, shutdown).</summary>
    public CancellationToken Terminated => _terminated.Token;

    /// <summary>Why the bus ended the stream, or null.</summary>
    public CoordinationException? Failure => Volatile.Read(ref _failure);

    /// <summary>The keep-alive timer; guarded by the bus lock.</summary>
    public ITimer? KeepAliveTimer { get; set; }

    public bool IsClosed => Volatile.Read(ref _failure) is not null || _channel.Reader.Completion.IsCompleted;

    public bool TryWrite(MapResponse message) => _channel.Writer.TryWrite(message);

    /// <summary>Ends the stream with <paramref name="failure"/>. Idempotent (the first reason wins).</summary>
    public void Terminate(CoordinationException failure)
    {
        if (Interlocked.CompareExchange(ref _failure, failure, null) is not null)
        {
            return;
        }
        Close();
        // Callbacks run on the thread pool, never inline under the bus lock.
        _ = _terminated.CancelAsync();
    }

    /// <summary>Stops the queue and the keep-alive timer (the call has ended or is ending).</summary>
    public void Close()
    {
        _channel.Writer.TryComplete();
        KeepAliveTimer?.Dispose();
        KeepAliveTimer = null;
    }
}
