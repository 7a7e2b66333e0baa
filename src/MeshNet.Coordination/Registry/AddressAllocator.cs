using System.Buffers.Binary;
using System.Net;
using System.Security.Cryptography;

namespace MeshNet.Coordination.Registry;

/// <summary>
/// Picks tailnet addresses: a random IPv4 in 100.64.0.0/10 and the IPv6 in fd7a:115c:a1e0::/48
/// that carries the same 32 bits (so the pair is unique when the IPv4 is). Avoided: the first
/// and last address of the range, addresses ending in .0 or .255, and 100.100.100.0/24
/// (reserved for services such as DNS). Random rather than sequential, so addresses reveal
/// nothing about the tailnet's size or age; the store enforces uniqueness and the caller
/// retries a taken pick. Thread-safe.
/// </summary>
internal sealed class AddressAllocator
{
    private const uint RangeBase = 0x6440_0000; // 100.64.0.0
    private const uint RangeSize = 1u << 22;     // /10
    private const uint ReservedBase = 0x6464_6400; // 100.100.100.0/24

    private static readonly byte[] IPv6Prefix = [0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0];

    private readonly Func<uint> _random;

    /// <param name="random">Test hook: the source of 32-bit candidates (default: a CSPRNG).</param>
    public AddressAllocator(Func<uint>? random = null) =>
        _random = random ?? (static () => BinaryPrimitives.ReadUInt32LittleEndian(RandomNumberGenerator.GetBytes(4)));

    /// <summary>A candidate pair (IPv4, IPv6); never an avoided address.</summary>
    public (IPAddress IPv4, IPAddress IPv6) Next()
    {
        while (true)
        {
            uint offset = _random() % RangeSize;
            uint value = RangeBase + offset;
            if (IsUsable(value))
            {
                return (ToIPv4(value), ToIPv6(value));
            }
        }
    }

    /// <summary>True for an address the allocator may hand out.</summary>
    public static bool IsUsable(uint value)
    {
        uint offset = value - RangeBase;
        if (value < RangeBase || offset >= RangeSize || offset == 0 || offset == RangeSize - 1)
        {
            return false;
        }
        byte last = (byte)value;
        return last is not (0 or 255) && (value & 0xFFFF_FF00) != ReservedBase;
    }

    public static IPAddress ToIPv4(uint value)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        return new IPAddress(bytes);
    }

    public static IPAddress ToIPv6(uint value)
    {
        Span<byte> bytes = stackalloc byte[16];
        IPv6Prefix.CopyTo(bytes);
        BinaryPrimitives.WriteUInt32BigEndian(bytes[12..], value);
        return new IPAddress(bytes);
    }
}
