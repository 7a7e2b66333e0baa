using System.Buffers;
using MeshNet.Userspace.Stack.Ip;

namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>
/// Building segments: what to send next (lost segments first, then new data, RFC 6675
/// NextSeg), within the congestion and receive windows, with sender silly-window avoidance and
/// Nagle (RFC 9293 §3.8.6.2.1, RFC 1122 §4.2.3.4); ACKs, SYNs, RSTs and probes. Segments are
/// written straight from the send buffer into a pooled packet buffer and queued for
/// <see cref="Flush"/>.
/// </summary>
internal sealed partial class TcpControlBlock
{
    /// <summary>Counts transmissions: the order RACK compares (see <see cref="RackState.XmitOrder"/>).</summary>
    private long _xmitOrder;

    /// <summary>True in the states in which data (or our FIN) may still be sent or resent.</summary>
    private bool CanSend => State is TcpState.Established or TcpState.CloseWait or TcpState.FinWait1 or TcpState.Closing or TcpState.LastAck;

    /// <summary>Sends what the windows allow: lost segments first, then new data (at most a batch per call; <see cref="Flush"/> asks for more).</summary>
    private void TrySendData(long now)
    {
        if (!CanSend || _cc is null)
        {
            return;
        }
        int built = 0;
        while (built < OutputBatchSegments)
        {
            long pipe = Pipe;
            long cwnd = _cc.Cwnd;
            if (_rtx.LostBytes > 0)
            {
                int lost = NextLostIndex();
                if (lost >= 0)
                {
                    int length = Math.Min(_rtx[lost].Length, _mss + 1);
                    if (!_forceRetransmit && pipe + Math.Min(length, _mss) > cwnd)
                    {
                        _cwndLimited = true;
                        break;
                    }
                    _forceRetransmit = false;
                    Retransmit(lost, now);
                    built++;
                    continue;
                }
            }
            _forceRetransmit = false;
            long offset = SendOffset(_sndNxt);
            long unsent = _send.Tail - offset;
            bool finPending = _finQueued && !_finSent;
            if (unsent <= 0 && !finPending)
            {
                _cwndLimited = false; // application-limited
                break;
            }
            long windowRoom = _sndWnd - FlightSize;
            int mss = DataMss();
            int len = (int)Math.Min(Math.Max(unsent, 0), mss);
            if (len > 0)
            {
                if (len > windowRoom)
                {
                    // Sender SWS avoidance: a window-limited partial segment only when it is at least
                    // half the largest window the peer offered; otherwise wait (persist timer).
                    if (windowRoom > 0 && (windowRoom >= _maxSndWnd / 2 || windowRoom >= unsent))
                    {
                        len = (int)windowRoom;
                    }
                    else
                    {
                        _cwndLimited = false; // limited by the peer's window, not by cwnd
                        ArmPersistIfIdle(now);
                        break;
                    }
                }
                if (pipe + len > cwnd && pipe > 0)
                {
                    _cwndLimited = true;
                    break;
                }
                // Nagle: a final partial segment waits while data is unacknowledged (not once we close).
                if (len < mss && len == unsent && !_noDelay && !finPending && FlightSize > 0)
                {
                    break;
                }
            }
            // The FIN takes a sequence number too: it goes only where the peer's window has room for it.
            bool fin = finPending && len == unsent && len < windowRoom;
            if (len == 0 && !fin)
            {
                if (finPending)
                {
                    ArmPersistIfIdle(now); // a zero window holds the FIN back; the persist timer probes
                }
                break;
            }
            SendNewSegment(now, len, fin);
            built++;
        }
        if (built == OutputBatchSegments)
        {
            _sendMoreRequested = true;
        }
        if (built > 0 && _rtx.Count > 0)
        {
            if (_timers.RetransmitKind is RetransmitKind.None or RetransmitKind.ZeroWindowProbe)
            {
                ArmRto(now);
            }
            MaybeScheduleTailLossProbe(now);
        }
    }

