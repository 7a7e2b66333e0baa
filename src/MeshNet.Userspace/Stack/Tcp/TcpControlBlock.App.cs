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
}
