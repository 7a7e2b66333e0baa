using System.Buffers;
using System.Net.Sockets;

namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>
/// The application's side of a connection: reading, writing, half-close, close, abort and the
/// waits behind them. Every method takes the lock, does its work, releases the lock and then
/// flushes the segments it queued.
/// </summary>
internal sealed partial class TcpControlBlock
{
    /// <summary>Writers are woken when at least this much send-buffer space is free (or everything was sent).</summary>
    private long WriteWakeThreshold => Math.Min(_sndBufLimit / 2, 64 * 1024);

    public bool NoDelay
    {
        get
        {
            lock (Sync)
            {
                return _noDelay;
            }
        }
        set
        {
            lock (Sync)
            {
                _noDelay = value;
                if (value && !_destroyed)
                {
                    TrySendData(Now);
                    ScheduleTimers();
                }
            }
            Flush();
        }
    }

    /// <summary>Bytes the application can read now.</summary>
    public long Available
    {
        get
        {
            lock (Sync)
            {
                return _recv.Available;
            }
        }
    }

    /// <summary>The exception a stream operation reports for <paramref name="error"/> (as NetworkStream does).</summary>
    internal static IOException StreamError(SocketError error) =>
        new($"Unable to transfer data on the TCP connection: {error}.", new SocketException((int)error));

    private void ThrowIfClosed()
    {
        if (_appClosed)
        {
            throw new ObjectDisposedException(nameof(TcpConnection));
        }
    }

    // ------------------------------------------------------------------ read

    /// <summary>
    /// Copies available data. Returns the count (&gt; 0), 0 at the end of the stream (or for an
    /// empty destination once data is available), or -1 when the caller must wait.
    /// </summary>
    public int TryRead(Span<byte> destination)
    {
        int read;
        lock (Sync)
        {
            read = ReadLocked(destination);
        }
        if (read > 0)
        {
            Flush();
        }
        return read;
    }

    /// <summary>Blocking read (Stream.Read): waits on the lock's monitor until data, end of stream or an error.</summary>
    public int Read(Span<byte> destination)
    {
        int read;
        lock (Sync)
        {
            while ((read = ReadLocked(destination)) < 0)
            {
                WaitLocked();
            }
        }
        if (read > 0)
        {
            Flush();
        }
        return read;
    }

    private int ReadLocked(Span<byte> destination)
    {
        ThrowIfClosed();
        if (_recv.Available > 0)
        {
            if (destination.IsEmpty)
            {
                return 0;
            }
            int read = _recv.Read(destination);
            AfterRead();
            return read;
        }
        if (_finReceived)
        {
            return 0;
        }
        if (_error != SocketError.Success)
        {
            throw StreamError(_error);
        }
        if (_destroyed)
        {
            return 0;
        }
        return -1;
    }

    private void AfterRead()
    {
        if (_destroyed)
        {
            return;
        }
        long now = Now;
        AfterConsume(now);
        if (_ackNow)
        {
            SendAck(now);
        }
        ScheduleTimers();
    }

    private bool ReadableLocked => _recv.Available > 0 || _finReceived || _error != SocketError.Success || _destroyed || _appClosed;

    /// <summary>Completes when data, the end of the stream or an error is there to read.</summary>
    public ValueTask WaitReadableAsync(CancellationToken cancellationToken)
    {
        lock (Sync)
        {
            return ReadableLocked && !_readCanceled ? default : _readSignal.WaitAsync(cancellationToken);
        }
    }

    private void WaitLocked()
    {
        _syncWaiters++;
        try
        {
            Monitor.Wait(Sync);
        }
        finally
        {
            _syncWaiters--;
        }
    }

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

    // ------------------------------------------------------------------ write

    /// <summary>Copies what fits into the send buffer and sends what the windows allow. Returns the count (0 = full).</summary>
    public int TryWrite(ReadOnlySpan<byte> source)
    {
        int written;
        lock (Sync)
        {
            written = WriteLocked(source);
        }
        Flush();
        return written;
    }

