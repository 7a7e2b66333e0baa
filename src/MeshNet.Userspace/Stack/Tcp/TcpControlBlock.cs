using System.Buffers;
using System.Net.Sockets;
using MeshNet.Userspace.Stack.Ip;

namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>Congestion state of the sender (as Linux names them).</summary>
internal enum CongestionState : byte
{
    /// <summary>No loss suspected.</summary>
    Open,

    /// <summary>Fast recovery (RFC 6675 with PRR, or NewReno RFC 6582 without SACK).</summary>
    Recovery,

    /// <summary>After a retransmission timeout: everything outstanding is deemed lost and resent in slow start.</summary>
    Loss,
}

/// <summary>
/// One TCP connection's transmission control block (RFC 9293 §3.3.1): the state machine,
/// sequence variables, buffers, loss recovery, congestion control and timers.
/// </summary>
/// <remarks>
/// <para>
/// Locking: <see cref="Sync"/> guards every mutable field of this class and everything it owns
/// (send and receive buffers, scoreboard, congestion control, timer deadlines, the queue of
/// outgoing packets, the application signals). Inbound segments (link thread), application
/// calls (any thread) and timer callbacks (the TimeProvider's threads) all take it. It is never
/// held while awaiting, while calling the IP output, or while running application
/// continuations; the only locks taken while holding it are the listener's (to queue an
/// established connection) and the AsyncSignal registrations' internals.
/// </para>
/// <para>
/// Output: segments are built under the lock into <see cref="PacketQueue"/> and handed to
/// <see cref="IIpOutput.Send"/> by <see cref="Flush"/> after the lock is released. One thread at
/// a time flushes (the <c>_flushing</c> flag); others just enqueue, so segment order is kept
/// and a link that calls back into the stack synchronously cannot deadlock it.
/// </para>
/// </remarks>
internal sealed partial class TcpControlBlock : IThreadPoolWorkItem
{
    /// <summary>Segments of new data built per lock hold before the lock is released to send them.</summary>
    private const int OutputBatchSegments = 32;

    /// <summary>Packets one <see cref="Flush"/> call sends before handing the rest to the thread pool.</summary>
    private const int MaxPacketsPerFlush = 4 * OutputBatchSegments;

    /// <summary>SYN-ACK retransmissions before a half-open connection is dropped (Linux tcp_synack_retries).</summary>
    private const int MaxSynAckRetries = 5;

    /// <summary>TS.Recent older than this is invalid for PAWS (RFC 7323 §5.5: 24 days).</summary>
    private const long PawsIdleLimit = 24L * 24 * 3600 * 1_000_000;

    /// <summary>Minimum interval between rate-limited responses (challenge ACKs, out-of-window ACKs): Linux tcp_invalid_ratelimit.</summary>
    internal const long ChallengeAckInterval = 500_000;

    private readonly TcpLayer _layer;
    private readonly StackContext _ctx;
    private readonly TcpStackOptions _options;
    private readonly TcpTimerSet _timers;
    private PacketQueue _out = new();
    private PacketQueue _spare = new(); // the flushing thread's batch (see Flush)
    private int _flushThread;
    private bool _foreignOutput;
    private readonly SendBuffer _send;
    private readonly ReceiveBuffer _recv;
    private readonly RetransmitQueue _rtx = new();
    private readonly AsyncSignal _readSignal;
    private readonly AsyncSignal _writeSignal;
    private readonly AsyncSignal _connectSignal;

    // ---- send sequence space (RFC 9293 §3.3.1) ----
    private uint _iss;
    private uint _sndUna;
    private uint _sndNxt;
    private uint _sndWl1;
    private uint _sndWl2;
    private long _sndWnd;
    private long _maxSndWnd;

    // ---- receive sequence space ----
    private uint _irs;
    private uint _rcvNxt;
    private uint _rcvAdvEdge;
    private uint _lastAckSent;
    private long _rcvBufSize;

