using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using MeshNet.Userspace.Link;
using MeshNet.Userspace.Net;

namespace MeshNet.Userspace.Stack.Ip;

/// <summary>
/// The IP send path: prefixes an IPv4 or IPv6 header in the header room the transport left,
/// fragments datagrams larger than the MTU, and hands each packet to the link synchronously.
/// </summary>
/// <remarks>
/// <para>Thread-safe and lock-free: the only shared state is the IPv4 identification counters
/// (atomic). An unfragmented packet is sent from the caller's buffer without copying or
/// allocating; a fragmented one rents one MTU-sized buffer from <see cref="ArrayPool{T}.Shared"/>
/// for all its fragments.</para>
/// <para>IPv4 identification (RFC 6864): a counter per bucket of a keyed hash of (source,
/// destination, protocol), as Linux does, so that the value seen by one peer reveals nothing
/// about traffic to others; the buckets start at random values. DF is set on TCP packets (path
/// MTU discovery) and never on fragments. IPv6 fragments carry a random 32-bit identification
/// (RFC 7739). The stack never sends atomic fragments (RFC 8021).</para>
/// <para>After <see cref="Close"/>, every send returns false.</para>
/// </remarks>
internal sealed class IpOutput : IIpOutput
{
    private const int IdBucketCount = 2048; // a power of two
    private const ushort DontFragment = 0x4000;
    private const ushort MoreFragments = 0x2000;

    private readonly StackContext _context;
    private readonly IPacketSink _link;
    private readonly int _mtu;
    private readonly int[] _ipv4Ids = new int[IdBucketCount];
    private readonly int _idSalt;
    private volatile bool _closed;

    public IpOutput(StackContext context)
    {
        _context = context;
        _link = context.Options.Link!;
        _mtu = context.Mtu;
        RandomNumberGenerator.Fill(MemoryMarshal.AsBytes(_ipv4Ids.AsSpan()));
        _idSalt = RandomNumberGenerator.GetInt32(int.MaxValue);
    }

    /// <summary>Stops sending: later calls of <see cref="Send"/> return false. Idempotent.</summary>
    public void Close() => _closed = true;

    /// <inheritdoc/>
    public int MaxTransportPayload(NetAddress destination) =>
        _mtu - (destination.IsIPv4 ? IpProtocol.Ipv4HeaderLength : IpProtocol.Ipv6HeaderLength);

    /// <inheritdoc/>
    /// <remarks>
    /// Returns false without sending when the stack is closed, the addresses are empty or of
    /// different families, the buffer is too small for <paramref name="length"/>, the datagram
    /// would exceed 65,535 bytes, or the link threw (logged).
    /// </remarks>
    public bool Send(NetAddress source, NetAddress destination, byte protocol, byte[] buffer, int length, byte trafficClass = 0)
    {
        if (_closed || source.IsEmpty || destination.IsEmpty || source.IsIPv4 != destination.IsIPv4 ||
            length < 0 || buffer is null || buffer.Length - IIpOutput.HeaderRoom < length)
        {
            return false;
        }
        if (_context.Filter is { } filter)
        {
            filter.OnSent(DatagramHeaders.Parse(source, destination, protocol, buffer.AsSpan(IIpOutput.HeaderRoom, length)));
        }
        return source.IsIPv4
            ? SendIPv4(source, destination, protocol, buffer, length, trafficClass)
            : SendIPv6(source, destination, protocol, buffer, length, trafficClass);
    }

