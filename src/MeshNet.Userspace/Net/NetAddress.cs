using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace MeshNet.Userspace.Net;

/// <summary>
/// An IPv4 or IPv6 address as a plain 16-byte value: copying, comparing and hashing it never
/// allocates, so the data path can key tables by it. IPv4 addresses are held in their
/// IPv4-mapped form (<c>::ffff:a.b.c.d</c>) and still report <see cref="IsIPv4"/>.
/// <c>default</c> is "no address".
/// </summary>
public readonly struct NetAddress : IEquatable<NetAddress>
{
    private const ulong MappedPrefix = 0x0000_FFFFUL;

    private readonly ulong _high;
    private readonly ulong _low;
    private readonly byte _family; // 0 none, 4, 6

    private NetAddress(ulong high, ulong low, byte family)
    {
        _high = high;
        _low = low;
        _family = family;
    }

    /// <summary>True for <c>default</c>: no address.</summary>
    public bool IsEmpty => _family == 0;

    /// <summary>True for an IPv4 address.</summary>
    public bool IsIPv4 => _family == 4;

    /// <summary>True for an IPv6 address.</summary>
    public bool IsIPv6 => _family == 6;

    /// <summary>4 for IPv4, 16 for IPv6, 0 when empty.</summary>
    public int Length => _family switch { 4 => 4, 6 => 16, _ => 0 };

    /// <summary>The address as 128 bits (IPv4-mapped for IPv4).</summary>
    public UInt128 Bits => new(_high, _low);

    /// <summary>
    /// Creates an address from 4 (IPv4) or 16 (IPv6) bytes in network order. An IPv4-mapped
    /// IPv6 address is taken as the IPv4 address it maps.
    /// </summary>
    /// <exception cref="ArgumentException">Neither 4 nor 16 bytes.</exception>
    public static NetAddress FromBytes(ReadOnlySpan<byte> address)
    {
        if (address.Length == 4)
        {
            return new NetAddress(0, (MappedPrefix << 32) | BinaryPrimitives.ReadUInt32BigEndian(address), 4);
        }
        if (address.Length == 16)
        {
            ulong high = BinaryPrimitives.ReadUInt64BigEndian(address);
            ulong low = BinaryPrimitives.ReadUInt64BigEndian(address[8..]);
            return new NetAddress(high, low, high == 0 && (low >> 32) == MappedPrefix ? (byte)4 : (byte)6);
        }
        throw new ArgumentException("An IP address is 4 or 16 bytes.", nameof(address));
    }

    /// <summary>An IPv4 address from its 32-bit value (network order as a number, e.g. 0x0A000001 = 10.0.0.1).</summary>
    public static NetAddress FromIPv4(uint value) => new(0, (MappedPrefix << 32) | value, 4);

    /// <summary>Converts an <see cref="IPAddress"/>.</summary>
    public static NetAddress FromIPAddress(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out int written);
        return FromBytes(bytes[..written]);
    }

    /// <summary>Parses a textual IPv4 or IPv6 address.</summary>
    /// <exception cref="FormatException">Not an IP address.</exception>
    public static NetAddress Parse(string text) =>
        IPAddress.TryParse(text, out var address) ? FromIPAddress(address) : throw new FormatException($"'{text}' is not an IP address.");

    /// <summary>The IPv4 address as a 32-bit number (only meaningful when <see cref="IsIPv4"/>).</summary>
    public uint IPv4Value => (uint)_low;

    /// <summary>Writes 4 (IPv4) or 16 (IPv6) bytes; returns how many.</summary>
    public int WriteBytes(Span<byte> destination)
    {
        if (IsIPv4)
        {
            BinaryPrimitives.WriteUInt32BigEndian(destination, (uint)_low);
            return 4;
        }
        BinaryPrimitives.WriteUInt64BigEndian(destination, _high);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], _low);
        return 16;
    }

    /// <summary>The address family.</summary>
    public AddressFamily AddressFamily => IsIPv4 ? AddressFamily.InterNetwork : AddressFamily.InterNetworkV6;

    /// <summary>Converts to an <see cref="IPAddress"/> (allocates; not for the data path).</summary>
    public IPAddress ToIPAddress()
    {
        Span<byte> bytes = stackalloc byte[16];
        int length = WriteBytes(bytes);
        return new IPAddress(bytes[..length]);
    }

    /// <inheritdoc/>
    public bool Equals(NetAddress other) => _high == other._high && _low == other._low && _family == other._family;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is NetAddress other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(_high, _low);

    /// <summary>Equality.</summary>
    public static bool operator ==(NetAddress left, NetAddress right) => left.Equals(right);

    /// <summary>Inequality.</summary>
    public static bool operator !=(NetAddress left, NetAddress right) => !left.Equals(right);

    /// <summary>The usual textual form, or <c>(none)</c>.</summary>
    public override string ToString() => IsEmpty ? "(none)" : ToIPAddress().ToString();
}
