using System.Net.Sockets;

namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>Segment arrival: RFC 9293 §3.10.7 with RFC 5961 and RFC 7323 checks.</summary>
internal sealed partial class TcpControlBlock
{
    private bool _everEstablished;

    /// <summary>Timestamps this many ticks older than TS.Recent are still accepted (Linux TCP_PAWS_WINDOW).</summary>
    private const int PawsWindow = 1;

    /// <summary>
    /// Processes one inbound segment for this connection (called by the layer, no lock held)
    /// and flushes what it queued. Returns false when the connection no longer exists (the
    /// layer then answers as for no connection).
    /// </summary>
    public bool OnSegment(ref TcpSegment segment)
    {
        lock (Sync)
        {
            if (_destroyed)
            {
                return false;
            }
            long now = Now;
            ProcessSegment(ref segment, now);
            if (!_destroyed)
            {
                FinishInput(now);
            }
        }
        Flush();
        return true;
    }

    /// <summary>After a segment: send what became sendable, the ACK it calls for, and re-arm timers.</summary>
    private void FinishInput(long now)
    {
        TrySendData(now);
        if (_ackNow)
        {
            SendAck(now);
        }
        ScheduleTimers();
    }

    private void ProcessSegment(ref TcpSegment seg, long now)
    {
        switch (State)
        {
            case TcpState.SynSent:
                ProcessSynSent(ref seg, now);
                return;
            case TcpState.Closed:
            case TcpState.Listen:
                return;
        }

        // PAWS (RFC 7323 §5.3): an old timestamp marks an old duplicate (with Linux's one-tick tolerance).
        if (_tsEnabled && seg.Options.HasTimestamps && !seg.Rst && _tsRecentValid && (int)(_tsRecent - seg.Options.TsVal) > PawsWindow)
        {
            if (now - _tsRecentTime > PawsIdleLimit)
            {
                _tsRecentValid = false;
            }
            else
            {
                _ctx.Counters.Drop(StackDropReason.TcpPawsRejected);
                uint rcvData = ReceiveSeq(_recv.End);
                if (_sackEnabled && seg.Payload.Length > 0 && TcpSeq.Lt(seg.Seq, rcvData) && State != TcpState.TimeWait)
                {
                    // An old copy of data we have: typically the original of a retransmission that
                    // overtook it, its timestamp now older than TS.Recent. Report it (RFC 2883), as
                    // Linux does, or the sender never learns that its retransmission was spurious.
                    uint end = seg.Seq + (uint)seg.Payload.Length;
                    SetDsack(ReceiveOffset(seg.Seq), ReceiveOffset(TcpSeq.Lt(end, rcvData) ? end : rcvData));
                }
                if (seg.Payload.Length > 0 || RateLimitAllows(now))
                {
                    _ackNow = true;
                }
                return;
            }
        }

        if (State == TcpState.SynReceived && seg.Syn && seg.Seq == _irs && !seg.Rst)
        {
            if (seg.HasAck && TcpSeq.Lt(_sndUna, seg.Ack) && TcpSeq.Le(seg.Ack, _sndNxt))
            {
                // Simultaneous open (RFC 9293 figure 8): the peer's SYN-ACK crossed ours and acknowledges our SYN.
                OnHandshakeAcked(ref seg, now);
                return;
            }
            // A retransmitted SYN: our SYN-ACK was lost; send it again.
            if (RateLimitAllows(now))
            {
                SendSyn(now);
            }
            return;
        }

        // SYN in a synchronized state (RFC 5961 §4.2): challenge ACK, whatever its sequence number.
        if (seg.Syn)
        {
            _ctx.Counters.Drop(StackDropReason.TcpChallenged);
            SendChallengeAck(now);
            return;
        }

        if (!SequenceAcceptable(seg.Seq, seg.SeqLength))
        {
            if (seg.Rst)
            {
                _ctx.Counters.Drop(StackDropReason.TcpOutOfWindow);
                return;
            }
            if (State == TcpState.TimeWait && seg.Fin)
            {
                RestartTimeWait(); // a retransmitted FIN: our ACK was lost
            }
            _ctx.Counters.Drop(StackDropReason.TcpOutOfWindow);
            uint end = seg.Seq + (uint)seg.Payload.Length;
            if (_sackEnabled && seg.Payload.Length > 0 && TcpSeq.Le(end, ReceiveSeq(_recv.End)) && State != TcpState.TimeWait)
            {
                SetDsack(ReceiveOffset(seg.Seq), ReceiveOffset(end)); // RFC 2883: report the duplicate
            }
            if (seg.Payload.Length > 0 || seg.Fin || RateLimitAllows(now))
            {
                _ackNow = true;
            }
            return;
        }

        // RST (RFC 9293 §3.10.7.4 second; RFC 5961 §3.2: only an exact match resets).
        if (seg.Rst)
        {
            if (seg.Seq == _rcvNxt)
            {
                OnResetReceived();
            }
            else
            {
                _ctx.Counters.Drop(StackDropReason.TcpChallenged);
                SendChallengeAck(now);
            }
            return;
        }

        if (!seg.HasAck)
        {
            _ctx.Counters.Drop(StackDropReason.TcpBadFlags);
            return;
        }

        // TS.Recent (RFC 7323 §4.3): from segments that are not beyond the last ACK we sent.
        if (_tsEnabled && seg.Options.HasTimestamps && TcpSeq.Le(seg.Seq, _lastAckSent) &&
            (!_tsRecentValid || TcpSeq.Ge(seg.Options.TsVal, _tsRecent)))
        {
            _tsRecent = seg.Options.TsVal;
            _tsRecentTime = now;
            _tsRecentValid = true;
        }
        _lastReceiveTime = now;
        _keepAliveProbes = 0;

        if (State == TcpState.SynReceived)
        {
            if (TcpSeq.Lt(_sndUna, seg.Ack) && TcpSeq.Le(seg.Ack, _sndNxt))
            {
                if (!OnHandshakeAcked(ref seg, now))
                {
                    return;
                }
            }
            else
            {
                _ctx.Counters.Drop(StackDropReason.TcpUnacceptableAck);
                SendResetForAck(seg.Ack);
                return;
            }
        }

        // RFC 5961 §5.2: acceptable ACKs lie in [SND.UNA - MAX.SND.WND, SND.NXT].
        if (TcpSeq.Gt(seg.Ack, _sndNxt) || TcpSeq.Lt(seg.Ack, _sndUna - (uint)Math.Min(_maxSndWnd, int.MaxValue)))
        {
            _ctx.Counters.Drop(StackDropReason.TcpUnacceptableAck);
            SendChallengeAck(now);
            return;
        }

        ProcessAck(ref seg, now);
        if (_destroyed)
        {
            return;
        }
        switch (State)
        {
            case TcpState.FinWait1 when _finAcked:
                SetState(TcpState.FinWait2);
                if (_appClosed)
                {
                    _timers.Set(TcpTimer.Linger, now + (long)_options.FinWait2Timeout.TotalMicroseconds);
                }
                break;
            case TcpState.Closing when _finAcked:
                EnterTimeWait();
                return;
            case TcpState.LastAck when _finAcked:
                Destroy(SocketError.Success);
                return;
        }

        if (seg.Payload.Length > 0 || seg.Fin)
        {
            ProcessData(seg.Seq, seg.Payload, seg.Fin, ref seg.Options, now, (seg.Flags & TcpFlags.Psh) != 0);
        }
    }

