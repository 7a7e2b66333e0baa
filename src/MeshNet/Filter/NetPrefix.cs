using System.Globalization;
using System.Net;
using System.Net.Sockets;
using MeshNet.Userspace.Net;

namespace MeshNet.Filter;

/// <summary>
/// An address prefix of one family ("100.64.0.0/10", "fd7a:115c:a1e0::/48"), held as masked
/// 128-bit values so that matching an address is two ANDs and a compare. IPv4 prefixes are
/// held in the IPv4-mapped space (as <see cref="NetAddress"/> holds IPv4 addresses). Immutable.
/// </summary>
internal readonly record struct NetPrefix(bool IsIPv6, UInt128 Bits, int Length)
{
    /// <summary>The mask of this prefix in the 128-bit space.</summary>
    public UInt128 Mask => MaskOf(Length128);

    /// <summary>The prefix length counted in the 128-bit (IPv4-mapped) space.</summary>
    public int Length128 => IsIPv6 ? Length : 96 + Length;

    /// <summary>True when <paramref name="address"/> is of this family and inside the prefix. Allocation-free.</summary>
    public bool Contains(NetAddress address) =>
        !address.IsEmpty && address.IsIPv6 == IsIPv6 && (address.Bits & Mask) == Bits;

    /// <summary>The mask with the first <paramref name="length"/> of 128 bits set.</summary>
    public static UInt128 MaskOf(int length) => length == 0 ? UInt128.Zero : UInt128.MaxValue << (128 - length);

    /// <summary>
    /// Parses "address/length" or a bare address (a host prefix). Host bits beyond the length
    /// are cleared. IPv4-mapped IPv6 addresses are taken as IPv4. Returns false for anything else
    /// (including "*", which callers handle).
    /// </summary>
    public static bool TryParse(string text, out NetPrefix prefix)
    {
        prefix = default;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }
        text = text.Trim();
        int slash = text.IndexOf('/', StringComparison.Ordinal);
        string addressText = slash < 0 ? text : text[..slash];
        if (!IPAddress.TryParse(addressText, out var ip) || ip.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6)
            || (ip.AddressFamily == AddressFamily.InterNetworkV6 && ip.ScopeId != 0))
        {
            return false;
        }
        var address = NetAddress.FromIPAddress(ip);
        int max = address.IsIPv4 ? 32 : 128;
        int length = max;
        if (slash >= 0 && (!int.TryParse(text.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out length) || length > max))
        {
            return false;
        }
        bool ipv6 = address.IsIPv6;
        int length128 = ipv6 ? length : 96 + length;
        prefix = new NetPrefix(ipv6, address.Bits & MaskOf(length128), length);
        return true;
    }

    /// <summary>"address/length" (allocates; for logs and tests).</summary>
    public override string ToString()
    {
        Span<byte> bytes = stackalloc byte[16];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt128BigEndian(bytes, Bits);
        var address = IsIPv6 ? new IPAddress(bytes) : new IPAddress(bytes[12..]);
        return $"{address}/{Length}";
    }
}
