namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>
/// Loss detection and recovery: RACK (RFC 8985 §6) and SACK-based recovery (RFC 6675) paced
/// by PRR (RFC 6937); NewReno fast retransmit/recovery without SACK (RFC 6582); tail loss
/// probes (RFC 8985 §7); retransmission timeouts (RFC 6298 §5, RFC 5681 §3.1); and undo of
/// spurious reductions detected by D-SACK (RFC 3708) or timestamps (Eifel, RFC 3522).
/// </summary>
internal sealed partial class TcpControlBlock
{
    private uint _recoverSeq;
    private int _dupAcks;
    private long _prrDelivered;
    private long _prrOut;
    private long _recoverFs;
    private bool _forceRetransmit;
    private uint _lostHintSeq;

    // ---- undo (Linux undo_marker / undo_retrans / retrans_stamp) ----
    private bool _undoActive;
    private uint _undoMarker;
    private int _undoRetrans;
    private int _undoRetransTotal;
    private uint _retransStamp;
    private bool _retransStampSet;

    private int _episode;

    /// <summary>
    /// The most recent retransmissions (start, end, episode, made in fast recovery), overwritten
    /// oldest first: a D-SACK that covers one proves that retransmission spurious (counted
    /// once). Network duplicates of data we never resent are not mistaken for it.
    /// </summary>
    private (uint Start, uint End, int Episode, bool Fast)[]? _recentRetrans;
    private int _recentRetransNext;
    private const int RecentRetransCapacity = 64;

    // ---- tail loss probe ----
    private bool _tlpOutstanding;
    private uint _tlpEndSeq;
    private bool _tlpIsRetrans;
    private bool _tlpDsacked;

    // ---- zero-window probes ----
    private int _persistBackoff;
    private int _probesUnanswered;
    private long _probeStart;

    // ---- keepalive ----
    private int _keepAliveProbes;

    // ---- statistics (diagnostics and tests) ----
    private TcpStatistics _stats;

    private void StartUndoEpisode()
    {
        _undoActive = true;
        _undoMarker = _sndUna;
        _undoRetrans = 0;
        _undoRetransTotal = 0;
        _retransStampSet = false;
        _episode++;
        _cc.SaveUndo();
    }

    /// <summary>Bookkeeping for every retransmitted segment.</summary>
    private void OnRetransmitted(uint start, uint end, long now)
    {
        _recentRetrans ??= new (uint, uint, int, bool)[RecentRetransCapacity];
        _recentRetrans[_recentRetransNext] = (start, end, _undoActive ? _episode : -1, _caState == CongestionState.Recovery);
        _recentRetransNext = (_recentRetransNext + 1) % RecentRetransCapacity;
        _ctx.Counters.TcpRetransmission();
        switch (_caState)
        {
            case CongestionState.Loss:
                _stats.TimeoutRetransmits++;
                break;
            case CongestionState.Recovery:
                _stats.FastRetransmits++;
                break;
        }
        if (_undoActive)
        {
            _undoRetrans++;
            _undoRetransTotal++;
            if (!_retransStampSet)
            {
                _retransStamp = TsNow(now);
                _retransStampSet = true;
            }
        }
    }

    /// <summary>
    /// A D-SACK for [start, end): when it covers a recent retransmission, that retransmission
    /// was spurious (counted once); returns its episode (-1 when none or outside any episode)
    /// and whether it was a fast (loss-detection) retransmission.
    /// </summary>
    private int TakeSpuriousRetransmission(uint start, uint end, out bool fast)
    {
        fast = false;
        if (_recentRetrans is null)
        {
            return -1;
        }
        for (int i = 0; i < RecentRetransCapacity; i++)
        {
            var (s, e, episode, wasFast) = _recentRetrans[i];
            if (s != e && TcpSeq.Lt(start, e) && TcpSeq.Lt(s, end))
            {
                _recentRetrans[i] = default;
                _ctx.Counters.TcpSpuriousRetransmission();
                fast = wasFast;
                return episode;
            }
        }
        return -1;
    }

    /// <summary>Forgets the current episode's retransmissions (an undo already counted them spurious).</summary>
    private void ForgetEpisodeRetransmissions()
    {
        if (_recentRetrans is null)
        {
            return;
        }
        for (int i = 0; i < RecentRetransCapacity; i++)
        {
            if (_recentRetrans[i].Episode == _episode)
            {
                _recentRetrans[i] = default;
            }
        }
    }

