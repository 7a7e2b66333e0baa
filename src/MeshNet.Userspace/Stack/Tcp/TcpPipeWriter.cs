using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;

namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>
/// <see cref="TcpConnection.Output"/>: a <see cref="PipeWriter"/> over the connection's send
/// buffer. GetMemory hands out the send buffer's current page when it can serve the size hint
/// (zero copy), otherwise a pooled scratch array copied in on Advance. FlushAsync makes the
/// data sendable and waits while the send buffer is over <see cref="TcpStackOptions.MaxSendBuffer"/>.
/// Complete() half-closes the connection (FIN after the data); Complete(exception) resets it.
/// </summary>
internal sealed class TcpPipeWriter(TcpControlBlock cb) : PipeWriter
{
    private byte[]? _scratch;
    private bool _usingScratch;
    private volatile bool _flushCanceled;
    private bool _completed;

    public override bool CanGetUnflushedBytes => true;

    public override long UnflushedBytes => cb.PipeUnflushed;

    public override Memory<byte> GetMemory(int sizeHint = 0)
    {
        ThrowIfCompleted();
        ArgumentOutOfRangeException.ThrowIfNegative(sizeHint);
        var memory = cb.PipeGetMemory(sizeHint);
        if (!memory.IsEmpty)
        {
            _usingScratch = false;
            return memory;
        }
        int size = Math.Max(sizeHint, 4096);
        if (_scratch is null || _scratch.Length < size)
        {
            if (_scratch is not null)
            {
                ArrayPool<byte>.Shared.Return(_scratch);
            }
            _scratch = ArrayPool<byte>.Shared.Rent(size);
        }
        _usingScratch = true;
        return _scratch;
    }

    public override Span<byte> GetSpan(int sizeHint = 0) => GetMemory(sizeHint).Span;

    public override void Advance(int bytes)
    {
        ThrowIfCompleted();
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (_usingScratch)
        {
            _usingScratch = false;
            cb.PipeAppend(_scratch.AsSpan(0, bytes));
        }
        else
        {
            cb.PipeAdvance(bytes);
        }
    }

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<FlushResult>(cancellationToken);
        }
        ThrowIfCompleted();
        if (!cb.PipeFlush())
        {
            return new ValueTask<FlushResult>(new FlushResult(TakeCanceled(), false));
        }
        return WaitAsync(cancellationToken);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<FlushResult> WaitAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            await cb.WaitBelowLimitAsync(cancellationToken).ConfigureAwait(false);
            if (_flushCanceled)
            {
                return new FlushResult(TakeCanceled(), false);
            }
            if (!cb.PipeFlush())
            {
                return new FlushResult(TakeCanceled(), false);
            }
        }
    }

    private bool TakeCanceled()
    {
        bool canceled = _flushCanceled;
        _flushCanceled = false;
        return canceled;
    }

    public override void CancelPendingFlush()
    {
        _flushCanceled = true;
        cb.PipeCancelFlush();
    }

    public override void Complete(Exception? exception = null)
    {
        if (_completed)
        {
            return;
        }
        _completed = true;
        if (_scratch is not null)
        {
            ArrayPool<byte>.Shared.Return(_scratch);
            _scratch = null;
        }
        if (exception is not null)
        {
            cb.Abort();
            return;
        }
        try
        {
            cb.PipeAdvance(0);
            cb.ShutdownWrite();
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            // The connection already failed or was disposed: nothing left to half-close.
        }
    }

    private void ThrowIfCompleted()
    {
        if (_completed)
        {
            throw new InvalidOperationException("The writer was completed.");
        }
    }
}
