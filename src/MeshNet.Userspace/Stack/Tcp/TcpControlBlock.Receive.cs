using System.Net.Sockets;

namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>
/// The receiving side: storing data (in order and out of order), the peer's FIN, ACK policy
/// (delayed ACK, quick ACKs, immediate ACKs for out-of-order data), the advertised window
/// (never shrinking, receiver silly-window avoidance) and receive-buffer auto-tuning.
/// </summary>
internal sealed partial class TcpControlBlock
{
    // ---- ACK generation ----
    private bool _ackNow;
    private long _unackedRcvBytes;
    private bool _pushedUnacked;
    private int _quickAcks;
    private bool _dsackPending;
    private long _dsackStart;
    private long _dsackEnd;

    // ---- receive-buffer auto-tuning (Linux tcp_rcv_space_adjust) and receiver RTT ----
    private long _rcvSpace;
    private long _rcvSpaceTime;
    private long _rcvSpaceRead;
    private long _rcvRtt;
    private long _rcvRttTime;
    private uint _rcvRttSeq;

    private void ProcessData(uint seq, ReadOnlySpan<byte> payload, bool fin, ref TcpOptions options, long now, bool push = false)
    {
        if (State is not (TcpState.Established or TcpState.FinWait1 or TcpState.FinWait2))
        {
            return; // the peer's FIN was already received: later data is ignored
        }
        uint rcvData = ReceiveSeq(_recv.End);
        if (_appClosed && payload.Length > 0 && TcpSeq.Gt(seq + (uint)payload.Length, rcvData))
        {
            // New data for an application that closed: nobody will read it (RFC 2525 §2.17, Linux).
            SendReset(_sndNxt, withAck: true);
            Destroy(SocketError.Success);
            return;
        }
        long offset = ReceiveOffset(seq);
        long limit = Math.Max(ReceiveOffset(_rcvAdvEdge), _recv.End);
        if (offset + payload.Length > limit)
        {
            payload = payload[..(int)Math.Max(0, limit - offset)];
            fin = false; // the FIN lies beyond the window
        }
        if (!payload.IsEmpty)
        {
            long before = _recv.End;
            var outcome = _recv.Store(offset, payload);
            if ((outcome & (ReceiveOutcome.NoMemory | ReceiveOutcome.TooManyRanges)) != 0)
            {
                _ctx.Counters.Drop(StackDropReason.TcpBufferFull);
                _ackNow = true;
                return;
            }
            if ((outcome & ReceiveOutcome.Duplicate) != 0 && _sackEnabled)
            {
                SetDsack(_recv.LastDuplicate.Start, _recv.LastDuplicate.End);
            }
            if ((outcome & (ReceiveOutcome.OutOfOrder | ReceiveOutcome.FilledHole | ReceiveOutcome.Duplicate)) != 0)
            {
                _ackNow = true; // RFC 5681 §4.2: immediate ACK for out-of-order data and for filling a gap
            }
            if ((outcome & ReceiveOutcome.Advanced) != 0)
            {
                long advanced = _recv.End - before;
                _unackedRcvBytes += advanced;
                _pushedUnacked |= push;
                if (payload.Length > _rcvMss)
                {
                    _rcvMss = Math.Min(payload.Length, _advMss);
                }
                _rcvNxt = ReceiveSeq(_recv.End);
                MeasureReceiverRtt(ref options, payload.Length, now);
                WakeReader();
            }
        }
        if (fin)
        {
            long finOffset = offset + payload.Length;
            if (finOffset == _recv.End)
            {
                ReceiveFin(now);
                return;
            }
            if (finOffset > _recv.End)
            {
                _oooFinOffset = finOffset;
                _ackNow = true;
            }
        }
        else if (_oooFinOffset >= 0 && _oooFinOffset == _recv.End)
        {
            ReceiveFin(now);
            return;
        }
        if (!_ackNow && _unackedRcvBytes > 0)
        {
            if (!_options.DelayedAck || _unackedRcvBytes >= 2L * _rcvMss)
            {
                _ackNow = true; // RFC 5681 §4.2: at least every second full-sized segment
            }
            else if (_quickAcks > 0)
            {
                _quickAcks--;
                _ackNow = true;
            }
            else if (!_timers.IsSet(TcpTimer.DelayedAck))
            {
                _timers.Set(TcpTimer.DelayedAck, now + (long)_options.DelayedAckTimeout.TotalMicroseconds);
            }
        }
    }