    /// <summary>Fast recovery begins (RACK or RFC 6675 found a loss): ssthresh from the algorithm, PRR state reset.</summary>
    private void EnterRecovery(long now)
    {
        StartUndoEpisode();
        _cc.OnCongestionEvent(now, FlightSize);
        _stats.FastRecoveries++;
        _caState = CongestionState.Recovery;
        _recoverSeq = _sndNxt;
        _prrDelivered = 0;
        _prrOut = 0;
        _recoverFs = Math.Max(1, FlightSize);
        _forceRetransmit = true; // RFC 6675 §5 (4.3): resend the first lost segment now
        _tlpOutstanding = false;
    }

    private void ExitRecovery(long now)
    {
        _caState = CongestionState.Open;
        if (_cc.SsThresh < CongestionControl.InfiniteSsThresh)
        {
            _cc.Cwnd = _cc.SsThresh; // RFC 6937: cwnd = ssthresh at the end of recovery
        }
        _cc.OnRecoveryEnd(now);
        if (_rack.ReoWndPersist > 0)
        {
            _rack.ReoWndPersist--;
        }
        _dupAcks = 0;
    }

    /// <summary>
    /// PRR (RFC 6937 §3.1, with the slow-start reduction bound): sets cwnd = pipe + sndcnt so
    /// the sender releases data in proportion to what the ACKs report delivered.
    /// </summary>
    private void PrrOnAck(long deliveredData)
    {
        _prrDelivered += deliveredData;
        long pipe = Pipe;
        long ssthresh = _cc.SsThresh;
        long sndcnt;
        if (pipe > ssthresh)
        {
            Int128 target = (((Int128)_prrDelivered * ssthresh) + _recoverFs - 1) / _recoverFs;
            sndcnt = (long)Int128.Min(target, long.MaxValue / 2) - _prrOut;
        }
        else
        {
            long limit = Math.Max(_prrDelivered - _prrOut, deliveredData) + _mss;
            sndcnt = Math.Min(ssthresh - pipe, limit);
        }
        sndcnt = Math.Max(sndcnt, 0);
        _cc.Cwnd = pipe + sndcnt;
    }

    /// <summary>NewReno without SACK (RFC 6582 §3.2): duplicate ACK counting, window inflation, partial and full ACKs.</summary>
    private void NewRenoOnAck(bool duplicate, long acked, long now)
    {
        if (_caState == CongestionState.Recovery)
        {
            if (acked > 0)
            {
                if (TcpSeq.Ge(_sndUna, _recoverSeq))
                {
                    _cc.Cwnd = Math.Min(_cc.SsThresh, Math.Max(FlightSize, _mss) + _mss); // full ACK: deflate (step 3, option 1)
                    _caState = CongestionState.Open;
                    _dupAcks = 0;
                    _cc.OnRecoveryEnd(now);
                }
                else
                {
                    // Partial ACK: resend the next hole; deflate by the amount acknowledged, add back one MSS.
                    if (_rtx.Count > 0)
                    {
                        _rtx.MarkLost(0);
                        _lostHintSeq = _sndUna;
                        _forceRetransmit = true;
                    }
                    long cwnd = _cc.Cwnd - acked;
                    if (acked >= _mss)
                    {
                        cwnd += _mss;
                    }
                    _cc.Cwnd = cwnd;
                }
            }
            else if (duplicate)
            {
                _cc.Cwnd += _mss; // inflation for each segment that left the network
            }
            return;
        }
        if (_caState == CongestionState.Loss)
        {
            return;
        }
        if (!duplicate)
        {
            if (acked > 0)
            {
                _dupAcks = 0;
            }
            return;
        }
        _dupAcks++;
        if (_dupAcks == 3 && TcpSeq.Gt(_sndUna, _recoverSeq))
        {
            StartUndoEpisode();
            _cc.OnCongestionEvent(now, FlightSize);
            _stats.FastRecoveries++;
            _caState = CongestionState.Recovery;
            _recoverSeq = _sndNxt;
            _rtx.MarkLost(0);
            _lostHintSeq = _sndUna;
            _forceRetransmit = true;
            _cc.Cwnd = _cc.SsThresh + (3L * _mss);
            _tlpOutstanding = false;
        }
    }

