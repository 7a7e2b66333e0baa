using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace MeshNet.Userspace.Crypto;

/// <summary>
/// TAI64N timestamps as carried (encrypted) in a WireGuard handshake initiation: 8 bytes of
/// big-endian seconds with the TAI64 base 2^62 + 10, then 4 bytes of big-endian nanoseconds.
/// The responder accepts an initiation only if its timestamp is strictly greater than the
/// last one it accepted from that peer, which defeats replay of captured initiations.
/// </summary>
/// <remarks>
/// <para>Like wireguard-go, the "+ 10" is a fixed offset applied to Unix time rather than the
/// real (growing) TAI-UTC difference: only monotonicity matters to the peer.</para>
/// <para>Nanoseconds are whitened: rounded down to a multiple of 2^24 ns (about 16.8 ms), as
/// wireguard-go does, so that the timestamp does not leak a precise clock reading to an
/// attacker who later learns the static private key. Two instants within the same 2^24 ns
/// window therefore encode identically and the second is not "after" the first; this is
/// harmless because a responder never accepts initiations from one peer more often than
/// every 20 ms anyway.</para>
/// <para>Stateless and thread-safe.</para>
/// </remarks>
internal static class Tai64N
{
    /// <summary>Size of an encoded timestamp in bytes.</summary>
    public const int Size = 12;

    /// <summary>TAI64 label of the Unix epoch: 2^62 + 10.</summary>
    public const ulong UnixEpochLabel = 0x4000_0000_0000_000AUL;

    /// <summary>Nanosecond bits cleared by whitening (2^24 - 1).</summary>
    public const uint WhitenerMask = (1u << 24) - 1;

    /// <summary>Writes the whitened TAI64N encoding of <paramref name="time"/>.</summary>
    /// <param name="time">Any instant; its offset is irrelevant (the UTC instant is encoded).</param>
    /// <param name="destination">Exactly 12 bytes.</param>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is not 12 bytes.</exception>
    public static void Write(DateTimeOffset time, Span<byte> destination)
    {
        CheckSize(destination, nameof(destination));

        // UtcTicks counts 100 ns ticks from 0001-01-01 and is never negative, so division
        // floors: instants before 1970 get negative seconds with a non-negative fraction.
        long ticks = time.UtcTicks;
        long unixSeconds = ticks / TimeSpan.TicksPerSecond - DateTimeOffset.UnixEpoch.UtcTicks / TimeSpan.TicksPerSecond;
        uint nanoseconds = (uint)(ticks % TimeSpan.TicksPerSecond * TimeSpan.NanosecondsPerTick);

        BinaryPrimitives.WriteUInt64BigEndian(destination, unchecked(UnixEpochLabel + (ulong)unixSeconds));
        BinaryPrimitives.WriteUInt32BigEndian(destination[8..], nanoseconds & ~WhitenerMask);
    }

    /// <summary>
    /// True when <paramref name="candidate"/> is strictly later than <paramref name="previous"/>
    /// (a big-endian, byte-wise comparison, as in wireguard-go). Equal timestamps are not after.
    /// Not constant-time: timestamps are compared only after they have been authenticated and
    /// decrypted, and they are not secret from their sender.
    /// </summary>
    /// <exception cref="ArgumentException">Either argument is not 12 bytes.</exception>
    public static bool IsAfter(ReadOnlySpan<byte> candidate, ReadOnlySpan<byte> previous)
    {
        CheckSize(candidate, nameof(candidate));
        CheckSize(previous, nameof(previous));
        return candidate.SequenceCompareTo(previous) > 0;
    }

    private static void CheckSize(ReadOnlySpan<byte> buffer, string name)
    {
        if (buffer.Length != Size)
        {
            ThrowBadSize(buffer.Length, name);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowBadSize(int actual, string name) =>
        throw new ArgumentException($"A TAI64N timestamp is {Size} bytes, not {actual}.", name);
}
