namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>
/// The sending side's reaction to ACKs: cumulative and selective acknowledgment, RTT samples
/// (Karn's rule, RFC 7323 RTTM), the send window (RFC 9293 SND.WL1/WL2 rule) and the
/// congestion window outside loss recovery.
/// </summary>
internal sealed partial class TcpControlBlock
{
    private RttEstimator _rtt;
    private CongestionControl _cc = null!;
    private CongestionState _caState;
    private bool _cwndLimited;
    private long _lastSendTime;
    private long _ackProgressTime;
    private RackState _rack = new() { ReoWndMult = 1 };

    private void ProcessAck(ref TcpSegment seg, long now)
    {
        uint ack = seg.Ack;
        long priorFlight = FlightSize;
        var priorState = _caState;
        uint priorFack = _rack.Fack;
        bool dsack = false;
        long newlySacked = 0;
        if (_sackEnabled && seg.Options.SackCount > 0)
        {
            newlySacked = ProcessSackBlocks(ref seg.Options, ack, priorFack, now, out dsack);
        }

        long acked = 0;
        if (TcpSeq.Gt(ack, _sndUna))
        {
            acked = AcknowledgeSegments(ack, ref seg.Options, priorFack, now);
            _sndUna = ack;
            _rtt.Backoff = 0;
            _ackProgressTime = now;
            if (_finSent && ack == _sndNxt)
            {
                _finAcked = true;
            }
            if (_sndBufLimit - _send.Buffered >= WriteWakeThreshold)
            {
                WakeWriter();
            }
        }

        // RFC 9293 §3.10.7.4: update the send window from segments newer than the last update.
        bool windowChanged = false;
        if (TcpSeq.Lt(_sndWl1, seg.Seq) || (_sndWl1 == seg.Seq && TcpSeq.Le(_sndWl2, ack)))
        {
            long window = (long)seg.Window << _sndWndScale;
            windowChanged = window != _sndWnd;
            _sndWnd = window;
            _sndWl1 = seg.Seq;
            _sndWl2 = ack;
            _maxSndWnd = Math.Max(_maxSndWnd, window);
            if (window > 0)
            {
                _persistBackoff = 0;
            }
        }
        _probesUnanswered = 0;

        if (_undoActive)
        {
            CheckUndo(ref seg.Options, acked > 0, now);
        }
        if (_tlpOutstanding)
        {
            TlpOnAck(ack, dsack, now);
        }

        if (_sackEnabled)
        {
            if (_rack.UpdateReoWnd(_sndUna, _sndNxt))
            {
                _stats.ReoWndWidenings++;
                _stats.MaxReoWndMult = Math.Max(_stats.MaxReoWndMult, _rack.ReoWndMult);
            }
            if (_rtx.Count > 0 && _rack.Advanced && _caState != CongestionState.Loss)
            {
                if (RackDetectLoss(now) && _caState == CongestionState.Open)
                {
                    EnterRecovery(now);
                }
            }
        }
        else
        {
            bool duplicate = acked == 0 && seg.Payload.Length == 0 && !seg.Fin && !windowChanged && ack == _sndUna && _rtx.Count > 0;
            NewRenoOnAck(duplicate, acked, now);
        }

        switch (_caState)
        {
            case CongestionState.Recovery when _sackEnabled:
                if (TcpSeq.Ge(_sndUna, _recoverSeq))
                {
                    ExitRecovery(now);
                    if (_rtx.LostBytes > 0)
                    {
                        EnterRecovery(now); // losses beyond the recovery point: a new congestion event
                    }
                }
                else
                {
                    PrrOnAck(acked + newlySacked);
                }
                break;
            case CongestionState.Loss:
                if (acked > 0)
                {
                    _cc.OnAck(acked, now, _rtt.Srtt, cwndLimited: true);
                }
                if (TcpSeq.Ge(_sndUna, _recoverSeq))
                {
                    _caState = CongestionState.Open;
                    _cc.OnRecoveryEnd(now);
                }
                break;
            case CongestionState.Open:
                if (acked > 0 && priorState == CongestionState.Open) // not on the ACK that ended recovery or undid it
                {
                    _cc.OnAck(acked, now, _rtt.Srtt, _cwndLimited || _cc.Cwnd < 2 * priorFlight);
                }
                break;
        }

        // RFC 6298 §5.2/5.3: stop the timer when all is acknowledged, restart it on new ACKs.
        if (_rtx.Count == 0)
        {
            if (_timers.RetransmitKind is RetransmitKind.Rto or RetransmitKind.TailLossProbe or RetransmitKind.ReorderTimeout)
            {
                _timers.Clear(TcpTimer.Retransmit);
            }
        }
        else if (acked > 0 && _timers.RetransmitKind != RetransmitKind.ReorderTimeout)
        {
            ArmRto(now);
        }
        MaybeScheduleTailLossProbe(now);
    }

