using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;

namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>
/// <see cref="TcpConnection.Input"/>: a <see cref="PipeReader"/> over the connection's receive
/// buffer. The buffers it returns are the receive pages themselves (no copy); AdvanceTo frees
/// what was consumed and opens the window. One reader at a time, as for any PipeReader.
/// </summary>
internal sealed class TcpPipeReader(TcpControlBlock cb) : PipeReader
{
    private long _waitBeyond;
    private long _start;
    private long _end;
    private bool _outstanding;
    private bool _completed;

    public override bool TryRead(out ReadResult result)
    {
        ThrowIfInvalid();
        var (read, end) = cb.PipeOffsets();
        if (end > read)
        {
            result = Build();
            return true;
        }
        result = Build();
        if (result.IsCompleted || result.IsCanceled)
        {
            return true;
        }
        _outstanding = false;
        result = default;
        return false;
    }

    public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<ReadResult>(cancellationToken);
        }
        ThrowIfInvalid();
        var wait = cb.WaitForMoreAsync(_waitBeyond, cancellationToken);
        if (wait.IsCompletedSuccessfully)
        {
            return new ValueTask<ReadResult>(Build());
        }
        return ReadSlowAsync(wait, cancellationToken);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<ReadResult> ReadSlowAsync(ValueTask wait, CancellationToken cancellationToken)
    {
        await wait.ConfigureAwait(false);
        while (true)
        {
            var more = cb.WaitForMoreAsync(_waitBeyond, cancellationToken);
            if (more.IsCompletedSuccessfully)
            {
                return Build();
            }
            await more.ConfigureAwait(false);
        }
    }

    private ReadResult Build()
    {
        var buffer = cb.PipePeek(out long start, out bool completed, out bool canceled);
        _start = start;
        _end = start + buffer.Length;
        _outstanding = true;
        return new ReadResult(buffer, canceled, completed);
    }

    private long Offset(SequencePosition position) =>
        position.GetObject() is BufferPage page ? page.Start + position.GetInteger() : _start;

    public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
    {
        if (!_outstanding)
        {
            throw new InvalidOperationException("AdvanceTo must follow a read.");
        }
        _outstanding = false;
        long consumedOffset = Offset(consumed);
        long examinedOffset = Math.Max(Offset(examined), consumedOffset);
        if (consumedOffset < _start || examinedOffset > _end)
        {
            throw new ArgumentOutOfRangeException(nameof(consumed), "The position is outside the buffer of the last read.");
        }
        // Everything examined: the next read waits for more data. Otherwise it returns what is left at once.
        _waitBeyond = examinedOffset >= _end ? _end : consumedOffset;
        cb.PipeConsume(consumedOffset);
    }

    public override void CancelPendingRead() => cb.PipeCancelRead();

    public override void Complete(Exception? exception = null)
    {
        if (_completed)
        {
            return;
        }
        _completed = true;
        if (_outstanding)
        {
            _outstanding = false;
            cb.PipeConsume(_start);
        }
    }

    private void ThrowIfInvalid()
    {
        if (_completed)
        {
            throw new InvalidOperationException("The reader was completed.");
        }
        if (_outstanding)
        {
            throw new InvalidOperationException("The previous read's buffer must be advanced before reading again.");
        }
    }
}
