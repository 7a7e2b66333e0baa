using MeshNet.Userspace.Stack.Ip;

namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>Opening a connection: active open (SYN), passive open (SYN-ACK), and completion from a SYN cookie.</summary>
internal sealed partial class TcpControlBlock
{
    /// <summary>Active open (RFC 9293 §3.10.1): sends our SYN and arms the retransmission and connect timeouts.</summary>
    public void StartActiveOpen()
    {
        lock (Sync)
        {
            long now = Now;
            _iss = _layer.Isn.Next(Key);
            _sndUna = _iss;
            _sndNxt = _iss + 1;
            _recoverSeq = _iss;
            SetState(TcpState.SynSent);
            _synSentTime = now;
            SendSyn(now);
            ArmRetransmit(RetransmitKind.Rto, now + _rtt.Rto);
            _timers.Set(TcpTimer.Linger, now + (long)_options.ConnectTimeout.TotalMicroseconds);
            ScheduleTimers();
        }
        Flush();
    }

    /// <summary>Passive open: a listener's SYN creates the connection in SYN-RECEIVED and answers with SYN-ACK.</summary>
    public void StartPassiveOpen(ref TcpSegment syn)
    {
        lock (Sync)
        {
            long now = Now;
            ApplySynOptions(ref syn.Options, now);
            _irs = syn.Seq;
            _rcvNxt = syn.Seq + 1;
            _recv.Reset(0);
            _iss = _layer.Isn.Next(Key);
            _sndUna = _iss;
            _sndNxt = _iss + 1;
            _recoverSeq = _iss;
            _sndWnd = syn.Window;
            _maxSndWnd = _sndWnd;
            _sndWl1 = syn.Seq;
            _sndWl2 = _iss;
            SetState(TcpState.SynReceived);
            _synSentTime = now;
            SendSyn(now);
            ArmRetransmit(RetransmitKind.Rto, now + _rtt.Rto);
            ScheduleTimers();
        }
        Flush();
    }

    /// <summary>
    /// Completes a connection whose SYN-ACK was a SYN cookie: the ACK carries our ISS + 1, and the
    /// cookie gave back the peer's MSS (and window scale and SACK, when timestamps carried them).
    /// Enters ESTABLISHED directly and processes the ACK's data, if any.
    /// </summary>
    public void StartFromCookie(ref TcpSegment ack, uint iss, int peerMss, int peerWindowScale, bool sackPermitted)
    {
        lock (Sync)
        {
            long now = Now;
            _iss = iss;
            _irs = ack.Seq - 1;
            _rcvNxt = ack.Seq;
            _recv.Reset(0);
            _peerMss = peerMss;
            _tsEnabled = ack.Options.HasTimestamps;
            if (_tsEnabled)
            {
                _tsRecent = ack.Options.TsVal;
                _tsRecentTime = now;
                _tsRecentValid = true;
            }
            _wsEnabled = peerWindowScale >= 0;
            _sndWndScale = _wsEnabled ? peerWindowScale : 0;
            if (!_wsEnabled)
            {
                _rcvWndScale = 0;
                _rcvBufSize = Math.Min(_rcvBufSize, 65535);
            }
            _sackEnabled = sackPermitted;
            UpdateMss();
            _rcvAdvEdge = _rcvNxt + (uint)Math.Min(_rcvBufSize, 65535);
            _lastAckSent = _rcvNxt;
            _sndUna = iss + 1;
            _sndNxt = iss + 1;
            _recoverSeq = _sndUna;
            _sndWnd = (long)ack.Window << _sndWndScale;
            _maxSndWnd = _sndWnd;
            _sndWl1 = ack.Seq;
            _sndWl2 = ack.Ack;
            _rtt.SetInitialRto(RttEstimator.InitialRto);
            OnEstablished(now);
            if (!_destroyed && (ack.Payload.Length > 0 || ack.Fin))
            {
                ProcessData(ack.Seq, ack.Payload, ack.Fin, ref ack.Options, now);
            }
            if (!_destroyed)
            {
                FinishInput(now);
            }
        }
        Flush();
    }

    /// <summary>The MSS value the stack advertises toward <paramref name="output"/>'s path.</summary>
    internal static int AdvertisedMss(IIpOutput output, Net.NetAddress remote) =>
        Math.Clamp(output.MaxTransportPayload(remote) - TcpSegment.HeaderLength, 64, 65495);
}
