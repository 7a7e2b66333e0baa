namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>
/// CUBIC (RFC 9438). Windows are computed in segments as doubles and stored in bytes:
/// W_cubic(t) = C (t - K)^3 + W_max with C = 0.4 and K = cbrt((W_max - cwnd_epoch) / C);
/// each ACK in congestion avoidance moves cwnd toward W_cubic(t + RTT), clamped to
/// [cwnd, 1.5 cwnd], unless the Reno-friendly estimate W_est (grown by
/// alpha = 3(1 - beta)/(1 + beta) per window, 1 once past the prior cwnd) is larger. On
/// congestion ssthresh = 0.7 cwnd, and with fast convergence W_max = cwnd (1 + beta) / 2 when
/// the window had not regained the last W_max. Slow start is standard (RFC 5681 with ABC).
/// The epoch restarts after recovery, and is shifted by idle periods so a pause does not
/// make the window jump (as Linux does).
/// </summary>
internal sealed class CubicCongestionControl(int mss) : CongestionControl(mss)
{
    public const double C = 0.4;
    public const double Beta = 0.7;
    public static readonly double AlphaReno = 3 * (1 - Beta) / (1 + Beta);

    private double _wMax;
    private double _k;
    private long _epochStart = -1;
    private double _wEst;
    private double _cwndPrior;

    private (double WMax, double K, long EpochStart, double WEst, double CwndPrior) _saved;

    /// <summary>W_max in segments (for tests).</summary>
    public double WMax => _wMax;

    /// <summary>K in seconds (for tests).</summary>
    public double K => _k;

    /// <summary>The Reno-friendly estimate in segments (for tests).</summary>
    public double WEst => _wEst;

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
        double cwnd = (double)Cwnd / Mss;
        if (_epochStart < 0)
        {
            _epochStart = now;
            if (cwnd < _wMax)
            {
                _k = Math.Cbrt((_wMax - cwnd) / C);
            }
            else
            {
                _k = 0;
                _wMax = cwnd;
            }
            _wEst = cwnd;
        }
        double segments = (double)acked / Mss;
        double t = Math.Max(0, now - _epochStart) / 1e6;
        double alpha = _wEst >= _cwndPrior ? 1.0 : AlphaReno;
        _wEst += alpha * segments / cwnd;
        double wCubic = W(t);
        if (wCubic < _wEst)
        {
            _wEst = Math.Min(_wEst, (double)MaxCwnd / Mss);
            Cwnd = (long)(_wEst * Mss); // Reno-friendly region
            return;
        }
        double target = W(t + (rtt / 1e6));
        target = Math.Clamp(target, cwnd, 1.5 * cwnd);
        cwnd += (target - cwnd) / cwnd * segments;
        Cwnd = (long)(cwnd * Mss);
    }

    /// <summary>W_cubic(t) in segments.</summary>
    public double W(double t)
    {
        double d = t - _k;
        return (C * d * d * d) + _wMax;
    }

    public override void OnCongestionEvent(long now, long flightSize)
    {
        double cwnd = (double)Cwnd / Mss;
        _cwndPrior = cwnd;
        _wMax = cwnd < _wMax ? cwnd * (1 + Beta) / 2 : cwnd;
        SsThresh = Math.Max((long)(Cwnd * Beta), 2L * Mss);
        _epochStart = -1;
    }

    public override void OnRecoveryEnd(long now) => _epochStart = -1;

    public override void OnIdleRestart(long idle)
    {
        if (_epochStart >= 0)
        {
            _epochStart += idle;
        }
    }

    public override void SaveUndo()
    {
        base.SaveUndo();
        _saved = (_wMax, _k, _epochStart, _wEst, _cwndPrior);
    }

    public override void Undo()
    {
        base.Undo();
        (_wMax, _k, _epochStart, _wEst, _cwndPrior) = _saved;
    }
}
