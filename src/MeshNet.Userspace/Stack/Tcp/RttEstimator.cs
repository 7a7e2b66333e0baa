namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>
/// Round-trip time estimation and the retransmission timeout (RFC 6298), in microseconds:
/// SRTT and RTTVAR with alpha 1/8 and beta 1/4, RTO = SRTT + max(G, 4 x RTTVAR) with the clock
/// granularity G taken as 200 ms (so the RTO is never below 200 ms, as in Linux), at most
/// 120 s, doubled per expiry (exponential backoff) until an ACK for new data resets it. Also
/// tracks the minimum RTT over a 10-second window (for RACK's reordering window).
/// </summary>
/// <remarks>Not thread-safe: the owning connection's lock guards it.</remarks>
internal struct RttEstimator
{
    public const long MinRto = 200_000;
    public const long MaxRto = 120_000_000;
    public const long InitialRto = 1_000_000;

    /// <summary>RTO after a handshake whose SYN was retransmitted and no sample was taken (RFC 6298 §5.7).</summary>
    public const long ConservativeRto = 3_000_000;

    private const long MinRttWindow = 10_000_000;

    private long _rto;
    private long _minRttStamp;

    /// <summary>Smoothed RTT (0 until the first sample).</summary>
    public long Srtt { get; private set; }

    /// <summary>RTT variation.</summary>
    public long RttVar { get; private set; }

    /// <summary>The latest sample.</summary>
    public long Latest { get; private set; }

    /// <summary>The smallest sample of the last 10 seconds (0 until the first sample).</summary>
    public long MinRtt { get; private set; }

    /// <summary>Consecutive expirations since the last ACK of new data.</summary>
    public int Backoff { get; set; }

    public readonly bool HasSample => Srtt > 0;

    /// <summary>The base RTO (no backoff).</summary>
    public readonly long BaseRto => _rto == 0 ? InitialRto : _rto;

    /// <summary>The RTO with backoff applied.</summary>
    public readonly long Rto
    {
        get
        {
            long rto = BaseRto;
            for (int i = 0; i < Backoff && rto < MaxRto; i++)
            {
                rto <<= 1;
            }
            return Math.Min(rto, MaxRto);
        }
    }

    /// <summary>Sets the RTO used before any sample (1 s, or 3 s after a retransmitted SYN).</summary>
    public void SetInitialRto(long rto) => _rto = rto;

    /// <summary>Takes one RTT measurement of <paramref name="rtt"/> microseconds at time <paramref name="now"/>.</summary>
    public void Sample(long rtt, long now)
    {
        rtt = Math.Max(rtt, 1);
        Latest = rtt;
        if (MinRtt == 0 || rtt <= MinRtt || now - _minRttStamp > MinRttWindow)
        {
            MinRtt = rtt;
            _minRttStamp = now;
        }
        if (Srtt == 0)
        {
            Srtt = rtt;
            RttVar = rtt / 2;
        }
        else
        {
            long delta = Math.Abs(Srtt - rtt);
            RttVar = ((3 * RttVar) + delta) / 4;
            Srtt = ((7 * Srtt) + rtt) / 8;
        }
        _rto = Math.Clamp(Srtt + Math.Max(MinRto, 4 * RttVar), MinRto, MaxRto);
    }
}