    // ---- negotiated options ----
    private int _sndWndScale;
    private int _rcvWndScale;
    private bool _wsEnabled;
    private bool _tsEnabled;
    private bool _sackEnabled;
    private uint _tsRecent;
    private long _tsRecentTime;
    private bool _tsRecentValid;
    private readonly uint _tsOffset;
    private int _advMss;
    private int _peerMss;
    private int _mss;
    private int _rcvMss;

    // ---- FIN ----
    private bool _finQueued;
    private bool _finSent;
    private bool _finAcked;
    private bool _finReceived;
    private long _finOffset;
    private long _oooFinOffset = -1;

    // ---- connection lifecycle ----
    private long _synSentTime;
    private int _synRetries;
    private bool _synRetransmitted;
    private long _lastReceiveTime;
    private long _lastChallengeTime = long.MinValue / 2;
    private bool _flushing;
    private bool _sendMoreRequested;
    private bool _destroyed;

    // ---- application side ----
    private bool _appClosed;
    private bool _writeShutdown;
    private SocketError _error;
    private bool _pipeReadOutstanding;
    private int _syncWaiters;
    private bool _noDelay;

    public TcpControlBlock(TcpLayer layer, TcpFlowKey key, bool passive, TcpListener? listener)
    {
        _layer = layer;
        _ctx = layer.Context;
        _options = _ctx.Tcp;
        Key = key;
        IsPassive = passive;
        Listener = listener;
        _timers = new TcpTimerSet(_ctx.Time, static state => ((TcpControlBlock)state!).OnTimerFired(), this);
        _send = new SendBuffer(layer.Pages, _ctx.Budget);
        _recv = new ReceiveBuffer(layer.Pages, _ctx.Budget);
        _readSignal = new AsyncSignal(Sync);
        _writeSignal = new AsyncSignal(Sync);
        _connectSignal = new AsyncSignal(Sync);
        _noDelay = _options.NoDelay;
        _tsOffset = layer.Isn.TimestampOffset(key);
        _advMss = layer.MssFor(key.RemoteAddress);
        _peerMss = key.RemoteAddress.IsIPv4 ? 536 : 1220;
        _mss = Math.Min(_advMss, _peerMss);
        _rcvMss = Math.Min(_advMss, 536);
        _rcvBufSize = _options.InitialReceiveWindow;
        _sndBufLimit = _options.MaxSendBuffer;
        _rcvWndScale = WindowScaleFor(_options.MaxReceiveBuffer);
        _lastReceiveTime = Now;
        _quickAcks = layer.QuickAckSegments;
    }

    private long _sndBufLimit;

    /// <summary>The connection lock (see the class remarks).</summary>
    internal object Sync { get; } = new();

    public TcpFlowKey Key { get; }

    /// <summary>True for a connection created by a listener (passive open).</summary>
    public bool IsPassive { get; }

    /// <summary>The listener of a passive connection until it is accepted or dropped.</summary>
    public TcpListener? Listener { get; set; }

    public TcpState State { get; private set; }

    /// <summary>The error that ended the connection (Success while it is usable or closed gracefully).</summary>
    public SocketError Error => _error;

    private long Now => _layer.NowMicros();

    /// <summary>Our timestamp clock (RFC 7323): milliseconds plus a per-connection random offset.</summary>
    private uint TsNow(long now) => (uint)(now / 1000) + _tsOffset;

    /// <summary>The smallest shift that lets the 16-bit window field express <paramref name="buffer"/> bytes.</summary>
    internal static int WindowScaleFor(long buffer)
    {
        int scale = 0;
        while (scale < TcpOptions.MaxWindowScale && (65535L << scale) < buffer)
        {
            scale++;
        }
        return scale;
    }

    /// <summary>Sequence number of send-side stream offset <paramref name="offset"/> (offset 0 follows our SYN).</summary>
    private uint SendSeq(long offset) => _iss + 1 + (uint)offset;

    /// <summary>Send-side stream offset of <paramref name="seq"/> (near the send buffer's head).</summary>
    private long SendOffset(uint seq) => _send.Head + (int)(seq - SendSeq(_send.Head));

    /// <summary>Sequence number of receive-side stream offset <paramref name="offset"/> (offset 0 follows the peer's SYN).</summary>
    private uint ReceiveSeq(long offset) => _irs + 1 + (uint)offset;