    /// <summary>
    /// RACK_detect_loss (RFC 8985 §6.2 step 5): a segment sent before the most recently
    /// delivered one by more than the reordering window (plus the RTT) is lost; for the rest the
    /// reordering timer is armed. Returns true when something was newly marked lost.
    /// </summary>
    private bool RackDetectLoss(long now)
    {
        _rack.Advanced = false;
        long reoWnd = _rack.ReoWnd(_caState != CongestionState.Open, _rtx.SackedSegments, _rtt.MinRtt, _rtt.Srtt);
        long timeout = 0;
        bool lost = false;
        bool retransInFlight = _rtx.RetransBytes > 0;
        for (int i = 0; i < _rtx.Count; i++)
        {
            ref var segment = ref _rtx[i];
            if (segment.Has(SentFlags.Sacked) || (segment.Has(SentFlags.Lost) && !segment.Has(SentFlags.Retrans)))
            {
                continue;
            }
            if (segment.XmitOrder >= _rack.XmitOrder)
            {
                if (!retransInFlight && !segment.Has(SentFlags.EverRetransmitted))
                {
                    break; // originals are sent in sequence order: every later one was sent later still
                }
                continue;
            }
            long remaining = segment.XmitTime + _rack.Rtt + reoWnd - now;
            if (remaining <= 0)
            {
                _rtx.MarkLost(i);
                lost = true;
            }
            else
            {
                timeout = Math.Max(timeout, remaining);
            }
        }
        if (lost)
        {
            _lostHintSeq = _sndUna;
        }
        if (timeout > 0)
        {
            ArmRetransmit(RetransmitKind.ReorderTimeout, now + timeout);
        }
        else if (_timers.RetransmitKind == RetransmitKind.ReorderTimeout)
        {
            ArmRto(now);
        }
        return lost;
    }

    /// <summary>Eifel (RFC 3522) and D-SACK (RFC 3708) detection of a spurious reduction, then undo.</summary>
    private void CheckUndo(ref TcpOptions options, bool ackAdvanced, long now)
    {
        bool spurious = false;
        if (ackAdvanced && _caState != CongestionState.Open && _tsEnabled && _retransStampSet &&
            options.HasTimestamps && options.TsEcr != 0 && TcpSeq.Lt(options.TsEcr, _retransStamp))
        {
            spurious = true; // the ACK echoes a timestamp older than our first retransmission: the original arrived
        }
        else if (_undoRetransTotal > 0 && _undoRetrans == 0)
        {
            spurious = true; // every retransmission of the episode was D-SACKed
        }
        if (spurious)
        {
            Undo(now);
        }
    }

    private void Undo(long now)
    {
        _stats.Undos++;
        int spurious = _undoRetrans;
        for (int i = 0; i < spurious; i++)
        {
            _ctx.Counters.TcpSpuriousRetransmission();
        }
        ForgetEpisodeRetransmissions();
        _undoActive = false;
        _undoRetrans = 0;
        _retransStampSet = false;
        _cc.Undo();
        _rack.ReorderingSeen = true; // the "loss" was reordering or delay
        if (_caState == CongestionState.Recovery)
        {
            // RACK (or the DupThresh rule) deemed lost what was only reordered: widen the reordering
            // window now, as the D-SACKs for these retransmissions would a round trip later (their
            // records are forgotten above, so those D-SACKs do not count it twice).
            _stats.SpuriousFastRetransmits += spurious;
            _rack.DsackSeen = true;
        }
        for (int i = 0; i < _rtx.Count; i++)
        {
            if (_rtx[i].Has(SentFlags.Lost))
            {
                _rtx.UnmarkLost(i);
            }
        }
        if (_caState != CongestionState.Open)
        {
            _caState = CongestionState.Open;
            _cc.OnRecoveryEnd(now);
        }
        _dupAcks = 0;
        _forceRetransmit = false;
    }

    /// <summary>RTO expiry for a synchronized connection (RFC 6298 §5.4-5.7, RFC 5681 §3.1).</summary>
    private void OnRetransmissionTimeout(long now)
    {
        if (_rtx.Count == 0)
        {
            return;
        }
        if (now - _ackProgressTime >= (long)_options.UserTimeout.TotalMicroseconds)
        {
            TcpLog.TimedOut(_ctx.Logger, Key, State, "user timeout");
            Destroy(_softError != System.Net.Sockets.SocketError.Success ? _softError : System.Net.Sockets.SocketError.TimedOut);
            return;
        }
        if (_caState == CongestionState.Open)
        {
            StartUndoEpisode();
        }
        if (_caState != CongestionState.Loss || _rtt.Backoff == 0)
        {
            _cc.OnRetransmissionTimeout(now, FlightSize);
        }
        else
        {
            _cc.Cwnd = _mss; // repeated timeouts keep ssthresh (RFC 5681 §3.1)
        }
        _stats.Timeouts++;
        _caState = CongestionState.Loss;
        _recoverSeq = _sndNxt;
        if (_rtt.Backoff > 0 && _rtx.SackedBytes > 0)
        {
            _rtx.ClearSacks(); // a repeated timeout: the peer may have reneged on its SACKs (RFC 6675 §5.1)
        }
        for (int i = 0; i < _rtx.Count; i++)
        {
            _rtx.MarkLost(i);
        }
        _lostHintSeq = _sndUna;
        _dupAcks = 0;
        _tlpOutstanding = false;
        _rtt.Backoff++;
        _forceRetransmit = true;
        TrySendData(now);
        ArmRto(now);
    }

