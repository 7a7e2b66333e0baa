namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>
/// RACK's state (RFC 8985 §6): the transmit time and end of the most recently sent segment
/// known delivered, the RTT of that delivery, the highest delivered sequence (FACK), whether
/// reordering has been seen, and the reordering window that DSACKs adapt. All times are
/// microseconds of the stack clock, which is fine-grained (RACK with a coarse clock marks
/// delivered-but-late segments lost, the failure gVisor's early RACK had).
/// </summary>
internal struct RackState
{
    /// <summary>Recoveries a DSACK-widened reordering window persists for (Linux TCP_RACK_RECOVERY_THRESH).</summary>
    public const int ReoWndPersistRecoveries = 16;

    /// <summary>The widest multiplier (the window is capped at SRTT long before on most paths).</summary>
    public const int MaxReoWndMult = 256;

    /// <summary>RACK.xmit_ts: transmit time of the most recently sent delivered segment.</summary>
    public long XmitTime;

    /// <summary>
    /// Transmission order of that segment. "Sent after" compares this counter rather than
    /// (time, end_seq) as RFC 8985 does: with equal timestamps a retransmission sent after new
    /// data has the lower sequence number, and the tie-break would call it older (a coarse
    /// clock then marks delivered retransmissions lost).
    /// </summary>
    public long XmitOrder;

    /// <summary>RACK.end_seq: its end.</summary>
    public uint EndSeq;

    /// <summary>RACK.rtt: the RTT of that delivery.</summary>
    public long Rtt;

    /// <summary>True when a delivery updated RACK since the last loss detection.</summary>
    public bool Advanced;

    /// <summary>RACK.fack: the highest sequence delivered (ACKed or SACKed).</summary>
    public uint Fack;

    /// <summary>RACK.reordering_seen.</summary>
    public bool ReorderingSeen;

    /// <summary>RACK.reo_wnd_mult (starts at 1).</summary>
    public int ReoWndMult;

    /// <summary>RACK.reo_wnd_persist.</summary>
    public int ReoWndPersist;

    /// <summary>
    /// A fast retransmission was proven spurious (by a D-SACK, or by timestamps at undo) since
    /// the window was last adapted.
    /// </summary>
    public bool DsackSeen;

    /// <summary>RACK.dsack_round: no new adaptation until SND.UNA passes this.</summary>
    public uint DsackRoundEnd;

    public bool DsackRoundActive;

    /// <summary>
    /// RACK_update (RFC 8985 §6.2 step 2) for a newly delivered segment. A retransmitted
    /// segment delivered sooner than the minimum RTT is taken as the original's delivery and
    /// ignored.
    /// </summary>
    public void OnDelivered(in SentSegment segment, long now, long minRtt)
    {
        long rtt = now - segment.XmitTime;
        if (segment.Has(SentFlags.EverRetransmitted) && rtt < minRtt)
        {
            return;
        }
        Rtt = rtt;
        Advanced = true;
        if (segment.XmitOrder > XmitOrder)
        {
            XmitTime = segment.XmitTime;
            XmitOrder = segment.XmitOrder;
            EndSeq = segment.End;
        }
    }

    /// <summary>RACK_detect_reordering (§6.2 step 1): a never-retransmitted segment delivered below FACK arrived out of order.</summary>
    public void DetectReordering(in SentSegment segment, uint priorFack)
    {
        if (!segment.Has(SentFlags.EverRetransmitted) && TcpSeq.Lt(segment.End, priorFack))
        {
            ReorderingSeen = true;
        }
        if (TcpSeq.Gt(segment.End, Fack))
        {
            Fack = segment.End;
        }
    }

    /// <summary>
    /// RACK_update_reo_wnd (§6.2 step 4): a DSACK widens the window (at most once per round trip)
    /// and keeps it widened for 16 recoveries; otherwise it returns to one step. Widening doubles
    /// the multiplier where the RFC adds one: reordering by queues spans many min RTT / 4 steps,
    /// and each round spent below it costs spurious retransmissions (docs/design/netstack.md).
    /// Returns true when the window was widened.
    /// </summary>
    public bool UpdateReoWnd(uint sndUna, uint sndNxt)
    {
        bool widened = false;
        if (DsackRoundActive && TcpSeq.Ge(sndUna, DsackRoundEnd))
        {
            DsackRoundActive = false;
        }
        if (DsackSeen && !DsackRoundActive)
        {
            DsackRoundActive = true;
            DsackRoundEnd = sndNxt;
            ReoWndMult = Math.Min(ReoWndMult * 2, MaxReoWndMult);
            ReoWndPersist = ReoWndPersistRecoveries;
            widened = true;
        }
        else if (ReoWndPersist == 0)
        {
            ReoWndMult = 1;
        }
        DsackSeen = false;
        return widened;
    }

    /// <summary>
    /// The reordering window (§6.2 step 4, RACK_update_reo_wnd's result): zero while no
    /// reordering was seen and the sender is in recovery or has three segments SACKed (the
    /// DupThresh rule); otherwise min(reo_wnd_mult x min_RTT / 4, SRTT).
    /// </summary>
    public readonly long ReoWnd(bool inRecovery, int sackedSegments, long minRtt, long srtt)
    {
        if (!ReorderingSeen && (inRecovery || sackedSegments >= 3))
        {
            return 0;
        }
        return Math.Min(ReoWndMult * (minRtt / 4), srtt);
    }
}
