namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>Inspection of a connection's internals (tests and diagnostics).</summary>
internal sealed partial class TcpControlBlock
{
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
                _sndWndScale, _rcvWndScale, _sackEnabled, _tsEnabled, _rack.ReoWndMult, _rack.ReorderingSeen, _rtt.MinRtt);
        }
    }
}

/// <summary>A snapshot of a connection's internals (tests and diagnostics).</summary>
internal readonly record struct TcpControlBlockSnapshot(
    TcpState State, uint SndUna, uint SndNxt, long SndWnd, uint RcvNxt, long RcvWnd, int Mss, long Cwnd, long SsThresh, long Pipe,
    CongestionState CongestionState, long Srtt, long Rto, int Backoff, long ReceiveBuffer, long SendBuffered, long ReceiveAvailable,
    long BufferBytes, int InFlightSegments, RetransmitKind RetransmitTimer, int SendScale, int ReceiveScale, bool Sack, bool Timestamps,
    int ReoWndMult, bool ReorderingSeen, long MinRtt);

/// <summary>Loss-recovery events of one connection (diagnostics and tests).</summary>
internal struct TcpStatistics
{
    public int Timeouts;
    public int FastRecoveries;
    public int TailLossProbes;
    public int Undos;
    public int TimeoutRetransmits;
    public int FastRetransmits;

    /// <summary>Fast retransmissions proven spurious (by a D-SACK, or by timestamps at an undo).</summary>
    public int SpuriousFastRetransmits;

    /// <summary>Times RACK widened its reordering window (each doubles the multiplier).</summary>
    public int ReoWndWidenings;

    /// <summary>The widest reordering window multiplier reached.</summary>
    public int MaxReoWndMult;

    public override readonly string ToString() =>
        $"timeouts={Timeouts} (retransmits {TimeoutRetransmits}) recoveries={FastRecoveries} (retransmits {FastRetransmits}, " +
        $"proven spurious {SpuriousFastRetransmits}) tlp={TailLossProbes} undos={Undos} reo_wnd widenings={ReoWndWidenings} (max x{MaxReoWndMult})";
}
