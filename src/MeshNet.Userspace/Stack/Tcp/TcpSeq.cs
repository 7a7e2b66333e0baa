namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>
/// Sequence-number arithmetic modulo 2^32 (RFC 9293 §3.4): comparisons are meaningful for
/// numbers less than 2^31 apart, which the window sizes guarantee.
/// </summary>
internal static class TcpSeq
{
    /// <summary>a &lt; b.</summary>
    public static bool Lt(uint a, uint b) => (int)(a - b) < 0;

    /// <summary>a &lt;= b.</summary>
    public static bool Le(uint a, uint b) => (int)(a - b) <= 0;

    /// <summary>a &gt; b.</summary>
    public static bool Gt(uint a, uint b) => (int)(a - b) > 0;

    /// <summary>a &gt;= b.</summary>
    public static bool Ge(uint a, uint b) => (int)(a - b) >= 0;

    /// <summary>The later of two sequence numbers.</summary>
    public static uint Max(uint a, uint b) => Gt(a, b) ? a : b;

    /// <summary>The earlier of two sequence numbers.</summary>
    public static uint Min(uint a, uint b) => Lt(a, b) ? a : b;

    /// <summary>start &lt;= x &lt; end.</summary>
    public static bool InRange(uint x, uint start, uint end) => Le(start, x) && Lt(x, end);
}