    /// <summary>Blocking write (Stream.Write): returns once every byte is in the send buffer.</summary>
    public void Write(ReadOnlySpan<byte> source)
    {
        while (!source.IsEmpty)
        {
            int written;
            lock (Sync)
            {
                written = WriteLocked(source);
            }
            Flush();
            source = source[written..];
            if (written == 0)
            {
                lock (Sync)
                {
                    if (!WritableLocked)
                    {
                        WaitLocked();
                    }
                }
            }
        }
    }

    private void ThrowIfCannotWrite()
    {
        ThrowIfClosed();
        if (_error != SocketError.Success)
        {
            throw StreamError(_error);
        }
        if (_writeShutdown || _destroyed || State is not (TcpState.Established or TcpState.CloseWait))
        {
            throw StreamError(SocketError.Shutdown);
        }
    }

    private int WriteLocked(ReadOnlySpan<byte> source)
    {
        ThrowIfCannotWrite();
        long room = _sndBufLimit - _send.Buffered;
        if (room <= 0 || source.IsEmpty)
        {
            return 0;
        }
        int written = _send.Append(source[..(int)Math.Min(source.Length, room)]);
        long now = Now;
        if (written == 0)
        {
            _timers.Set(TcpTimer.Retry, now + 100_000); // the stack's memory budget is exhausted: retry shortly
        }
        _send.Publish();
        TrySendData(now);
        ScheduleTimers();
        return written;
    }

    private bool WritableLocked =>
        (_sndBufLimit - _send.Buffered >= WriteWakeThreshold && !_timers.IsSet(TcpTimer.Retry)) ||
        _error != SocketError.Success || _destroyed || _appClosed || _writeShutdown;

    /// <summary>Completes when the send buffer has room (or writing can no longer succeed).</summary>
    public ValueTask WaitWritableAsync(CancellationToken cancellationToken)
    {
        lock (Sync)
        {
            return WritableLocked ? default : _writeSignal.WaitAsync(cancellationToken);
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

    // ------------------------------------------------------------------ connect

    /// <summary>Completes when the handshake is done; throws <see cref="SocketException"/> when it failed.</summary>
    public async ValueTask WaitConnectedAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            ValueTask wait;
            lock (Sync)
            {
                if (_everEstablished)
                {
                    return;
                }
                if (_destroyed)
                {
                    throw new SocketException((int)(_error == SocketError.Success ? SocketError.ConnectionRefused : _error));
                }
                wait = _connectSignal.WaitAsync(cancellationToken);
            }
            await wait.ConfigureAwait(false);
        }
    }

    // ------------------------------------------------------------------ shutdown, close, abort

    /// <summary>Half-close: our FIN follows the buffered data; reading continues.</summary>
    public void ShutdownWrite()
    {
        lock (Sync)
        {
            ThrowIfClosed();
            if (_writeShutdown)
            {
                return;
            }
            if (_error != SocketError.Success)
            {
                throw StreamError(_error);
            }
            _writeShutdown = true;
            if (!_destroyed)
            {
                _send.Publish();
                QueueFin(Now);
                ScheduleTimers();
            }
            WakeWriter();
        }
        Flush();
    }

    private void QueueFin(long now)
    {
        if (_finQueued)
        {
            return;
        }
        _finQueued = true;
        _finOffset = _send.Tail;
        switch (State)
        {
            case TcpState.Established:
                SetState(TcpState.FinWait1);
                break;
            case TcpState.CloseWait:
                SetState(TcpState.LastAck);
                break;
        }
        TrySendData(now);
    }