    /// <summary>Receive-side stream offset of <paramref name="seq"/> (near RCV.NXT).</summary>
    private long ReceiveOffset(uint seq) => _recv.End + (int)(seq - ReceiveSeq(_recv.End));

    /// <summary>SND.NXT - SND.UNA: sequence space in flight (FlightSize).</summary>
    private long FlightSize => _sndNxt - _sndUna;

    /// <summary>RFC 6675 pipe: bytes believed in the network.</summary>
    private long Pipe => FlightSize - _rtx.SackedBytes - _rtx.LostBytes + _rtx.RetransBytes;

    /// <summary>True once both SYNs are exchanged (synchronized states).</summary>
    private bool Synchronized => State >= TcpState.Established;

    // ------------------------------------------------------------------ state changes

    private void SetState(TcpState state) => State = state;

    /// <summary>
    /// Ends the connection: state CLOSED, removed from the tables, buffers and timers released,
    /// waiters woken (with <paramref name="error"/> when not Success). Idempotent.
    /// </summary>
    private void Destroy(SocketError error)
    {
        if (_destroyed)
        {
            return;
        }
        _destroyed = true;
        if (error != SocketError.Success && _error == SocketError.Success)
        {
            _error = error;
        }
        bool wasTimeWait = State == TcpState.TimeWait;
        SetState(TcpState.Closed);
        _timers.Dispose();
        _rtx.Clear();
        _send.Clear();
        if (_appClosed)
        {
            _recv.Clear(abandon: _pipeReadOutstanding); // otherwise data received before a reset stays readable
        }
        _layer.Remove(this, wasTimeWait);
        if (Listener is { } listener)
        {
            Listener = null;
            listener.OnHalfOpenGone(this);
        }
        WakeAll();
        TcpLog.Closed(_ctx.Logger, Key, _error);
    }

    /// <summary>Enters TIME-WAIT: buffers are freed and only the 2 MSL timer remains.</summary>
    private void EnterTimeWait()
    {
        SetState(TcpState.TimeWait);
        _timers.ClearAll();
        _rtx.Clear();
        _send.Clear();
        if (_appClosed)
        {
            _recv.Clear(abandon: _pipeReadOutstanding);
        }
        WakeAll();
        if (_options.TimeWaitDuration <= TimeSpan.Zero)
        {
            if (_ackNow)
            {
                SendAck(Now); // the last ACK still goes out
            }
            Destroy(SocketError.Success);
            return;
        }
        RestartTimeWait();
        _layer.OnTimeWait(this);
    }

    /// <summary>
    /// A SYN for this 4-tuple arrived in TIME-WAIT: if it is clearly new (RFC 9293 §3.10.7.4
    /// note, RFC 6191: its sequence number above RCV.NXT, or its timestamp above TS.Recent),
    /// the old connection is dropped so the listener can take the SYN. Returns true then.
    /// </summary>
    public bool TryRetireTimeWaitForSyn(ref TcpSegment syn)
    {
        lock (Sync)
        {
            if (State != TcpState.TimeWait || _destroyed)
            {
                return false;
            }
            bool newer = _tsEnabled && syn.Options.HasTimestamps && _tsRecentValid
                ? TcpSeq.Gt(syn.Options.TsVal, _tsRecent)
                : TcpSeq.Gt(syn.Seq, _rcvNxt);
            if (!newer)
            {
                return false;
            }
            Destroy(SocketError.Success);
            return true;
        }
    }

    /// <summary>Ends a TIME-WAIT connection early (the table is full). False when it is no longer in TIME-WAIT.</summary>
    public bool ForceCloseTimeWait()
    {
        lock (Sync)
        {
            if (State != TcpState.TimeWait || _destroyed)
            {
                return false;
            }
            Destroy(SocketError.Success);
            return true;
        }
    }

    /// <summary>Releases a connection that never entered the table.</summary>
    public void Discard()
    {
        lock (Sync)
        {
            _destroyed = true;
            SetState(TcpState.Closed);
            _timers.Dispose();
        }
    }

