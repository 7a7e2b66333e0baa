using System.Threading.Channels;
using MeshNet.Control.V1;

namespace MeshNet.Coordination.Bus;

/// <summary>
/// One connected map stream: a bounded queue of messages the gRPC call sends in order. The bus
/// writes with <see cref="TryWrite"/> under its lock (never blocking); a full queue, or a tailnet
/// whose streams hold their whole <see cref="QueueBudget"/>, means the client does not keep up,
/// and the bus terminates the stream instead of buffering without bound. After
/// <see cref="Terminate"/> the call ends with <see cref="Failure"/>, once what was queued is sent.
/// </summary>
internal sealed class MapStream
{
    /// <summary>What a queued message costs beyond its body (wrapper, sequence, stamps).</summary>
    public const int WrapperBytes = 32;

    private readonly Channel<(MapResponse Message, int Size)> _channel;
    private readonly CancellationTokenSource _terminated = new();
    private readonly QueueBudget _budget;
    private CoordinationException? _failure;

    public MapStream(MapSession session, int capacity, QueueBudget? budget = null)
    {
        Session = session;
        _budget = budget ?? new QueueBudget(long.MaxValue);
        _channel = Channel.CreateBounded<(MapResponse, int)>(new BoundedChannelOptions(capacity)
        {
            SingleReader = true,
            SingleWriter = false,
            FullMode = BoundedChannelFullMode.Wait,
        });
    }

    public MapSession Session { get; }

    public ulong NodeId => Session.NodeId;

    /// <summary>Waits until a message can be read (false once the stream ended and its queue is empty).</summary>
    public ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken) => _channel.Reader.WaitToReadAsync(cancellationToken);

    /// <summary>Takes the next message, releasing its bytes from the tailnet's budget.</summary>
    public bool TryRead(out MapResponse message)
    {
        if (_channel.Reader.TryRead(out var item))
        {
            _budget.Release(item.Size);
            message = item.Message;
            return true;
        }
        message = null!;
        return false;
    }

    /// <summary>The next message without taking it.</summary>
    public bool TryPeek(out MapResponse message)
    {
        bool found = _channel.Reader.TryPeek(out var item);
        message = item.Message;
        return found;
    }

    /// <summary>Canceled when the bus ends the stream (replaced, too slow, node removed or expired, shutdown).</summary>
    public CancellationToken Terminated => _terminated.Token;

    /// <summary>Why the bus ended the stream, or null.</summary>
    public CoordinationException? Failure => Volatile.Read(ref _failure);

    /// <summary>The keep-alive timer; guarded by the bus lock.</summary>
    public ITimer? KeepAliveTimer { get; set; }

    public bool IsClosed => Volatile.Read(ref _failure) is not null || _channel.Reader.Completion.IsCompleted;

    /// <summary>Queues a message of <paramref name="size"/> bytes (its body; computed here when not given): false when the queue or the tailnet's budget is full.</summary>
    public bool TryWrite(MapResponse message, int size = -1)
    {
        size = (size < 0 ? message.CalculateSize() : size) + WrapperBytes;
        if (!_budget.TryReserve(size))
        {
            return false;
        }
        if (_channel.Writer.TryWrite((message, size)))
        {
            return true;
        }
        _budget.Release(size);
        return false;
    }

    /// <summary>After the call ended: drops what is still queued and gives its bytes back to the budget.</summary>
    public void ReleaseQueued()
    {
        while (TryRead(out _))
        {
        }
    }

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