    /// <summary>The peer's FIN arrived in order.</summary>
    private void ReceiveFin(long now)
    {
        _finReceived = true;
        _oooFinOffset = -1;
        _rcvNxt = ReceiveSeq(_recv.End) + 1;
        _ackNow = true;
        WakeReader();
        switch (State)
        {
            case TcpState.Established:
                SetState(TcpState.CloseWait);
                break;
            case TcpState.FinWait1:
                if (_finAcked)
                {
                    EnterTimeWait();
                }
                else
                {
                    SetState(TcpState.Closing);
                }
                break;
            case TcpState.FinWait2:
                EnterTimeWait();
                break;
        }
        _ = now;
    }

    private void SetDsack(long start, long end)
    {
        if (end <= start)
        {
            return;
        }
        _dsackPending = true;
        _dsackStart = start;
        _dsackEnd = end;
    }

    /// <summary>
    /// SACK blocks for an outgoing ACK (RFC 2018 §4, RFC 2883): a D-SACK block first when a
    /// duplicate arrived (followed by the out-of-order block containing it, if any), then the
    /// out-of-order blocks, most recently changed first. Writes start/end pairs; returns the count.
    /// </summary>
    private int CollectSackBlocks(Span<uint> pairs, int max)
    {
        int count = 0;
        Span<long> ranges = stackalloc long[8];
        if (_dsackPending)
        {
            pairs[0] = ReceiveSeq(_dsackStart);
            pairs[1] = ReceiveSeq(_dsackEnd);
            count = 1;
            if (count < max && _recv.TryGetRangeContaining(_dsackStart, out long start, out long end))
            {
                pairs[2] = ReceiveSeq(start);
                pairs[3] = ReceiveSeq(end);
                count = 2;
            }
        }
        if (_recv.RangeCount > 0 && count < max)
        {
            int found = _recv.GetSackRanges(ranges, 4);
            for (int i = 0; i < found && count < max; i++)
            {
                uint s = ReceiveSeq(ranges[i * 2]);
                uint e = ReceiveSeq(ranges[(i * 2) + 1]);
                if (count == 2 && pairs[2] == s && pairs[3] == e)
                {
                    continue; // already sent as the D-SACK's companion block
                }
                pairs[count * 2] = s;
                pairs[(count * 2) + 1] = e;
                count++;
            }
        }
        return count;
    }

    // ------------------------------------------------------------------ window

    /// <summary>
    /// The window field for an outgoing segment, and the right edge it advertises. The edge
    /// never moves left (RFC 9293 §3.8.6.2.2 forbids shrinking) and moves right only by at least
    /// min(buffer / 2, MSS) at a time (receiver silly-window avoidance, RFC 1122 §4.2.3.3).
    /// </summary>
    private ushort SelectWindow()
    {
        long free = Math.Max(0, _rcvBufSize - _recv.Available);
        long current = Math.Max(0, (int)(_rcvAdvEdge - _rcvNxt));
        long window = free;
        if (window < current)
        {
            window = current;
        }
        else if (window - current < Math.Min(_rcvBufSize / 2, _rcvMss) && current > 0)
        {
            window = current;
        }
        else if (window < Math.Min(_rcvBufSize / 2, _rcvMss) && current == 0)
        {
            window = 0;
        }
        window = Math.Min(window, 65535L << _rcvWndScale);
        long field = window >> _rcvWndScale;
        if ((field << _rcvWndScale) < current)
        {
            field++; // rounding must not shrink the advertised edge
        }
        field = Math.Min(field, 65535);
        _rcvAdvEdge = _rcvNxt + (uint)(field << _rcvWndScale);
        return (ushort)field;
    }