    /// <summary>
    /// The most new data one segment may carry now: the send MSS less the SACK blocks our ACK
    /// carries while out-of-order data is held or a D-SACK is pending (RFC 6691: the MSS counts
    /// options; Linux tcp_current_mss). Without this a full segment with SACK blocks exceeds the
    /// path MTU and leaves as two IP fragments: two datagrams to lose instead of one.
    /// </summary>
    private int DataMss()
    {
        if (!_sackEnabled || !(_dsackPending || _recv.RangeCount > 0))
        {
            return _mss;
        }
        Span<uint> pairs = stackalloc uint[8];
        int blocks = CollectSackBlocks(pairs, MaxSackBlocks);
        return Math.Max(_mss - TcpOptions.SackLength(blocks), 32);
    }

    /// <summary>SACK blocks that fit in the option space beside the timestamps (3) or alone (4).</summary>
    private int MaxSackBlocks => _tsEnabled ? 3 : 4;

    /// <summary>The first segment marked lost and not resent since (RFC 6675 NextSeg rule 1), or -1.</summary>
    private int NextLostIndex()
    {
        int start = TcpSeq.Le(_lostHintSeq, _sndUna) ? 0 : _rtx.FirstEndingAfter(_lostHintSeq);
        for (int i = start; i < _rtx.Count; i++)
        {
            var flags = _rtx[i].Flags;
            if ((flags & (SentFlags.Lost | SentFlags.Retrans | SentFlags.Sacked)) == SentFlags.Lost)
            {
                _lostHintSeq = _rtx[i].Seq;
                return i;
            }
        }
        _lostHintSeq = _sndNxt;
        return -1;
    }

    /// <summary>Sends <paramref name="length"/> new bytes (and our FIN if <paramref name="fin"/>) at SND.NXT.</summary>
    private void SendNewSegment(long now, int length, bool fin)
    {
        long offset = SendOffset(_sndNxt);
        uint seq = _sndNxt;
        if (FlightSize == 0)
        {
            long idle = now - _lastSendTime;
            if (idle > _rtt.Rto)
            {
                _cc.OnIdleRestart(idle);
            }
            _ackProgressTime = now;
        }
        var flags = TcpFlags.Ack;
        if (length > 0 && offset + length == _send.Tail)
        {
            flags |= TcpFlags.Psh;
        }
        if (fin)
        {
            flags |= TcpFlags.Fin;
            _finSent = true;
        }
        Emit(seq, flags, offset, length);
        _rtx.Add(seq, length + (fin ? 1 : 0), fin, now, ++_xmitOrder);
        _sndNxt += (uint)(length + (fin ? 1 : 0));
        if (_caState != CongestionState.Open)
        {
            _prrOut += length;
        }
        _lastSendTime = now;
    }

    /// <summary>Resends the segment at <paramref name="index"/> of the scoreboard (splitting it first if the MSS shrank).</summary>
    private void Retransmit(int index, long now)
    {
        ref var segment = ref _rtx[index];
        bool fin = segment.Has(SentFlags.Fin);
        int data = segment.Length - (fin ? 1 : 0);
        if (data > _mss)
        {
            _rtx.Split(index, _mss);
            segment = ref _rtx[index];
            fin = false;
            data = _mss;
        }
        var flags = TcpFlags.Ack | (fin ? TcpFlags.Fin : TcpFlags.None);
        Emit(segment.Seq, flags, SendOffset(segment.Seq), data);
        _rtx.MarkRetransmitted(index, now, ++_xmitOrder);
        _lostHintSeq = segment.End;
        if (_caState != CongestionState.Open)
        {
            _prrOut += segment.Length;
        }
        _lastSendTime = now;
        OnRetransmitted(segment.Seq, segment.End, now);
    }

    /// <summary>Sends a pure ACK now (carrying SACK/D-SACK blocks and the current window).</summary>
    private void SendAck(long now)
    {
        if (State is TcpState.Closed or TcpState.Listen or TcpState.SynSent)
        {
            _ackNow = false;
            return;
        }
        if (State == TcpState.SynReceived)
        {
            SendSyn(now);
            return;
        }
        Emit(_sndNxt, TcpFlags.Ack, 0, 0);
    }