    private void RestartTimeWait() => _timers.Set(TcpTimer.Linger, Now + (long)_options.TimeWaitDuration.TotalMicroseconds);

    /// <summary>Wakes every application waiter (state changed).</summary>
    private void WakeAll()
    {
        _readSignal.Set();
        _writeSignal.Set();
        _connectSignal.Set();
        if (_syncWaiters > 0)
        {
            Monitor.PulseAll(Sync);
        }
    }

    private void WakeReader()
    {
        _readSignal.Set();
        if (_syncWaiters > 0)
        {
            Monitor.PulseAll(Sync);
        }
    }

    private void WakeWriter()
    {
        _writeSignal.Set();
        if (_syncWaiters > 0)
        {
            Monitor.PulseAll(Sync);
        }
    }

    // ------------------------------------------------------------------ output queue

    /// <summary>
    /// Hands queued segments to the IP output; call after releasing the lock. The flushing
    /// thread swaps the whole queue out under one lock acquisition and sends the batch without
    /// the lock (so the link and the application contend on the lock once per batch, not per
    /// packet), and loops while more is queued, building more data segments when the previous
    /// batch was cut short. Once a flush has sent <see cref="MaxPacketsPerFlush"/> packets and
    /// other threads keep queueing more, it hands the rest to the thread pool, so the thread
    /// that happened to start flushing (often an application's pool thread) is not held
    /// hostage by their segments. (A single-threaded caller, such as a synchronous link or a
    /// test on a fake clock, never hands off.)
    /// </summary>
    public void Flush()
    {
        PacketQueue batch;
        lock (Sync)
        {
            if (_flushing || (_out.Count == 0 && !_sendMoreRequested))
            {
                return;
            }
            _flushing = true;
            _flushThread = Environment.CurrentManagedThreadId;
            _foreignOutput = false;
        }
        int sent = 0;
        while (true)
        {
            lock (Sync)
            {
                bool more = _out.Count > 0 || _sendMoreRequested;
                if (more && sent >= MaxPacketsPerFlush && _foreignOutput)
                {
                    _flushing = false;
                    ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
                    return;
                }
                if (_out.Count == 0 && _sendMoreRequested)
                {
                    _sendMoreRequested = false;
                    if (!_destroyed)
                    {
                        long now = Now;
                        TrySendData(now);
                        _timers.Schedule(now);
                    }
                }
                if (_out.Count == 0)
                {
                    _flushing = false;
                    return;
                }
                batch = _out;
                _out = _spare;
                _spare = batch;
            }
            while (batch.Count > 0)
            {
                var (buffer, length) = batch.Dequeue();
                try
                {
                    _ctx.Output.Send(Key.LocalAddress, Key.RemoteAddress, TcpSegment.Protocol, buffer, length);
                }
                catch (Exception exception)
                {
                    TcpLog.OutputError(_ctx.Logger, exception);
                }
                _layer.Buffers.Return(buffer);
                sent++;
            }
        }
    }

    /// <summary>Queues a built segment for <see cref="Flush"/> (under the lock).</summary>
    private void Enqueue(byte[] buffer, int length)
    {
        _out.Enqueue(buffer, length);
        if (_flushing && Environment.CurrentManagedThreadId != _flushThread)
        {
            _foreignOutput = true;
        }
    }

    /// <summary>A flush handed to the thread pool (see <see cref="Flush"/>).</summary>
    void IThreadPoolWorkItem.Execute() => Flush();

    // ------------------------------------------------------------------ timer entry

    private void OnTimerFired()
    {
        try
        {
            lock (Sync)
            {
                _timers.OnFired();
                if (_destroyed)
                {
                    return;
                }
                HandleTimers(Now);
                if (!_destroyed)
                {
                    _timers.Schedule(Now);
                }
            }
            Flush();
        }
        catch (Exception exception)
        {
            TcpLog.TimerError(_ctx.Logger, exception);
        }
    }

    /// <summary>Arms the timer for the earliest deadline (under the lock, after a change).</summary>
    private void ScheduleTimers()
    {
        if (!_destroyed)
        {
            _timers.Schedule(Now);
        }
    }
}
