using System.Net.Sockets;
using MeshNet.Userspace.Stack.Ip;

namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>
/// What happens when a deadline passes: retransmission (SYN, SYN-ACK, data), tail loss probe,
/// RACK reordering timeout, zero-window probe, delayed ACK, keepalive, connect timeout,
/// FIN-WAIT-2 timeout and TIME-WAIT expiry; and ICMP errors.
/// </summary>
internal sealed partial class TcpControlBlock
{
    private SocketError _softError;

    private void HandleTimers(long now)
    {
        if (_timers.Expired(TcpTimer.Linger, now))
        {
            _timers.Clear(TcpTimer.Linger);
            OnLinger();
            if (_destroyed)
            {
                return;
            }
        }
        if (_timers.Expired(TcpTimer.Retransmit, now))
        {
            var kind = _timers.RetransmitKind;
            _timers.Clear(TcpTimer.Retransmit);
            switch (kind)
            {
                case RetransmitKind.Rto:
                    OnRtoExpired(now);
                    break;
                case RetransmitKind.TailLossProbe:
                    OnTailLossProbe(now);
                    break;
                case RetransmitKind.ReorderTimeout:
                    if (RackDetectLoss(now) && _caState == CongestionState.Open)
                    {
                        EnterRecovery(now);
                    }
                    if (_timers.RetransmitKind == RetransmitKind.None && _rtx.Count > 0)
                    {
                        ArmRto(now);
                    }
                    break;
                case RetransmitKind.ZeroWindowProbe:
                    OnPersistTimeout(now);
                    break;
            }
            if (_destroyed)
            {
                return;
            }
        }
        if (_timers.Expired(TcpTimer.DelayedAck, now))
        {
            _timers.Clear(TcpTimer.DelayedAck);
            if (_unackedRcvBytes > 0 || _dsackPending)
            {
                _ackNow = true;
            }
        }
        if (_timers.Expired(TcpTimer.KeepAlive, now))
        {
            _timers.Clear(TcpTimer.KeepAlive);
            OnKeepAlive(now);
            if (_destroyed)
            {
                return;
            }
        }
        if (_timers.Expired(TcpTimer.Retry, now))
        {
            _timers.Clear(TcpTimer.Retry);
            WakeWriter();
        }
        TrySendData(now);
        if (_ackNow)
        {
            SendAck(now);
        }
    }

    private void OnRtoExpired(long now)
    {
        switch (State)
        {
            case TcpState.SynSent:
            case TcpState.SynReceived:
                if (State == TcpState.SynReceived && _synRetries >= MaxSynAckRetries)
                {
                    TcpLog.TimedOut(_ctx.Logger, Key, State, "handshake");
                    Destroy(IsPassive ? SocketError.Success : SocketError.TimedOut);
                    return;
                }
                _synRetries++;
                _synRetransmitted = true;
                _rtt.Backoff++;
                _ctx.Counters.TcpRetransmission();
                SendSyn(now);
                ArmRetransmit(RetransmitKind.Rto, now + _rtt.Rto);
                return;
            default:
                OnRetransmissionTimeout(now);
                return;
        }
    }

    private void OnLinger()
    {
        switch (State)
        {
            case TcpState.SynSent:
            case TcpState.SynReceived when !IsPassive:
                TcpLog.TimedOut(_ctx.Logger, Key, State, "connect");
                Destroy(_softError != SocketError.Success ? _softError : SocketError.TimedOut);
                break;
            case TcpState.FinWait2:
                TcpLog.TimedOut(_ctx.Logger, Key, State, "FIN-WAIT-2");
                Destroy(SocketError.Success);
                break;
            case TcpState.TimeWait:
                Destroy(SocketError.Success);
                break;
        }
    }