    /// <summary>
    /// After the application read: whether the window opened enough that the peer should hear
    /// about it now (Linux __tcp_cleanup_rbuf: the new window is at least twice the one it
    /// knows and that one is at most half the buffer; or a zero/sub-MSS window reopened).
    /// </summary>
    private bool WindowUpdateNeeded()
    {
        if (!Synchronized || _finReceived)
        {
            return false;
        }
        long current = Math.Max(0, (int)(_rcvAdvEdge - _rcvNxt));
        long free = Math.Max(0, _rcvBufSize - _recv.Available);
        long threshold = Math.Min(_rcvBufSize / 2, _rcvMss);
        if (free - current < threshold)
        {
            return false;
        }
        return current < _rcvMss || (2 * current <= _rcvBufSize && free >= 2 * current);
    }

    /// <summary>
    /// Receiver RTT (Linux tcp_rcv_rtt_measure and _ts): from the echo of our timestamp when the
    /// peer sends full segments, else the time to receive one window of data.
    /// </summary>
    private void MeasureReceiverRtt(ref TcpOptions options, int length, long now)
    {
        if (_tsEnabled && options.HasTimestamps && options.TsEcr != 0 && length >= _rcvMss)
        {
            long ms = (int)(TsNow(now) - options.TsEcr);
            if (ms > 0 && ms < 60_000)
            {
                UpdateReceiverRtt(ms * 1000);
                return;
            }
        }
        if (_rcvRttTime != 0 && TcpSeq.Lt(_rcvNxt, _rcvRttSeq))
        {
            return;
        }
        if (_rcvRttTime != 0)
        {
            UpdateReceiverRtt(Math.Max(1, now - _rcvRttTime));
        }
        _rcvRttSeq = _rcvNxt + (uint)Math.Max(1, (int)(_rcvAdvEdge - _rcvNxt));
        _rcvRttTime = now;
    }

    private void UpdateReceiverRtt(long sample)
    {
        // A window-based sample is an upper bound: keep the smaller estimate, smooth when growing.
        if (_rcvRtt == 0 || sample < _rcvRtt)
        {
            _rcvRtt = sample;
        }
        else
        {
            _rcvRtt += (sample - _rcvRtt) / 8;
        }
    }

    /// <summary>
    /// Receive-buffer auto-tuning (Linux DRS): once per receiver RTT, if the application read
    /// more than in the previous round, grow the buffer to twice what it reads per RTT (plus
    /// headroom when growing fast), up to <see cref="TcpStackOptions.MaxReceiveBuffer"/>, and only
    /// while the stack budget has room.
    /// </summary>
    private void AutoTuneReceiveBuffer(long now)
    {
        long rtt = _rcvRtt > 0 ? _rcvRtt : _rtt.Srtt;
        if (rtt <= 0 || now - _rcvSpaceTime < rtt)
        {
            return;
        }
        long copied = _recv.ReadOffset - _rcvSpaceRead;
        _rcvSpaceRead = _recv.ReadOffset;
        _rcvSpaceTime = now;
        if (copied <= _rcvSpace)
        {
            return;
        }
        long window = (2 * copied) + (16L * _rcvMss);
        long grow = window * (copied - _rcvSpace) / Math.Max(1, _rcvSpace);
        window += 2 * grow;
        _rcvSpace = copied;
        long max = _wsEnabled ? _options.MaxReceiveBuffer : Math.Min(_options.MaxReceiveBuffer, 65535);
        window = Math.Min(window, max);
        if (window <= _rcvBufSize)
        {
            return;
        }
        var budget = _ctx.Budget;
        long headroom = budget.Limit - budget.Used;
        if (headroom < (window - _rcvBufSize) * 4)
        {
            return; // memory is getting tight: do not promise more window
        }
        _rcvBufSize = window;
    }

    /// <summary>
    /// Bookkeeping after the application consumed data: auto-tuning, a window update when due,
    /// and the pending delayed ACK at once when the reader drained everything up to a pushed
    /// segment (Linux tcp_cleanup_rbuf): the end of a message is acknowledged from the read
    /// itself rather than from the delayed-ACK timer.
    /// </summary>
    private void AfterConsume(long now)
    {
        AutoTuneReceiveBuffer(now);
        if (WindowUpdateNeeded() || (_pushedUnacked && _unackedRcvBytes > 0 && _recv.Available == 0))
        {
            _ackNow = true;
        }
    }
}