    /// <summary>RFC 9293 §3.10.7.4 acceptability test against the window we advertised.</summary>
    private bool SequenceAcceptable(uint seq, int length)
    {
        long window = Math.Max(0, (int)(_rcvAdvEdge - _rcvNxt));
        if (length == 0)
        {
            return window == 0 ? seq == _rcvNxt : TcpSeq.Le(_rcvNxt, seq) && TcpSeq.Lt(seq, _rcvNxt + (uint)window);
        }
        if (window == 0)
        {
            return false;
        }
        uint last = seq + (uint)length - 1;
        return (TcpSeq.Le(_rcvNxt, seq) && TcpSeq.Lt(seq, _rcvNxt + (uint)window)) ||
            (TcpSeq.Le(_rcvNxt, last) && TcpSeq.Lt(last, _rcvNxt + (uint)window));
    }

    /// <summary>True (and records the time) when a rate-limited response may be sent now.</summary>
    private bool RateLimitAllows(long now)
    {
        if (now - _lastChallengeTime < ChallengeAckInterval)
        {
            return false;
        }
        _lastChallengeTime = now;
        return true;
    }

    /// <summary>A challenge ACK (RFC 5961 §3.2, §4.2, §5.2), at most one per 500 ms per connection.</summary>
    private void SendChallengeAck(long now)
    {
        if (RateLimitAllows(now))
        {
            _ackNow = true;
        }
    }