    /// <summary>
    /// The application is done with the connection (Dispose): graceful close (FIN after the
    /// buffered data; the connection finishes in the background) when all received data was
    /// read, RST otherwise (RFC 2525 §2.17). Pending operations fail with ObjectDisposedException.
    /// </summary>
    public void Close()
    {
        lock (Sync)
        {
            if (_appClosed)
            {
                return;
            }
            _appClosed = true;
            var disposed = new ObjectDisposedException(nameof(TcpConnection));
            _readSignal.Fail(disposed);
            _writeSignal.Fail(disposed);
            _connectSignal.Fail(disposed);
            if (_syncWaiters > 0)
            {
                Monitor.PulseAll(Sync);
            }
            if (_destroyed)
            {
                _recv.Clear(abandon: _pipeReadOutstanding);
                return;
            }
            long now = Now;
            if (State == TcpState.TimeWait)
            {
                _recv.Clear(abandon: _pipeReadOutstanding);
            }
            else if (_recv.Available > 0 || State is TcpState.SynSent or TcpState.SynReceived)
            {
                if (State != TcpState.SynSent)
                {
                    SendReset(_sndNxt, withAck: true);
                }
                Destroy(SocketError.Success);
            }
            else
            {
                _recv.Clear(abandon: _pipeReadOutstanding);
                if (!_writeShutdown)
                {
                    _writeShutdown = true;
                    _send.Publish();
                    QueueFin(now);
                }
                if (State == TcpState.FinWait2)
                {
                    _timers.Set(TcpTimer.Linger, now + (long)_options.FinWait2Timeout.TotalMicroseconds);
                }
                ScheduleTimers();
            }
        }
        Flush();
    }

    /// <summary>Resets the connection (RST), discarding unsent and unread data. Later operations fail with OperationAborted.</summary>
    public void Abort()
    {
        lock (Sync)
        {
            if (_destroyed)
            {
                return;
            }
            if (State is not (TcpState.SynSent or TcpState.TimeWait))
            {
                SendReset(_sndNxt, withAck: State != TcpState.SynSent);
            }
            _recv.Clear(abandon: _pipeReadOutstanding);
            Destroy(SocketError.OperationAborted);
        }
        Flush();
    }

    /// <summary>The stack is shutting down: the connection ends without further packets.</summary>
    public void Shutdown()
    {
        lock (Sync)
        {
            _out.Clear(_layer.Buffers);
            Destroy(SocketError.OperationAborted);
            _out.Clear(_layer.Buffers);
        }
    }

    // ------------------------------------------------------------------ inspection (tests, diagnostics)

    /// <summary>Loss-recovery statistics.</summary>
    internal TcpStatistics Statistics
    {
        get
        {
            lock (Sync)
            {
                return _stats;
            }
        }
    }

    /// <summary>A consistent snapshot of the connection's internals.</summary>
    internal TcpControlBlockSnapshot Snapshot()
    {
        lock (Sync)
        {
            return new TcpControlBlockSnapshot(State, _sndUna, _sndNxt, _sndWnd, _rcvNxt, (long)(uint)(_rcvAdvEdge - _rcvNxt), _mss,
                _cc?.Cwnd ?? 0, _cc?.SsThresh ?? 0, Pipe, _caState, _rtt.Srtt, _rtt.Rto, _rtt.Backoff, _rcvBufSize,
                _send.Buffered, _recv.Available, _send.ReservedBytes + _recv.ReservedBytes, _rtx.Count, _timers.RetransmitKind,
                _sndWndScale, _rcvWndScale, _sackEnabled, _tsEnabled, _rack.ReoWndMult, _rack.ReorderingSeen);
        }
    }
}

/// <summary>A snapshot of a connection's internals (tests and diagnostics).</summary>
internal readonly record struct TcpControlBlockSnapshot(
    TcpState State, uint SndUna, uint SndNxt, long SndWnd, uint RcvNxt, long RcvWnd, int Mss, long Cwnd, long SsThresh, long Pipe,
    CongestionState CongestionState, long Srtt, long Rto, int Backoff, long ReceiveBuffer, long SendBuffered, long ReceiveAvailable,
    long BufferBytes, int InFlightSegments, RetransmitKind RetransmitTimer, int SendScale, int ReceiveScale, bool Sack, bool Timestamps,
    int ReoWndMult, bool ReorderingSeen);

/// <summary>Loss-recovery events of one connection (diagnostics and tests).</summary>
internal struct TcpStatistics
{
    public int Timeouts;
    public int FastRecoveries;
    public int TailLossProbes;
    public int Undos;
    public int TimeoutRetransmits;
    public int FastRetransmits;

    public override readonly string ToString() =>
        $"timeouts={Timeouts} (retransmits {TimeoutRetransmits}) recoveries={FastRecoveries} (retransmits {FastRetransmits}) tlp={TailLossProbes} undos={Undos}";
}
