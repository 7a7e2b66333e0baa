namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>
/// A congestion control algorithm: owns the congestion window and slow-start threshold (in
/// bytes, 64-bit and clamped to [1 MSS, <see cref="MaxCwnd"/>] so no arithmetic can overflow)
/// and decides how they grow on ACKs and shrink on congestion. Loss detection and recovery
/// (which segments to resend, PRR's pacing of the reduction) belong to the connection.
/// </summary>
/// <remarks>Not thread-safe: the owning connection's lock guards it.</remarks>
internal abstract class CongestionControl
{
    /// <summary>The largest congestion window: 1 GiB (beyond any buffer the stack allows).</summary>
    public const long MaxCwnd = 1L << 30;

    /// <summary>The "infinite" initial slow-start threshold.</summary>
    public const long InfiniteSsThresh = long.MaxValue / 4;

    private long _cwnd;
    private long _priorCwnd;
    private long _priorSsThresh;

    protected CongestionControl(int mss)
    {
        Mss = mss;
        _cwnd = InitialWindow(mss);
        SsThresh = InfiniteSsThresh;
    }

    /// <summary>The sender MSS (bytes of data per full segment).</summary>
    public int Mss { get; set; }

    /// <summary>The congestion window in bytes.</summary>
    public long Cwnd
    {
        get => _cwnd;
        set => _cwnd = Math.Clamp(value, Mss, MaxCwnd);
    }

    /// <summary>The slow-start threshold in bytes.</summary>
    public long SsThresh { get; set; }

    public bool InSlowStart => Cwnd < SsThresh;

    /// <summary>The initial window of RFC 6928: min(10 MSS, max(2 MSS, 14600 bytes)).</summary>
    public static long InitialWindow(int mss) => Math.Min(10L * mss, Math.Max(2L * mss, 14600));

    /// <summary>
    /// An ACK acknowledged <paramref name="acked"/> new bytes outside loss recovery.
    /// <paramref name="cwndLimited"/> is false when the sender was limited by the application
    /// or the peer's window rather than by cwnd: the window then does not grow (RFC 7661).
    /// </summary>
    public abstract void OnAck(long acked, long now, long rtt, bool cwndLimited);

    /// <summary>A congestion event (fast retransmit or RACK loss): sets <see cref="SsThresh"/>; the caller reduces cwnd toward it (PRR).</summary>
    public abstract void OnCongestionEvent(long now, long flightSize);

    /// <summary>A retransmission timeout: the threshold as for a congestion event, and cwnd falls to one segment (RFC 5681 loss window).</summary>
    public virtual void OnRetransmissionTimeout(long now, long flightSize)
    {
        OnCongestionEvent(now, flightSize);
        Cwnd = Mss;
    }

    /// <summary>Loss recovery completed (cwnd has been set to ssthresh by the caller).</summary>
    public virtual void OnRecoveryEnd(long now)
    {
    }

    /// <summary>The connection sent after <paramref name="idle"/> microseconds of sending nothing.</summary>
    public virtual void OnIdleRestart(long idle)
    {
    }

    /// <summary>Remembers the state before a reduction, for <see cref="Undo"/>.</summary>
    public virtual void SaveUndo()
    {
        _priorCwnd = Cwnd;
        _priorSsThresh = SsThresh;
    }

    /// <summary>The reduction was spurious: restores the window and threshold saved by <see cref="SaveUndo"/>.</summary>
    public virtual void Undo()
    {
        Cwnd = Math.Max(Cwnd, _priorCwnd);
        SsThresh = Math.Max(SsThresh, _priorSsThresh);
    }

    /// <summary>Slow start with appropriate byte counting (RFC 3465, L = 2): cwnd += min(acked, 2 MSS); returns the bytes left over past ssthresh.</summary>
    protected long SlowStart(long acked)
    {
        long increase = Math.Min(acked, 2L * Mss);
        long room = SsThresh - Cwnd;
        if (increase <= room)
        {
            Cwnd += increase;
            return 0;
        }
        Cwnd += room;
        return Math.Min(acked, increase - room);
    }

    /// <summary>Creates the algorithm selected in the options.</summary>
    public static CongestionControl Create(TcpCongestionControl algorithm, int mss) => algorithm switch
    {
        TcpCongestionControl.NewReno => new NewRenoCongestionControl(mss),
        _ => new CubicCongestionControl(mss),
    };
}

/// <summary>
/// NewReno's window arithmetic (RFC 5681 §3.1): slow start below ssthresh, then congestion
/// avoidance growing cwnd by one MSS per cwnd of acknowledged bytes (byte counting, RFC 3465);
/// ssthresh = max(FlightSize / 2, 2 MSS) on congestion (RFC 5681 equation 4).
/// </summary>
internal sealed class NewRenoCongestionControl(int mss) : CongestionControl(mss)
{
    private long _bytesAcked;

    public override void OnAck(long acked, long now, long rtt, bool cwndLimited)
    {
        if (!cwndLimited || acked <= 0)
        {
            return;
        }
        acked = Math.Min(acked, MaxCwnd);
        if (InSlowStart)
        {
            acked = SlowStart(acked);
            if (acked == 0)
            {
                return;
            }
        }
        _bytesAcked += acked;
        if (_bytesAcked >= Cwnd)
        {
            _bytesAcked -= Cwnd;
            Cwnd += Mss;
        }
    }

    public override void OnCongestionEvent(long now, long flightSize)
    {
        SsThresh = Math.Max(flightSize / 2, 2L * Mss);
        _bytesAcked = 0;
    }
}