    private bool SendIPv4(NetAddress source, NetAddress destination, byte protocol, byte[] buffer, int length, byte tos)
    {
        const int HeaderLength = IpProtocol.Ipv4HeaderLength;
        int total = HeaderLength + length;
        if (total > IpProtocol.MaxDatagram)
        {
            return false;
        }
        ushort id = NextIPv4Id(source, destination, protocol);
        if (total <= _mtu)
        {
            Span<byte> packet = buffer.AsSpan(IIpOutput.HeaderRoom - HeaderLength, total);
            WriteIPv4Header(packet, total, id, protocol == IpProtocol.Tcp ? DontFragment : (ushort)0, protocol, tos, source, destination);
            return Emit(packet);
        }

        int chunk = (_mtu - HeaderLength) & ~7;
        byte[] fragment = ArrayPool<byte>.Shared.Rent(HeaderLength + chunk);
        try
        {
            for (int offset = 0; offset < length; offset += chunk)
            {
                int size = Math.Min(chunk, length - offset);
                bool more = offset + size < length;
                Span<byte> packet = fragment.AsSpan(0, HeaderLength + size);
                ushort flags = (ushort)((more ? MoreFragments : 0) | (offset >> 3));
                WriteIPv4Header(packet, HeaderLength + size, id, flags, protocol, tos, source, destination);
                buffer.AsSpan(IIpOutput.HeaderRoom + offset, size).CopyTo(packet[HeaderLength..]);
                if (!Emit(packet))
                {
                    return false;
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(fragment);
        }
        _context.Counters.DatagramFragmented();
        return true;
    }

    private bool SendIPv6(NetAddress source, NetAddress destination, byte protocol, byte[] buffer, int length, byte trafficClass)
    {
        const int HeaderLength = IpProtocol.Ipv6HeaderLength;
        if (length > IpProtocol.MaxDatagram)
        {
            return false;
        }
        if (HeaderLength + length <= _mtu)
        {
            Span<byte> packet = buffer.AsSpan(IIpOutput.HeaderRoom - HeaderLength, HeaderLength + length);
            WriteIPv6Header(packet, length, protocol, trafficClass, source, destination);
            return Emit(packet);
        }

        const int FragmentedHeaderLength = HeaderLength + IpProtocol.FragmentHeaderLength;
        int chunk = (_mtu - FragmentedHeaderLength) & ~7;
        Span<byte> random = stackalloc byte[4];
        RandomNumberGenerator.Fill(random);
        uint id = BinaryPrimitives.ReadUInt32BigEndian(random);
        byte[] fragment = ArrayPool<byte>.Shared.Rent(FragmentedHeaderLength + chunk);
        try
        {
            for (int offset = 0; offset < length; offset += chunk)
            {
                int size = Math.Min(chunk, length - offset);
                bool more = offset + size < length;
                Span<byte> packet = fragment.AsSpan(0, FragmentedHeaderLength + size);
                WriteIPv6Header(packet, IpProtocol.FragmentHeaderLength + size, IpProtocol.Fragment, trafficClass, source, destination);
                Span<byte> header = packet.Slice(HeaderLength, IpProtocol.FragmentHeaderLength);
                header[0] = protocol;
                header[1] = 0;
                BinaryPrimitives.WriteUInt16BigEndian(header[2..], (ushort)(offset | (more ? 1 : 0)));
                BinaryPrimitives.WriteUInt32BigEndian(header[4..], id);
                buffer.AsSpan(IIpOutput.HeaderRoom + offset, size).CopyTo(packet[FragmentedHeaderLength..]);
                if (!Emit(packet))
                {
                    return false;
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(fragment);
        }
        _context.Counters.DatagramFragmented();
        return true;
    }

    private static void WriteIPv4Header(Span<byte> packet, int total, ushort id, ushort flagsAndOffset, byte protocol, byte tos,
        NetAddress source, NetAddress destination)
    {
        packet[0] = 0x45;
        packet[1] = tos;
        BinaryPrimitives.WriteUInt16BigEndian(packet[2..], (ushort)total);
        BinaryPrimitives.WriteUInt16BigEndian(packet[4..], id);
        BinaryPrimitives.WriteUInt16BigEndian(packet[6..], flagsAndOffset);
        packet[8] = IpProtocol.DefaultHopLimit;
        packet[9] = protocol;
        packet[10] = 0;
        packet[11] = 0;
        source.WriteBytes(packet[12..]);
        destination.WriteBytes(packet[16..]);
        BinaryPrimitives.WriteUInt16BigEndian(packet[10..], InternetChecksum.Compute(packet[..IpProtocol.Ipv4HeaderLength]));
    }

    private static void WriteIPv6Header(Span<byte> packet, int payloadLength, byte nextHeader, byte trafficClass,
        NetAddress source, NetAddress destination)
    {
        BinaryPrimitives.WriteUInt32BigEndian(packet, 0x6000_0000u | ((uint)trafficClass << 20));
        BinaryPrimitives.WriteUInt16BigEndian(packet[4..], (ushort)payloadLength);
        packet[6] = nextHeader;
        packet[7] = IpProtocol.DefaultHopLimit;
        source.WriteBytes(packet[8..]);
        destination.WriteBytes(packet[24..]);
    }

    private ushort NextIPv4Id(NetAddress source, NetAddress destination, byte protocol)
    {
        int bucket = HashCode.Combine(_idSalt, source, destination, protocol) & (IdBucketCount - 1);
        return (ushort)Interlocked.Increment(ref _ipv4Ids[bucket]);
    }

    private bool Emit(ReadOnlySpan<byte> packet)
    {
        try
        {
            _link.WritePacket(packet);
        }
        catch (Exception e)
        {
            StackLog.LinkError(_context.Logger, e);
            return false;
        }
        _context.Counters.PacketSent();
        return true;
    }
}
