using MeshNet.Userspace.Net;

namespace MeshNet.Userspace.Stack.Ip;

// STUB: to be implemented (helper "ip").
internal static class InternetChecksum
{
    /// <summary>Adds <paramref name="data"/> (16-bit big-endian words; odd trailing byte padded) to a running sum.</summary>
    public static ulong Sum(ReadOnlySpan<byte> data, ulong sum = 0) => throw new NotImplementedException();

    /// <summary>Folds a running sum to 16 bits and complements it: the checksum field value.</summary>
    public static ushort Finish(ulong sum) => throw new NotImplementedException();

    /// <summary>The running sum of the IPv4 or IPv6 pseudo-header for a transport checksum.</summary>
    public static ulong PseudoHeaderSum(NetAddress source, NetAddress destination, byte protocol, int transportLength) => throw new NotImplementedException();

    /// <summary>The checksum of a transport packet (its checksum field must be zero, or the result verifies to 0 when it is set).</summary>
    public static ushort Transport(NetAddress source, NetAddress destination, byte protocol, ReadOnlySpan<byte> packet) => throw new NotImplementedException();
}
