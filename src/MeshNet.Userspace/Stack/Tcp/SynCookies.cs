namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>
/// SYN cookies as Linux builds them (net/ipv4/syncookies.c): when a listener's half-open
/// queue is full, the SYN-ACK's ISN encodes what the connection needs, so the listener keeps
/// no state until the handshake's ACK proves the peer's address.
/// </summary>
/// <remarks>
/// ISN = H0(4-tuple) + SEG.SEQ + (minute &lt;&lt; 24) + ((H1(4-tuple, minute) + mssIndex) mod 2^24),
/// with H0 and H1 SipHash-2-4 under two random keys. A cookie is accepted for up to two minutes.
/// The MSS is one of eight table values (the largest not above the peer's). When the SYN
/// carries timestamps, the low six bits of our TSval carry the peer's window scale (four
/// bits, 15 = none) and SACK-permitted (one bit), echoed back in the ACK's TSecr; without
/// timestamps the connection has neither window scaling nor SACK. Thread-safe.
/// </remarks>
internal sealed class SynCookies(SipHash hash0, SipHash hash1, TimeProvider time)
{
    private const int CountShift = 24;
    private const uint DataMask = (1u << CountShift) - 1;
    private const uint MaxAgeMinutes = 2;
    private const int TsOptionBits = 6;
    private const uint TsOptionMask = (1u << TsOptionBits) - 1;
    private const uint NoWindowScale = 0xF;
    private const uint SackBit = 0x10;

    /// <summary>The MSS values a cookie can encode.</summary>
    public static ReadOnlySpan<ushort> MssTable => [536, 1220, 1300, 1380, 1440, 1460, 8960, 65495];

    private readonly long _epoch = time.GetTimestamp();

    /// <summary>Minutes since the generator was created: the cookie clock.</summary>
    private uint Minute() => (uint)(time.GetElapsedTime(_epoch).Ticks / TimeSpan.TicksPerMinute);

    /// <summary>The index of the largest table MSS not above <paramref name="mss"/> (0 when below all).</summary>
    public static int MssIndex(int mss)
    {
        var table = MssTable;
        for (int i = table.Length - 1; i > 0; i--)
        {
            if (table[i] <= mss)
            {
                return i;
            }
        }
        return 0;
    }

    /// <summary>Our ISN for a SYN-ACK answering a SYN with sequence number <paramref name="peerSeq"/>.</summary>
    public uint Encode(in TcpFlowKey key, uint peerSeq, int mssIndex)
    {
        uint count = Minute();
        return (uint)hash0.HashFlow(key, 0) + peerSeq + (count << CountShift) +
            (((uint)hash1.HashFlow(key, count) + (uint)mssIndex) & DataMask);
    }

    /// <summary>
    /// Checks the cookie <paramref name="iss"/> (the ACK's SEG.ACK - 1) of an ACK whose
    /// SEG.SEQ - 1 is <paramref name="peerSeq"/>. Returns the MSS index, or -1 when invalid or
    /// older than two minutes.
    /// </summary>
    public int Check(in TcpFlowKey key, uint peerSeq, uint iss)
    {
        uint count = Minute();
        uint cookie = iss - ((uint)hash0.HashFlow(key, 0) + peerSeq);
        uint diff = (count - (cookie >> CountShift)) & (uint.MaxValue >> CountShift);
        if (diff >= MaxAgeMinutes)
        {
            return -1;
        }
        uint data = (cookie - (uint)hash1.HashFlow(key, count - diff)) & DataMask;
        return data < MssTable.Length ? (int)data : -1;
    }

    /// <summary>
    /// The TSval of a cookie SYN-ACK: our timestamp clock <paramref name="tsNow"/> with its low
    /// six bits replaced by the peer's options, never ahead of the clock.
    /// </summary>
    public static uint EncodeTimestamp(uint tsNow, int peerWindowScale, bool sackPermitted)
    {
        uint options = (peerWindowScale < 0 ? NoWindowScale : (uint)peerWindowScale) | (sackPermitted ? SackBit : 0);
        uint ts = (tsNow & ~TsOptionMask) | options;
        if (TcpSeq.Gt(ts, tsNow))
        {
            ts -= 1u << TsOptionBits;
        }
        return ts;
    }

    /// <summary>Decodes the options a cookie SYN-ACK's TSval carried (from the ACK's TSecr).</summary>
    public static (int PeerWindowScale, bool SackPermitted) DecodeTimestamp(uint tsEcr)
    {
        uint wscale = tsEcr & 0xF;
        return (wscale == NoWindowScale ? -1 : (int)Math.Min(wscale, (uint)TcpOptions.MaxWindowScale), (tsEcr & SackBit) != 0);
    }
}
