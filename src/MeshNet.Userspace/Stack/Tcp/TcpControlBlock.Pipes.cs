using System.Buffers;
using System.Net.Sockets;

namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>
/// What <see cref="TcpPipeReader"/> and <see cref="TcpPipeWriter"/> need: the receive
/// buffer's pages as a sequence and the send buffer's current page, with the same locking and
/// wake-ups as the Stream path.
/// </summary>
internal sealed partial class TcpControlBlock
{
    // ------------------------------------------------------------------ pipe reader support

    private bool _readCanceled;

    /// <summary>
    /// For the pipe reader: the unread data as a sequence over the receive pages (valid until
    /// <see cref="PipeConsume"/>), and whether the stream has ended. Throws for errors.
    /// </summary>
    public ReadOnlySequence<byte> PipePeek(out long start, out bool completed, out bool canceled)
    {
        lock (Sync)
        {
            ThrowIfClosed();
            start = _recv.ReadOffset;
            canceled = _readCanceled;
            _readCanceled = false;
            if (_recv.Available == 0 && !_finReceived && _error != SocketError.Success)
            {
                throw StreamError(_error);
            }
            completed = _finReceived || _destroyed;
            var sequence = _recv.GetSequence();
            _pipeReadOutstanding = !sequence.IsEmpty;
            return sequence;
        }
    }

    /// <summary>Stream offset of the first unread byte and of the end of in-order data.</summary>
    public (long Read, long End) PipeOffsets()
    {
        lock (Sync)
        {
            return (_recv.ReadOffset, _recv.End);
        }
    }

    /// <summary>For the pipe reader: the application consumed up to stream offset <paramref name="offset"/>.</summary>
    public void PipeConsume(long offset)
    {
        lock (Sync)
        {
            _pipeReadOutstanding = false;
            if (_appClosed || offset <= _recv.ReadOffset)
            {
                return;
            }
            _recv.Consume(Math.Min(offset, _recv.End));
            AfterRead();
        }
        Flush();
    }

    /// <summary>Wakes a pending pipe read with IsCanceled.</summary>
    public void PipeCancelRead()
    {
        lock (Sync)
        {
            _readCanceled = true;
            WakeReader();
        }
    }

    /// <summary>Pipe read wait: completes when there is data beyond <paramref name="examinedEnd"/>, the end, an error or a cancel.</summary>
    public ValueTask WaitForMoreAsync(long examinedEnd, CancellationToken cancellationToken)
    {
        lock (Sync)
        {
            bool ready = _recv.End > examinedEnd || _finReceived || _error != SocketError.Success || _destroyed || _appClosed || _readCanceled;
            return ready ? default : _readSignal.WaitAsync(cancellationToken);
        }
    }

    // ------------------------------------------------------------------ pipe writer support

    /// <summary>Memory in the send buffer's current page for the pipe writer (empty when it cannot serve <paramref name="sizeHint"/>).</summary>
    public Memory<byte> PipeGetMemory(int sizeHint)
    {
        lock (Sync)
        {
            ThrowIfCannotWrite();
            return _send.GetWriterMemory(sizeHint);
        }
    }

    /// <summary>The pipe writer wrote <paramref name="count"/> bytes into <see cref="PipeGetMemory"/>'s memory.</summary>
    public void PipeAdvance(int count)
    {
        lock (Sync)
        {
            _send.AdvanceWriter(count);
        }
    }

    /// <summary>Copies bytes the pipe writer staged elsewhere into the send buffer (unflushed).</summary>
    public void PipeAppend(ReadOnlySpan<byte> data)
    {
        lock (Sync)
        {
            ThrowIfCannotWrite();
            if (_send.Append(data) != data.Length)
            {
                throw new IOException("The TCP/IP stack's memory budget is exhausted.", new SocketException((int)SocketError.NoBufferSpaceAvailable));
            }
        }
    }

    /// <summary>Bytes written through the pipe writer and not flushed yet.</summary>
    public long PipeUnflushed
    {
        get
        {
            lock (Sync)
            {
                return _send.WriterEnd - _send.Tail;
            }
        }
    }

    /// <summary>Makes the pipe writer's bytes sendable and sends; returns true when the buffer is over its limit (the flush must wait).</summary>
    public bool PipeFlush()
    {
        bool full;
        lock (Sync)
        {
            ThrowIfCannotWrite();
            _send.Publish();
            TrySendData(Now);
            ScheduleTimers();
            full = _send.Buffered >= _sndBufLimit;
        }
        Flush();
        return full;
    }

    /// <summary>Completes when the send buffer is below its limit again, or writing can no longer succeed.</summary>
    public ValueTask WaitBelowLimitAsync(CancellationToken cancellationToken)
    {
        lock (Sync)
        {
            bool ready = _send.Buffered < _sndBufLimit || _error != SocketError.Success || _destroyed || _appClosed;
            return ready ? default : _writeSignal.WaitAsync(cancellationToken);
        }
    }

    /// <summary>Wakes a pending pipe flush (CancelPendingFlush).</summary>
    public void PipeCancelFlush()
    {
        lock (Sync)
        {
            WakeWriter();
        }
    }
}