    /// <summary>
    /// Keepalive (RFC 9293 §3.8.4, RFC 1122 §4.2.3.6): after <see cref="TcpStackOptions.KeepAliveIdle"/>
    /// without hearing from the peer, probe every <see cref="TcpStackOptions.KeepAliveInterval"/>;
    /// give up after <see cref="TcpStackOptions.KeepAliveProbes"/> unanswered probes.
    /// </summary>
    private void OnKeepAlive(long now)
    {
        if (_options.KeepAliveIdle is not { } idleOption || State is not (TcpState.Established or TcpState.CloseWait or TcpState.FinWait2))
        {
            return;
        }
        long idle = (long)idleOption.TotalMicroseconds;
        long interval = (long)_options.KeepAliveInterval.TotalMicroseconds;
        long quiet = now - _lastReceiveTime;
        if (_keepAliveProbes == 0 && quiet < idle)
        {
            _timers.Set(TcpTimer.KeepAlive, _lastReceiveTime + idle);
            return;
        }
        if (_rtx.Count > 0 || _send.Tail > SendOffset(_sndNxt))
        {
            _timers.Set(TcpTimer.KeepAlive, now + interval); // data outstanding: the RTO or persist timer watches the peer
            return;
        }
        if (_keepAliveProbes >= _options.KeepAliveProbes)
        {
            TcpLog.TimedOut(_ctx.Logger, Key, State, "keepalive");
            Destroy(_softError != SocketError.Success ? _softError : SocketError.TimedOut);
            return;
        }
        SendProbe();
        _keepAliveProbes++;
        _timers.Set(TcpTimer.KeepAlive, now + interval);
    }

    /// <summary>
    /// An ICMP error quoting one of our segments with sequence number <paramref name="seq"/>.
    /// Hard errors during the handshake fail the connect (RFC 1122 §4.2.3.9); later they are
    /// remembered as the error to report should the connection time out. Packet-too-big lowers
    /// the MSS (RFC 1191/8201) and resends.
    /// </summary>
    public void OnIcmpError(IcmpErrorKind kind, int mtu, uint seq)
    {
        lock (Sync)
        {
            if (_destroyed)
            {
                return;
            }
            // Only errors about data in flight are believed (RFC 5927 §4.1).
            if (!(TcpSeq.Le(_sndUna, seq) && TcpSeq.Lt(seq, _sndNxt)) && !(State == TcpState.SynSent && seq == _iss))
            {
                return;
            }
            long now = Now;
            switch (kind)
            {
                case IcmpErrorKind.PacketTooBig:
                    int payload = mtu - (Key.RemoteAddress.IsIPv4 ? 20 : 40) - TcpSegment.HeaderLength;
                    int mss = Math.Max(payload, Key.RemoteAddress.IsIPv4 ? 536 : 1220);
                    if (mss < _advMss)
                    {
                        _advMss = mss;
                        UpdateMss();
                        for (int i = 0; i < _rtx.Count; i++)
                        {
                            if (!_rtx[i].Has(SentFlags.Sacked) && _rtx[i].Length > _mss)
                            {
                                _rtx.MarkLost(i);
                            }
                        }
                        _lostHintSeq = _sndUna;
                        TrySendData(now);
                    }
                    break;
                case IcmpErrorKind.PortUnreachable:
                case IcmpErrorKind.HostUnreachable:
                case IcmpErrorKind.AdministrativelyProhibited:
                    var error = kind switch
                    {
                        IcmpErrorKind.PortUnreachable => SocketError.ConnectionRefused,
                        IcmpErrorKind.AdministrativelyProhibited => SocketError.AccessDenied, // a filter refused us
                        _ => SocketError.HostUnreachable,
                    };
                    if (State == TcpState.SynSent)
                    {
                        Destroy(error);
                        break;
                    }
                    _softError = error;
                    break;
                case IcmpErrorKind.TimeExceeded:
                    _softError = SocketError.HostUnreachable;
                    break;
            }
            ScheduleTimers();
        }
        Flush();
    }
}
