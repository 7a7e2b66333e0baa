namespace MeshNet.Userspace.Stack;

/// <summary>The states of a TCP connection (RFC 9293 §3.3.2).</summary>
public enum TcpState
{
    /// <summary>No connection: never opened, or finished (closed, reset, timed out).</summary>
    Closed,

    /// <summary>Waiting for a connection request (listeners only).</summary>
    Listen,

    /// <summary>Our SYN was sent; waiting for the peer's SYN.</summary>
    SynSent,

    /// <summary>SYNs exchanged; waiting for the acknowledgment of ours.</summary>
    SynReceived,

    /// <summary>Open: data flows both ways.</summary>
    Established,

    /// <summary>We closed (sent FIN); waiting for its acknowledgment or the peer's FIN.</summary>
    FinWait1,

    /// <summary>Our FIN was acknowledged; waiting for the peer's FIN.</summary>
    FinWait2,

    /// <summary>The peer closed (its FIN arrived); we may still send.</summary>
    CloseWait,

    /// <summary>Both sides closed at once; waiting for the acknowledgment of our FIN.</summary>
    Closing,

    /// <summary>The peer closed first and we then closed; waiting for the acknowledgment of our FIN.</summary>
    LastAck,

    /// <summary>Both FINs exchanged; waiting 2 MSL so late segments of this connection die out.</summary>
    TimeWait,
}