    /// <summary>Removes the segments a cumulative ACK covers; takes an RTT sample; frees the send buffer. Returns the sequence space acknowledged.</summary>
    private long AcknowledgeSegments(uint ack, ref TcpOptions options, uint priorFack, long now)
    {
        long acked = 0;
        bool retransmittedAcked = false;
        long oldestClean = -1;
        while (_rtx.Count > 0)
        {
            ref var segment = ref _rtx[0];
            if (TcpSeq.Le(segment.End, ack))
            {
                if (segment.Has(SentFlags.EverRetransmitted))
                {
                    retransmittedAcked = true;
                }
                else if (oldestClean < 0)
                {
                    oldestClean = segment.XmitTime;
                }
                if (!segment.Has(SentFlags.Sacked))
                {
                    _rack.DetectReordering(segment, priorFack);
                    if (!AcksEarlierTransmission(segment, ref options))
                    {
                        _rack.OnDelivered(segment, now, _rtt.MinRtt);
                    }
                }
                acked += segment.Length;
                _rtx.RemoveHead();
            }
            else
            {
                if (TcpSeq.Lt(segment.Seq, ack))
                {
                    acked += (int)(ack - segment.Seq);
                    _rtx.TrimHead(ack);
                }
                break;
            }
        }
        if (TcpSeq.Gt(ack, _rack.Fack))
        {
            _rack.Fack = ack;
        }
        // Karn (RFC 6298 §3): no sample from retransmitted data, unless timestamps tell which copy was acknowledged (RFC 7323 §4).
        if (oldestClean >= 0 && !retransmittedAcked)
        {
            _rtt.Sample(now - oldestClean, now);
        }
        else if (_tsEnabled && options.HasTimestamps && options.TsEcr != 0)
        {
            long ms = (int)(TsNow(now) - options.TsEcr);
            if (ms >= 0 && ms < 120_000)
            {
                _rtt.Sample(Math.Max(ms, 1) * 1000, now); // a millisecond clock: 0 ms means "under 1 ms", as Linux reads it
            }
        }
        _send.Acknowledge(SendOffset(ack));
        return acked;
    }

    /// <summary>
    /// True when the ACK's timestamp echo predates the latest retransmission of
    /// <paramref name="segment"/>: the peer acknowledged an earlier copy (the original,
    /// delayed), so the retransmission's send time says nothing about what was delivered
    /// (RFC 8985 §6.2 step 2, Linux tcp_skb_spurious_retrans). Only for cumulatively
    /// acknowledged segments: the receiver's TS.Recent does not follow out-of-order arrivals
    /// (RFC 7323 §4.3), so the echo on a SACK tells nothing about a SACKed retransmission.
    /// </summary>
    private bool AcksEarlierTransmission(in SentSegment segment, ref TcpOptions options) =>
        segment.Has(SentFlags.EverRetransmitted) && _tsEnabled && options.HasTimestamps && options.TsEcr != 0 &&
        TcpSeq.Lt(options.TsEcr, TsNow(segment.XmitTime));

    /// <summary>
    /// Applies the SACK blocks of an ACK to the scoreboard (RFC 2018, RFC 6675 §4) and detects a
    /// D-SACK (RFC 2883 §4: the first block lies below the cumulative ACK or inside the second
    /// block). Returns the newly SACKed bytes.
    /// </summary>
    private long ProcessSackBlocks(ref TcpOptions options, uint ack, uint priorFack, long now, out bool dsack)
    {
        dsack = false;
        int first = 0;
        uint s0 = options.SackStart(0);
        uint e0 = options.SackEnd(0);
        if (TcpSeq.Lt(s0, ack) || (options.SackCount > 1 && TcpSeq.Ge(s0, options.SackStart(1)) && TcpSeq.Le(e0, options.SackEnd(1))))
        {
            if (TcpSeq.Lt(s0, e0) && TcpSeq.Le(e0, _sndNxt))
            {
                dsack = true;
                OnDsack(s0, e0);
            }
            first = 1;
        }
        long newly = 0;
        for (int b = first; b < options.SackCount; b++)
        {
            uint start = options.SackStart(b);
            uint end = options.SackEnd(b);
            if (!TcpSeq.Lt(start, end) || TcpSeq.Gt(end, _sndNxt) || TcpSeq.Le(end, ack) || TcpSeq.Lt(start, _sndUna - (1u << 30)))
            {
                continue; // invalid or old block (RFC 2018 §8, RFC 5961-style sanity)
            }
            if (TcpSeq.Lt(start, ack))
            {
                start = ack;
            }
            for (int i = _rtx.FirstEndingAfter(start); i < _rtx.Count; i++)
            {
                ref var segment = ref _rtx[i];
                if (TcpSeq.Gt(segment.End, end))
                {
                    break;
                }
                if (TcpSeq.Lt(segment.Seq, start) || segment.Has(SentFlags.Sacked))
                {
                    continue;
                }
                _rack.DetectReordering(segment, priorFack);
                _rack.OnDelivered(segment, now, _rtt.MinRtt);
                newly += segment.Length;
                _rtx.MarkSacked(i);
            }
        }
        return newly;
    }

    /// <summary>
    /// A D-SACK: counts a spurious retransmission when it covers one of ours; feeds the undo of
    /// the current episode; and when it proves a fast retransmission spurious, asks RACK to
    /// widen its reordering window. D-SACKs for network duplicates of data we never resent, for
    /// a tail loss probe (timer-driven, not a reordering verdict) or for a timeout's
    /// retransmissions leave the window alone (as Linux's tcp_dsack_seen).
    /// </summary>
    private void OnDsack(uint start, uint end)
    {
        if (_tlpOutstanding && _tlpIsRetrans && end == _tlpEndSeq)
        {
            _tlpDsacked = true;
        }
        int episode = TakeSpuriousRetransmission(start, end, out bool fast);
        if (fast)
        {
            _stats.SpuriousFastRetransmits++;
            _rack.DsackSeen = true;
        }
        if (_undoActive && episode == _episode && _undoRetrans > 0)
        {
            _undoRetrans--;
        }
    }
}
