namespace MeshNet.Userspace.Stack;

/// <summary>TCP congestion control algorithms.</summary>
public enum TcpCongestionControl
{
    /// <summary>CUBIC (RFC 9438), the default.</summary>
    Cubic,

    /// <summary>NewReno (RFC 5681, RFC 6582).</summary>
    NewReno,
}