    /// <summary>A probe (zero-window or keepalive, as Linux sends them): an ACK with SEQ = SND.UNA - 1 that the peer must answer.</summary>
    private void SendProbe()
    {
        Emit(_sndUna - 1, TcpFlags.Ack, 0, 0);
    }

    /// <summary>
    /// Builds one segment: header, options (timestamps; SACK blocks on ACKs), data copied from
    /// the send buffer, checksum. Queues it and records what an outgoing ACK implies.
    /// </summary>
    private void Emit(uint seq, TcpFlags flags, long dataOffset, int dataLength)
    {
        long now = Now;
        bool timestamps = _tsEnabled && (flags & TcpFlags.Rst) == 0;
        Span<uint> sacks = stackalloc uint[8];
        int sackBlocks = 0;
        bool sackOmitted = false;
        if (_sackEnabled && (flags & TcpFlags.Ack) != 0 && (_dsackPending || _recv.RangeCount > 0))
        {
            sackBlocks = CollectSackBlocks(sacks, timestamps ? 3 : 4);
            // Options and data stay within the send MSS (plus the timestamps it already excludes), so
            // the segment fits the path MTU: a full-sized retransmission carries fewer blocks, or
            // none, and a pure ACK with all of them follows.
            int room = _mss - dataLength - 4;
            int fit = room < 8 ? 0 : Math.Min(sackBlocks, room / 8);
            if (fit < sackBlocks)
            {
                sackOmitted = true;
                sackBlocks = fit;
            }
        }
        int optionsLength = (timestamps ? TcpOptions.TimestampsLength : 0) + TcpOptions.SackLength(sackBlocks);
        int headerLength = TcpSegment.HeaderLength + optionsLength;
        int total = headerLength + dataLength;
        byte[] buffer = _layer.Buffers.Rent(IIpOutput.HeaderRoom + total);
        var packet = buffer.AsSpan(IIpOutput.HeaderRoom, total);
        ushort window = (flags & TcpFlags.Rst) != 0 ? (ushort)0 : SelectWindow();
        uint ack = (flags & TcpFlags.Ack) != 0 ? _rcvNxt : 0;
        TcpSegment.WriteHeader(packet, Key.LocalPort, Key.RemotePort, seq, ack, flags, window, optionsLength);
        int o = TcpSegment.HeaderLength;
        if (timestamps)
        {
            o += TcpOptions.WriteTimestamps(packet[o..], TsNow(now), _tsRecentValid ? _tsRecent : 0);
        }
        if (sackBlocks > 0)
        {
            o += TcpOptions.WriteSack(packet[o..], sacks[..(sackBlocks * 2)]);
        }
        if (dataLength > 0)
        {
            _send.CopyTo(dataOffset, packet.Slice(headerLength, dataLength));
        }
        TcpSegment.SetChecksum(packet, Key.LocalAddress, Key.RemoteAddress);
        Enqueue(buffer, total);
        if ((flags & TcpFlags.Ack) != 0)
        {
            _lastAckSent = _rcvNxt;
            _ackNow = sackOmitted;
            _dsackPending &= sackOmitted && sackBlocks == 0;
            _unackedRcvBytes = 0;
            _pushedUnacked = false;
            _timers.Clear(TcpTimer.DelayedAck);
        }
    }

