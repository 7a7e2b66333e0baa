using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace MeshNet.Userspace.Net;

/// <summary>
/// An IPv4 or IPv6 address and port as a plain value: copying, comparing and hashing it
/// never allocates, so it can travel with every datagram. IPv4 addresses are held in their
/// IPv4-mapped IPv6 form (<c>::ffff:a.b.c.d</c>), so the same endpoint compares equal however
/// a dual-stack socket reported it. <c>default</c> is "no endpoint".
/// </summary>
public readonly struct NetEndpoint : IEquatable<NetEndpoint>
{
    private const ulong MappedPrefix = 0x0000_FFFFUL;

    // The 16-byte (IPv6 or IPv4-mapped) address, big-endian halves.
    private readonly ulong _high;
    private readonly ulong _low;
    private readonly uint _scopeAndFlags; // bit 31: set (distinguishes a real ::/0 endpoint from default); low bits: IPv6 scope id

    /// <summary>The UDP port.</summary>
    public ushort Port { get; }

    private NetEndpoint(ulong high, ulong low, ushort port, uint scopeId)
    {
        _high = high;
        _low = low;
        Port = port;
        _scopeAndFlags = 0x8000_0000u | (scopeId & 0x7FFF_FFFFu);
    }

    /// <summary>True for <c>default</c>: no endpoint known.</summary>
    public bool IsEmpty => _scopeAndFlags == 0;

    /// <summary>True when the address is IPv4 (held as IPv4-mapped).</summary>
    public bool IsIPv4 => _high == 0 && (_low >> 32) == MappedPrefix;

    /// <summary>The IPv6 scope id (zero for IPv4 and global addresses).</summary>
    public uint ScopeId => _scopeAndFlags & 0x7FFF_FFFFu;

    /// <summary>
    /// Creates an endpoint from a raw address (4 bytes for IPv4, 16 for IPv6, network order) and port.
    /// </summary>
    /// <exception cref="ArgumentException">The address is neither 4 nor 16 bytes.</exception>
    public static NetEndpoint FromAddressBytes(ReadOnlySpan<byte> address, ushort port, uint scopeId = 0)
    {
        if (address.Length == 4)
        {
            return new NetEndpoint(0, (MappedPrefix << 32) | BinaryPrimitives.ReadUInt32BigEndian(address), port, 0);
        }
        if (address.Length == 16)
        {
            return new NetEndpoint(
                BinaryPrimitives.ReadUInt64BigEndian(address),
                BinaryPrimitives.ReadUInt64BigEndian(address[8..]),
                port,
                scopeId);
        }
        throw new ArgumentException("An IP address is 4 or 16 bytes.", nameof(address));
    }

    /// <summary>Creates an endpoint from an <see cref="IPEndPoint"/>.</summary>
    public static NetEndpoint FromIPEndPoint(IPEndPoint endPoint)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        Span<byte> bytes = stackalloc byte[16];
        endPoint.Address.TryWriteBytes(bytes, out int written);
        uint scope = endPoint.Address.AddressFamily == AddressFamily.InterNetworkV6 ? (uint)endPoint.Address.ScopeId : 0;
        return FromAddressBytes(bytes[..written], (ushort)endPoint.Port, scope);
    }

    /// <summary>Parses <c>1.2.3.4:51820</c> or <c>[fd00::1]:51820</c>.</summary>
    /// <exception cref="FormatException">Not an IP endpoint with a port.</exception>
    public static NetEndpoint Parse(string text)
    {
        if (!IPEndPoint.TryParse(text, out var endPoint) || endPoint.Port == 0 && !text.EndsWith(":0", StringComparison.Ordinal))
        {
            throw new FormatException($"'{text}' is not an IP endpoint such as 192.0.2.1:51820 or [2001:db8::1]:51820.");
        }
        return FromIPEndPoint(endPoint);
    }

    /// <summary>Creates an endpoint from an address and a port.</summary>
    public static NetEndpoint Create(NetAddress address, ushort port)
    {
        Span<byte> bytes = stackalloc byte[16];
        int length = address.WriteBytes(bytes);
        return FromAddressBytes(bytes[..length], port);
    }

    /// <summary>The address part.</summary>
    public NetAddress Address
    {
        get
        {
            Span<byte> bytes = stackalloc byte[16];
            return NetAddress.FromBytes(bytes[..WriteAddressBytes(bytes)]);
        }
    }

    /// <summary>
    /// Reads the endpoint out of a <see cref="SocketAddress"/> filled by a receive call, without allocating.
    /// </summary>
    /// <exception cref="ArgumentException">The address family is neither IPv4 nor IPv6.</exception>
    public static NetEndpoint FromSocketAddress(SocketAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        var buffer = address.Buffer.Span;
        ushort port = BinaryPrimitives.ReadUInt16BigEndian(buffer[2..]);
        switch (address.Family)
        {
            case AddressFamily.InterNetwork:
                return FromAddressBytes(buffer.Slice(4, 4), port);
            case AddressFamily.InterNetworkV6:
                uint scope = BinaryPrimitives.ReadUInt32LittleEndian(buffer.Slice(24, 4));
                return FromAddressBytes(buffer.Slice(8, 16), port, scope);
            default:
                throw new ArgumentException($"Unsupported address family {address.Family}.", nameof(address));
        }
    }

    /// <summary>
    /// Writes this endpoint into <paramref name="address"/> for a send call, without allocating.
    /// An IPv6 socket address receives IPv4 endpoints in their mapped form; an IPv4 socket
    /// address accepts only IPv4 endpoints.
    /// </summary>
    /// <returns>False when the endpoint cannot be expressed in that family.</returns>
    public bool TryWriteTo(SocketAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        var buffer = address.Buffer.Span;
        switch (address.Family)
        {
            case AddressFamily.InterNetwork:
                if (!IsIPv4)
                {
                    return false;
                }
                address.Size = 16;
                BinaryPrimitives.WriteUInt16BigEndian(buffer[2..], Port);
                BinaryPrimitives.WriteUInt32BigEndian(buffer[4..], (uint)_low);
                buffer.Slice(8, 8).Clear();
                return true;
            case AddressFamily.InterNetworkV6:
                address.Size = 28;
                BinaryPrimitives.WriteUInt16BigEndian(buffer[2..], Port);
                buffer.Slice(4, 4).Clear(); // flow info
                BinaryPrimitives.WriteUInt64BigEndian(buffer[8..], _high);
                BinaryPrimitives.WriteUInt64BigEndian(buffer[16..], _low);
                BinaryPrimitives.WriteUInt32LittleEndian(buffer[24..], ScopeId);
                return true;
            default:
                return false;
        }
    }

    /// <summary>
    /// Writes the address bytes (4 for IPv4, 16 for IPv6) into <paramref name="destination"/>.
    /// </summary>
    /// <returns>The number of bytes written.</returns>
    public int WriteAddressBytes(Span<byte> destination)
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

    /// <summary>
    /// Writes the 16-byte (IPv4-mapped for IPv4) address followed by the 2-byte port: a fixed,
    /// family-independent encoding for keyed hashes such as cookies.
    /// </summary>
    public void WriteCanonical(Span<byte> destination18)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination18, _high);
        BinaryPrimitives.WriteUInt64BigEndian(destination18[8..], _low);
        BinaryPrimitives.WriteUInt16BigEndian(destination18[16..], Port);
    }

    /// <summary>The address as 128 bits (IPv4-mapped for IPv4), for keyed tables.</summary>
    public UInt128 AddressBits => new(_high, _low);

    /// <summary>Converts to an <see cref="IPEndPoint"/> (allocates; not for the data path).</summary>
    public IPEndPoint ToIPEndPoint()
    {
        Span<byte> bytes = stackalloc byte[16];
        int length = WriteAddressBytes(bytes);
        var address = length == 4 ? new IPAddress(bytes[..4]) : new IPAddress(bytes, ScopeId);
        return new IPEndPoint(address, Port);
    }

    /// <inheritdoc/>
    public bool Equals(NetEndpoint other) =>
        _high == other._high && _low == other._low && Port == other.Port && _scopeAndFlags == other._scopeAndFlags;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is NetEndpoint other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(_high, _low, Port, _scopeAndFlags);

    /// <summary>Equality.</summary>
    public static bool operator ==(NetEndpoint left, NetEndpoint right) => left.Equals(right);

    /// <summary>Inequality.</summary>
    public static bool operator !=(NetEndpoint left, NetEndpoint right) => !left.Equals(right);

    /// <summary><c>1.2.3.4:51820</c>, <c>[fd00::1]:51820</c>, or <c>(none)</c>.</summary>
    public override string ToString() => IsEmpty ? "(none)" : ToIPEndPoint().ToString();
}