    /// <summary>Arms the RTO (never past the user timeout's deadline).</summary>
    private void ArmRto(long now)
    {
        long due = now + _rtt.Rto;
        if (Synchronized)
        {
            due = Math.Min(due, _ackProgressTime + (long)_options.UserTimeout.TotalMicroseconds);
        }
        ArmRetransmit(RetransmitKind.Rto, Math.Max(due, now));
    }

    private void ArmRetransmit(RetransmitKind kind, long due) => _timers.SetRetransmit(kind, due);

    // ------------------------------------------------------------------ tail loss probe

    /// <summary>
    /// Schedules a probe timeout (RFC 8985 §7.2) after sending or on an ACK: with SACK, in the
    /// Open state, with data in flight and no probe outstanding. PTO = 2 SRTT, plus the
    /// worst-case delayed-ACK time when one segment is in flight, never beyond the RTO.
    /// </summary>
    private void MaybeScheduleTailLossProbe(long now)
    {
        if (!_sackEnabled || _caState != CongestionState.Open || _tlpOutstanding || _rtx.Count == 0 ||
            _timers.RetransmitKind is RetransmitKind.ReorderTimeout or RetransmitKind.ZeroWindowProbe || !Synchronized)
        {
            return;
        }
        long pto;
        if (_rtt.HasSample)
        {
            pto = 2 * _rtt.Srtt;
            pto += _rtx.Count == 1 ? 200_000 : 2_000;
            pto = Math.Max(pto, 10_000);
        }
        else
        {
            pto = RttEstimator.InitialRto;
        }
        long rtoDue = _timers.RetransmitKind == RetransmitKind.Rto ? _timers[TcpTimer.Retransmit] : now + _rtt.Rto;
        long due = Math.Min(now + pto, rtoDue);
        if (due < rtoDue)
        {
            ArmRetransmit(RetransmitKind.TailLossProbe, due);
        }
    }

    /// <summary>The probe timer fired (RFC 8985 §7.3): send one new segment, or resend the last one.</summary>
    private void OnTailLossProbe(long now)
    {
        if (_rtx.Count == 0 || _caState != CongestionState.Open)
        {
            if (_rtx.Count > 0)
            {
                ArmRto(now);
            }
            return;
        }
        long unsent = _send.Tail - SendOffset(_sndNxt);
        long room = _sndWnd - FlightSize;
        if (unsent > 0 && room > 0)
        {
            int length = (int)Math.Min(Math.Min(unsent, DataMss()), room);
            SendNewSegment(now, length, fin: _finQueued && !_finSent && length == unsent);
            _tlpIsRetrans = false;
        }
        else
        {
            int last = _rtx.Count - 1;
            if (!_rtx[last].Has(SentFlags.Sacked))
            {
                Retransmit(last, now);
            }
            _tlpIsRetrans = true;
        }
        _stats.TailLossProbes++;
        _tlpOutstanding = true;
        _tlpDsacked = false;
        _tlpEndSeq = _sndNxt;
        ArmRto(now);
    }

    /// <summary>
    /// TLP_process_ack (RFC 8985 §7.4): once the probe is acknowledged, a loss the probe
    /// repaired gets a congestion response; a D-SACKed probe or new-data probe does not.
    /// </summary>
    private void TlpOnAck(uint ack, bool dsack, long now)
    {
        if (!TcpSeq.Ge(ack, _tlpEndSeq))
        {
            return;
        }
        if (!_tlpIsRetrans || _tlpDsacked)
        {
            _tlpOutstanding = false;
            return;
        }
        if (TcpSeq.Gt(ack, _tlpEndSeq) || !dsack)
        {
            _tlpOutstanding = false;
            if (_caState == CongestionState.Open)
            {
                _cc.OnCongestionEvent(now, FlightSize);
                _cc.Cwnd = _cc.SsThresh;
                _cc.OnRecoveryEnd(now);
            }
        }
    }
}