    /// <summary>Sends our SYN (SYN-SENT) or SYN-ACK (SYN-RECEIVED) with our options.</summary>
    private void SendSyn(long now)
    {
        bool synAck = State == TcpState.SynReceived;
        bool windowScale = !synAck || _wsEnabled;
        bool sack = !synAck || _sackEnabled;
        bool timestamps = !synAck || _tsEnabled;
        int optionsLength = TcpOptions.SynLength(windowScale, sack, timestamps);
        int total = TcpSegment.HeaderLength + optionsLength;
        byte[] buffer = _layer.Buffers.Rent(IIpOutput.HeaderRoom + total);
        var packet = buffer.AsSpan(IIpOutput.HeaderRoom, total);
        var flags = TcpFlags.Syn | (synAck ? TcpFlags.Ack : TcpFlags.None);
        ushort window = (ushort)Math.Min(_rcvBufSize, 65535);
        TcpSegment.WriteHeader(packet, Key.LocalPort, Key.RemotePort, _iss, synAck ? _rcvNxt : 0, flags, window, optionsLength);
        uint tsVal = TsNow(now);
        TcpOptions.WriteSyn(packet[TcpSegment.HeaderLength..], (ushort)Math.Min(_advMss, 65535), windowScale ? _rcvWndScale : -1, sack, timestamps,
            tsVal, synAck && _tsRecentValid ? _tsRecent : 0);
        TcpSegment.SetChecksum(packet, Key.LocalAddress, Key.RemoteAddress);
        Enqueue(buffer, total);
        if (synAck)
        {
            _rcvAdvEdge = _rcvNxt + window;
            _lastAckSent = _rcvNxt;
            _ackNow = false;
        }
    }

    /// <summary>A RST for an unacceptable ACK: &lt;SEQ=SEG.ACK&gt;&lt;CTL=RST&gt; (RFC 9293 §3.10.7.3/4).</summary>
    private void SendResetForAck(uint segAck) => SendReset(segAck, withAck: false);

    /// <summary>Sends a RST with SEQ = <paramref name="seq"/> (and our RCV.NXT as ACK when <paramref name="withAck"/>).</summary>
    private void SendReset(uint seq, bool withAck)
    {
        var flags = TcpFlags.Rst | (withAck ? TcpFlags.Ack : TcpFlags.None);
        int total = TcpSegment.HeaderLength;
        byte[] buffer = _layer.Buffers.Rent(IIpOutput.HeaderRoom + total);
        var packet = buffer.AsSpan(IIpOutput.HeaderRoom, total);
        TcpSegment.WriteHeader(packet, Key.LocalPort, Key.RemotePort, seq, withAck ? _rcvNxt : 0, flags, 0, 0);
        TcpSegment.SetChecksum(packet, Key.LocalAddress, Key.RemoteAddress);
        Enqueue(buffer, total);
    }

    /// <summary>Arms the zero-window probe timer when data waits, nothing is in flight and nothing else will wake the sender.</summary>
    private void ArmPersistIfIdle(long now)
    {
        if (_rtx.Count > 0 || _timers.RetransmitKind == RetransmitKind.ZeroWindowProbe)
        {
            return;
        }
        if (_probesUnanswered == 0)
        {
            _probeStart = now;
        }
        long interval = Math.Clamp(_rtt.BaseRto << Math.Min(_persistBackoff, 20), RttEstimator.MinRto, RttEstimator.MaxRto);
        ArmRetransmit(RetransmitKind.ZeroWindowProbe, now + interval);
    }

    /// <summary>
    /// The persist timer fired (RFC 9293 §3.8.6.1): if the window has room, send what fits
    /// (overriding silly-window avoidance); otherwise send a zero-window probe and back off. An
    /// unanswered peer is given up on after the user timeout; one that answers keeps the
    /// connection open however long its window stays closed.
    /// </summary>
    private void OnPersistTimeout(long now)
    {
        long unsent = _send.Tail - SendOffset(_sndNxt);
        if ((unsent <= 0 && !(_finQueued && !_finSent)) || _rtx.Count > 0)
        {
            return;
        }
        if (_probesUnanswered > 0 && now - _probeStart >= (long)_options.UserTimeout.TotalMicroseconds)
        {
            TcpLog.TimedOut(_ctx.Logger, Key, State, "zero-window probes unanswered");
            Destroy(System.Net.Sockets.SocketError.TimedOut);
            return;
        }
        long room = _sndWnd - FlightSize;
        if (room > 0)
        {
            int length = (int)Math.Min(Math.Min(Math.Max(unsent, 0), DataMss()), room);
            bool fin = _finQueued && !_finSent && length == unsent && length < room;
            if (length == 0 && !fin)
            {
                return;
            }
            SendNewSegment(now, length, fin);
            ArmRto(now);
            return;
        }
        SendProbe();
        _probesUnanswered++;
        _persistBackoff++;
        ArmPersistIfIdle(now);
    }
}