    private void OnResetReceived()
    {
        TcpLog.ResetByPeer(_ctx.Logger, Key, State);
        switch (State)
        {
            case TcpState.SynReceived:
                Destroy(IsPassive ? SocketError.Success : SocketError.ConnectionRefused);
                break;
            case TcpState.Established:
            case TcpState.FinWait1:
            case TcpState.FinWait2:
            case TcpState.CloseWait:
                Destroy(SocketError.ConnectionReset);
                break;
            default:
                Destroy(SocketError.Success);
                break;
        }
    }

    // ------------------------------------------------------------------ SYN-SENT

    private void ProcessSynSent(ref TcpSegment seg, long now)
    {
        if (seg.HasAck && (TcpSeq.Le(seg.Ack, _iss) || TcpSeq.Gt(seg.Ack, _sndNxt)))
        {
            _ctx.Counters.Drop(StackDropReason.TcpUnacceptableAck);
            if (!seg.Rst)
            {
                SendResetForAck(seg.Ack);
            }
            return;
        }
        if (seg.Rst)
        {
            if (seg.HasAck)
            {
                TcpLog.ResetByPeer(_ctx.Logger, Key, State);
                Destroy(SocketError.ConnectionRefused);
            }
            else
            {
                _ctx.Counters.Drop(StackDropReason.TcpOutOfWindow);
            }
            return;
        }
        if (!seg.Syn)
        {
            _ctx.Counters.Drop(StackDropReason.TcpBadFlags);
            return;
        }
        ApplySynOptions(ref seg.Options, now);
        _irs = seg.Seq;
        _rcvNxt = seg.Seq + 1;
        _rcvAdvEdge = _rcvNxt + (uint)Math.Min(_rcvBufSize, 65535); // what our SYN offered, unscaled
        _recv.Reset(0);
        _lastReceiveTime = now;
        if (seg.HasAck)
        {
            _sndUna = seg.Ack;
            TakeHandshakeRtt(ref seg.Options, now);
            _sndWnd = seg.Window; // a SYN's window is never scaled (RFC 7323 §2.2)
            _maxSndWnd = _sndWnd;
            _sndWl1 = seg.Seq;
            _sndWl2 = seg.Ack;
            OnEstablished(now);
            _ackNow = true;
            if (seg.Payload.Length > 0 || seg.Fin)
            {
                ProcessData(seg.Seq + 1, seg.Payload, seg.Fin, ref seg.Options, now);
            }
            return;
        }
        // Simultaneous open (RFC 9293 §3.5, figure 8): answer with SYN-ACK; data on the SYN is dropped (it will be resent).
        SetState(TcpState.SynReceived);
        _sndWnd = seg.Window;
        _maxSndWnd = _sndWnd;
        _sndWl1 = seg.Seq;
        _sndWl2 = _iss;
        _synRetries = 0;
        _rtt.Backoff = 0;
        SendSyn(now);
        ArmRetransmit(RetransmitKind.Rto, now + _rtt.Rto);
    }

