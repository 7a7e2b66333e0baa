using MeshNet.Userspace.Net;

namespace MeshNet.Userspace.Stack.Ip;

/// <summary>Address classes the IP layer refuses as sources or destinations. Stateless.</summary>
internal static class IpAddressRules
{
    /// <summary>
    /// True for an address that can name one host: not empty, unspecified, multicast or the IPv4
    /// limited broadcast. (Loopback is allowed: tests and users may address stacks that way.)
    /// </summary>
    public static bool IsUnicast(NetAddress address)
    {
        if (address.IsIPv4)
        {
            uint value = address.IPv4Value;
            return value != 0 && value >> 28 != 0xE && value != 0xFFFF_FFFF;
        }
        if (address.IsIPv6)
        {
            UInt128 bits = address.Bits;
            return bits != UInt128.Zero && (byte)(bits >> 120) != 0xFF;
        }
        return false;
    }
}
