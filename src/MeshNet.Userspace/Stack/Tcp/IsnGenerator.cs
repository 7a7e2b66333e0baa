namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>
/// Initial sequence numbers per RFC 6528: ISN = M + F(4-tuple, secret), where M is a clock
/// ticking every 4 microseconds and F a keyed hash (SipHash-2-4 with a per-stack random key).
/// Also derives the per-connection timestamp offset (RFC 7323 §7.1), so TSval reveals neither
/// uptime nor a clock shared across connections. Thread-safe.
/// </summary>
internal sealed class IsnGenerator(SipHash hash, TimeProvider time)
{
    private readonly long _epoch = time.GetTimestamp();

    /// <summary>The ISN for a new connection on <paramref name="key"/> at the current time.</summary>
    public uint Next(in TcpFlowKey key) => (uint)hash.HashFlow(key, 0x6528) + Clock();

    /// <summary>The random offset added to this connection's timestamp clock.</summary>
    public uint TimestampOffset(in TcpFlowKey key) => (uint)(hash.HashFlow(key, 0x7323) >> 32);

    /// <summary>M: microseconds since the generator was built, divided by 4 (wraps every 4.77 hours).</summary>
    private uint Clock()
    {
        long micros = (long)time.GetElapsedTime(_epoch).TotalMicroseconds;
        return (uint)(micros >> 2);
    }
}