    /// <summary>Takes the peer's options from its SYN or SYN-ACK (our own SYN always offers all of them).</summary>
    private void ApplySynOptions(ref TcpOptions options, long now)
    {
        if (options.HasMss)
        {
            _peerMss = Math.Max((int)options.Mss, 64);
        }
        _wsEnabled = options.HasWindowScale;
        _sndWndScale = _wsEnabled ? options.WindowScale : 0;
        if (!_wsEnabled)
        {
            _rcvWndScale = 0;
            _rcvBufSize = Math.Min(_rcvBufSize, 65535);
        }
        _sackEnabled = options.SackPermitted;
        _tsEnabled = options.HasTimestamps;
        if (_tsEnabled)
        {
            _tsRecent = options.TsVal;
            _tsRecentTime = now;
            _tsRecentValid = true;
        }
        UpdateMss();
    }

    /// <summary>Send MSS: the smaller of the peer's MSS and our path's, minus the timestamp option we put in every segment.</summary>
    private void UpdateMss()
    {
        _mss = Math.Max(32, Math.Min(_peerMss, _advMss) - (_tsEnabled ? TcpOptions.TimestampsLength : 0));
        if (_cc is not null)
        {
            _cc.Mss = _mss;
        }
    }

    /// <summary>RTT from the handshake: Karn's rule for a retransmitted SYN, unless timestamps disambiguate.</summary>
    private void TakeHandshakeRtt(ref TcpOptions options, long now)
    {
        if (!_synRetransmitted)
        {
            _rtt.Sample(now - _synSentTime, now);
        }
        else if (_tsEnabled && options.HasTimestamps && options.TsEcr != 0)
        {
            long ms = (int)(TsNow(now) - options.TsEcr);
            if (ms >= 0)
            {
                _rtt.Sample(Math.Max(ms, 1) * 1000, now); // a millisecond clock: 0 ms means "under 1 ms", as Linux reads it
            }
        }
        else
        {
            _rtt.SetInitialRto(RttEstimator.ConservativeRto); // RFC 6298 §5.7
        }
        _rtt.Backoff = 0;
    }

    /// <summary>The ACK of our SYN-ACK arrived in SYN-RECEIVED. False when the segment must be dropped (accept queue full).</summary>
    private bool OnHandshakeAcked(ref TcpSegment seg, long now)
    {
        if (IsPassive && Listener is { } listener && !listener.HasRoomForAccept)
        {
            _ctx.Counters.Drop(StackDropReason.TcpSynDropped); // Linux: drop the ACK; the SYN-ACK is resent later
            return false;
        }
        TakeHandshakeRtt(ref seg.Options, now);
        _sndUna = _iss + 1;
        _sndWnd = (long)seg.Window << _sndWndScale;
        _maxSndWnd = _sndWnd;
        _sndWl1 = seg.Seq;
        _sndWl2 = seg.Ack;
        OnEstablished(now);
        return !_destroyed;
    }

    /// <summary>Both SYNs are acknowledged: set up congestion control and tell the application (or the listener).</summary>
    private void OnEstablished(long now)
    {
        SetState(TcpState.Established);
        _everEstablished = true;
        _cc = CongestionControl.Create(_options.CongestionControl, _mss);
        _timers.Clear(TcpTimer.Retransmit);
        _timers.Clear(TcpTimer.Linger);
        _ackProgressTime = now;
        _lastSendTime = now;
        _rcvSpaceTime = now;
        _rcvSpace = _rcvBufSize / 2;
        _recoverSeq = _iss; // RFC 6582 §3.1: recover = ISS
        _lostHintSeq = _sndUna;
        _rack.Fack = _sndUna;
        _rack.EndSeq = _sndUna;
        _rack.DsackRoundEnd = _sndUna;
        if (_options.KeepAliveIdle is { } idle)
        {
            _timers.Set(TcpTimer.KeepAlive, now + (long)idle.TotalMicroseconds);
        }
        TcpLog.Established(_ctx.Logger, Key, IsPassive ? "passive" : "active", _mss, _sndWndScale, _rcvWndScale, _sackEnabled, _tsEnabled);
        if (IsPassive && Listener is { } listener)
        {
            Listener = null;
            if (!listener.OnEstablished(this))
            {
                SendReset(_sndNxt, withAck: true); // the listener was closed meanwhile
                Destroy(SocketError.ConnectionReset);
                return;
            }
        }
        _connectSignal.Set();
        WakeWriter();
    }
}
