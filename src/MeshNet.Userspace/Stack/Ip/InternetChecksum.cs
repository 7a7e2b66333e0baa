using System.Buffers.Binary;
using System.Runtime.InteropServices;
using MeshNet.Userspace.Net;

namespace MeshNet.Userspace.Stack.Ip;

/// <summary>
/// The Internet checksum (RFC 1071): the one's-complement sum of 16-bit big-endian words.
/// Sums are carried in a 64-bit accumulator and folded once at the end; the bulk loop adds
/// 64-bit words (carries accumulate in the high bits), which is several times faster than a
/// 16-bit loop. Stateless and allocation-free.
/// </summary>
internal static class InternetChecksum
{
    /// <summary>Adds <paramref name="data"/> (16-bit big-endian words; an odd trailing byte is padded with zero) to a running sum.</summary>
    public static ulong Sum(ReadOnlySpan<byte> data, ulong sum = 0)
    {
        // Sum 32-bit big-endian halves of 64-bit little-endian reads: each 64-bit load gives two
        // 32-bit values whose 16-bit halves are the words in swapped byte order; swapping once at
        // the end restores network order (one's-complement sums commute with byte swapping).
        ulong accumulator = 0;
        var words = MemoryMarshal.Cast<byte, uint>(data);
        int i = 0;
        for (; i + 4 <= words.Length; i += 4)
        {
            accumulator += (ulong)words[i] + words[i + 1] + words[i + 2] + words[i + 3];
        }
        for (; i < words.Length; i++)
        {
            accumulator += words[i];
        }
        int tail = words.Length * 4;
        if (data.Length - tail >= 2)
        {
            accumulator += MemoryMarshal.Read<ushort>(data[tail..]);
            tail += 2;
        }
        if (tail < data.Length)
        {
            accumulator += data[tail]; // the odd byte is the high byte of a big-endian word: low byte in little-endian order
        }
        // Fold the little-endian accumulator to 16 bits, then swap to big-endian word order.
        ulong folded = (accumulator & 0xFFFFFFFF) + (accumulator >> 32);
        folded = (folded & 0xFFFF) + (folded >> 16);
        folded = (folded & 0xFFFF) + (folded >> 16);
        folded = (folded & 0xFFFF) + (folded >> 16);
        ushort littleEndianWord = (ushort)folded;
        return sum + BinaryPrimitives.ReverseEndianness(littleEndianWord);
    }

    /// <summary>Folds a running sum to 16 bits and complements it: the value of a checksum field.</summary>
    public static ushort Finish(ulong sum)
    {
        while (sum >> 16 != 0)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        return (ushort)~sum;
    }

    /// <summary>The running sum of the IPv4 or IPv6 pseudo-header for a transport checksum.</summary>
    public static ulong PseudoHeaderSum(NetAddress source, NetAddress destination, byte protocol, int transportLength)
    {
        Span<byte> addresses = stackalloc byte[32];
        int sourceLength = source.WriteBytes(addresses);
        int destinationLength = destination.WriteBytes(addresses[sourceLength..]);
        ulong sum = Sum(addresses[..(sourceLength + destinationLength)]);
        return sum + protocol + (ulong)(uint)transportLength; // IPv4: 16-bit length; IPv6: 32-bit length, same sum
    }

    /// <summary>
    /// The checksum of a transport packet over its pseudo-header. With the checksum field zero
    /// this is the value to write; with the field set, a correct packet yields 0.
    /// </summary>
    public static ushort Transport(NetAddress source, NetAddress destination, byte protocol, ReadOnlySpan<byte> packet) =>
        Finish(Sum(packet, PseudoHeaderSum(source, destination, protocol, packet.Length)));

    /// <summary>The checksum of a header such as IPv4's (field zero: the value to write; set: 0 when correct).</summary>
    public static ushort Compute(ReadOnlySpan<byte> data) => Finish(Sum(data));
}
