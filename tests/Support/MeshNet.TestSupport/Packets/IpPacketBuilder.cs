using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace MeshNet.TestSupport.Packets;

/// <summary>
/// Builds and parses well-formed IPv4/IPv6 packets (UDP and ICMP echo) with correct
/// checksums, so tests can exchange real packets with a Linux kernel through a tunnel.
/// Test-only code shared by the test projects.
/// </summary>
public static class IpPacketBuilder
{
    /// <summary>The IP protocol number of ICMP.</summary>
    public const byte ProtocolIcmp = 1;

    /// <summary>The IP protocol number of TCP.</summary>
    public const byte ProtocolTcp = 6;

    /// <summary>The IP protocol number of UDP.</summary>
    public const byte ProtocolUdp = 17;

    /// <summary>The IP protocol number of ICMPv6.</summary>
    public const byte ProtocolIcmpV6 = 58;

    /// <summary>An IPv4 or IPv6 UDP packet, depending on the address family.</summary>
    public static byte[] Udp(IPAddress source, IPAddress destination, ushort sourcePort, ushort destinationPort, ReadOnlySpan<byte> payload)
    {
        var udp = new byte[8 + payload.Length];
        BinaryPrimitives.WriteUInt16BigEndian(udp, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(udp.AsSpan(2), destinationPort);
        BinaryPrimitives.WriteUInt16BigEndian(udp.AsSpan(4), (ushort)udp.Length);
        payload.CopyTo(udp.AsSpan(8));
        ushort checksum = TransportChecksum(source, destination, ProtocolUdp, udp);
        BinaryPrimitives.WriteUInt16BigEndian(udp.AsSpan(6), checksum == 0 ? (ushort)0xFFFF : checksum);
        return Wrap(source, destination, ProtocolUdp, udp);
    }

    /// <summary>An IPv4 or IPv6 TCP segment (20-byte header, no options) with a valid checksum.</summary>
    public static byte[] Tcp(IPAddress source, IPAddress destination, ushort sourcePort, ushort destinationPort, uint sequence,
        uint acknowledgment, byte flags, ReadOnlySpan<byte> payload = default)
    {
        var tcp = new byte[20 + payload.Length];
        BinaryPrimitives.WriteUInt16BigEndian(tcp, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(2), destinationPort);
        BinaryPrimitives.WriteUInt32BigEndian(tcp.AsSpan(4), sequence);
        BinaryPrimitives.WriteUInt32BigEndian(tcp.AsSpan(8), acknowledgment);
        tcp[12] = 5 << 4;
        tcp[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(14), 65535);
        payload.CopyTo(tcp.AsSpan(20));
        BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(16), TransportChecksum(source, destination, ProtocolTcp, tcp));
        return Wrap(source, destination, ProtocolTcp, tcp);
    }

    /// <summary>
    /// Splits an IPv4 packet (as <see cref="Wrap"/> makes it) into two fragments, the first
    /// carrying <paramref name="firstLength"/> bytes of its payload (a multiple of 8).
    /// </summary>
    public static byte[][] FragmentV4(byte[] packet, int firstLength, ushort identification)
    {
        if (firstLength % 8 != 0 || firstLength <= 0 || firstLength >= packet.Length - 20)
        {
            throw new ArgumentOutOfRangeException(nameof(firstLength));
        }
        var payload = packet.AsSpan(20);
        byte[] Piece(ReadOnlySpan<byte> part, int offset, bool more)
        {
            var fragment = new byte[20 + part.Length];
            packet.AsSpan(0, 20).CopyTo(fragment);
            BinaryPrimitives.WriteUInt16BigEndian(fragment.AsSpan(2), (ushort)fragment.Length);
            BinaryPrimitives.WriteUInt16BigEndian(fragment.AsSpan(4), identification);
            BinaryPrimitives.WriteUInt16BigEndian(fragment.AsSpan(6), (ushort)((more ? 0x2000 : 0) | (offset / 8)));
            fragment[10] = fragment[11] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(fragment.AsSpan(10), Fold(Sum(fragment.AsSpan(0, 20), 0)));
            part.CopyTo(fragment.AsSpan(20));
            return fragment;
        }
        return [Piece(payload[..firstLength], 0, more: true), Piece(payload[firstLength..], firstLength, more: false)];
    }

    /// <summary>An ICMP (IPv4) or ICMPv6 echo request.</summary>
    public static byte[] EchoRequest(IPAddress source, IPAddress destination, ushort identifier, ushort sequence, ReadOnlySpan<byte> payload)
    {
        bool v6 = source.AddressFamily == AddressFamily.InterNetworkV6;
        var icmp = new byte[8 + payload.Length];
        icmp[0] = v6 ? (byte)128 : (byte)8;
        BinaryPrimitives.WriteUInt16BigEndian(icmp.AsSpan(4), identifier);
        BinaryPrimitives.WriteUInt16BigEndian(icmp.AsSpan(6), sequence);
        payload.CopyTo(icmp.AsSpan(8));
        ushort checksum = v6
            ? TransportChecksum(source, destination, ProtocolIcmpV6, icmp)
            : Fold(Sum(icmp, 0));
        BinaryPrimitives.WriteUInt16BigEndian(icmp.AsSpan(2), checksum);
        return Wrap(source, destination, v6 ? ProtocolIcmpV6 : ProtocolIcmp, icmp);
    }

    /// <summary>An ICMP (IPv4) or ICMPv6 echo reply.</summary>
    public static byte[] EchoReply(IPAddress source, IPAddress destination, ushort identifier, ushort sequence, ReadOnlySpan<byte> payload)
    {
        var packet = EchoRequest(source, destination, identifier, sequence, payload);
        bool v6 = source.AddressFamily == AddressFamily.InterNetworkV6;
        int offset = v6 ? 40 : 20;
        packet[offset] = v6 ? (byte)129 : (byte)0;
        // Type changes by 8 (IPv4) or 1 (IPv6) in the high byte of the first word: adjust the checksum.
        packet[offset + 2] = packet[offset + 3] = 0;
        var icmp = packet.AsSpan(offset);
        ushort checksum = v6 ? TransportChecksum(source, destination, ProtocolIcmpV6, icmp) : Fold(Sum(icmp, 0));
        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], checksum);
        return packet;
    }

    /// <summary>True for an ICMP/ICMPv6 echo request; returns its identifier, sequence and payload.</summary>
    public static bool TryParseEchoRequest(ReadOnlySpan<byte> packet, out IPAddress source, out IPAddress destination,
        out ushort identifier, out ushort sequence, out byte[] payload)
    {
        identifier = sequence = 0;
        payload = [];
        if (!TryParseIp(packet, out source, out destination, out byte protocol, out var body) || body.Length < 8)
        {
            return false;
        }
        bool request = (protocol == ProtocolIcmp && body[0] == 8) || (protocol == ProtocolIcmpV6 && body[0] == 128);
        if (!request)
        {
            return false;
        }
        identifier = BinaryPrimitives.ReadUInt16BigEndian(body[4..]);
        sequence = BinaryPrimitives.ReadUInt16BigEndian(body[6..]);
        payload = body[8..].ToArray();
        return true;
    }

    /// <summary>Wraps a transport payload in an IPv4 (with header checksum) or IPv6 header.</summary>
    public static byte[] Wrap(IPAddress source, IPAddress destination, byte protocol, ReadOnlySpan<byte> body)
    {
        if (source.AddressFamily == AddressFamily.InterNetwork)
        {
            var packet = new byte[20 + body.Length];
            packet[0] = 0x45;
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)packet.Length);
            packet[6] = 0x40; // don't fragment
            packet[8] = 64;
            packet[9] = protocol;
            source.TryWriteBytes(packet.AsSpan(12, 4), out _);
            destination.TryWriteBytes(packet.AsSpan(16, 4), out _);
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(10), Fold(Sum(packet.AsSpan(0, 20), 0)));
            body.CopyTo(packet.AsSpan(20));
            return packet;
        }
        var v6 = new byte[40 + body.Length];
        v6[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(v6.AsSpan(4), (ushort)body.Length);
        v6[6] = protocol;
        v6[7] = 64;
        source.TryWriteBytes(v6.AsSpan(8, 16), out _);
        destination.TryWriteBytes(v6.AsSpan(24, 16), out _);
        body.CopyTo(v6.AsSpan(40));
        return v6;
    }

    /// <summary>Parses a UDP packet; false for anything else.</summary>
    public static bool TryParseUdp(ReadOnlySpan<byte> packet, out IPAddress source, out IPAddress destination,
        out ushort sourcePort, out ushort destinationPort, out byte[] payload)
    {
        source = destination = IPAddress.None;
        sourcePort = destinationPort = 0;
        payload = [];
        if (!TryParseIp(packet, out source, out destination, out byte protocol, out var body) || protocol != ProtocolUdp || body.Length < 8)
        {
            return false;
        }
        sourcePort = BinaryPrimitives.ReadUInt16BigEndian(body);
        destinationPort = BinaryPrimitives.ReadUInt16BigEndian(body[2..]);
        int length = BinaryPrimitives.ReadUInt16BigEndian(body[4..]);
        if (length < 8 || length > body.Length)
        {
            return false;
        }
        payload = body[8..length].ToArray();
        return true;
    }

    /// <summary>True for an ICMP/ICMPv6 echo reply with the given identifier and sequence.</summary>
    public static bool IsEchoReply(ReadOnlySpan<byte> packet, ushort identifier, ushort sequence, out int payloadLength)
    {
        payloadLength = 0;
        if (!TryParseIp(packet, out _, out _, out byte protocol, out var body) || body.Length < 8)
        {
            return false;
        }
        bool reply = (protocol == ProtocolIcmp && body[0] == 0) || (protocol == ProtocolIcmpV6 && body[0] == 129);
        payloadLength = body.Length - 8;
        return reply && BinaryPrimitives.ReadUInt16BigEndian(body[4..]) == identifier &&
            BinaryPrimitives.ReadUInt16BigEndian(body[6..]) == sequence;
    }

    /// <summary>Splits an IPv4/IPv6 packet (no extension headers, no fragments) into addresses, protocol and body.</summary>
    public static bool TryParseIp(ReadOnlySpan<byte> packet, out IPAddress source, out IPAddress destination, out byte protocol, out ReadOnlySpan<byte> body)
    {
        source = destination = IPAddress.None;
        protocol = 0;
        body = default;
        if (packet.Length >= 20 && packet[0] >> 4 == 4)
        {
            int headerLength = (packet[0] & 0x0F) * 4;
            int total = BinaryPrimitives.ReadUInt16BigEndian(packet[2..]);
            if (headerLength < 20 || total > packet.Length || total < headerLength)
            {
                return false;
            }
            source = new IPAddress(packet.Slice(12, 4));
            destination = new IPAddress(packet.Slice(16, 4));
            protocol = packet[9];
            body = packet[headerLength..total];
            return true;
        }
        if (packet.Length >= 40 && packet[0] >> 4 == 6)
        {
            int payloadLength = BinaryPrimitives.ReadUInt16BigEndian(packet[4..]);
            if (40 + payloadLength > packet.Length)
            {
                return false;
            }
            source = new IPAddress(packet.Slice(8, 16));
            destination = new IPAddress(packet.Slice(24, 16));
            protocol = packet[6];
            body = packet.Slice(40, payloadLength);
            return true;
        }
        return false;
    }

    private static ushort TransportChecksum(IPAddress source, IPAddress destination, byte protocol, ReadOnlySpan<byte> segment)
    {
        Span<byte> pseudo = stackalloc byte[40];
        int length;
        if (source.AddressFamily == AddressFamily.InterNetwork)
        {
            source.TryWriteBytes(pseudo, out _);
            destination.TryWriteBytes(pseudo[4..], out _);
            pseudo[8] = 0;
            pseudo[9] = protocol;
            BinaryPrimitives.WriteUInt16BigEndian(pseudo[10..], (ushort)segment.Length);
            length = 12;
        }
        else
        {
            source.TryWriteBytes(pseudo, out _);
            destination.TryWriteBytes(pseudo[16..], out _);
            BinaryPrimitives.WriteUInt32BigEndian(pseudo[32..], (uint)segment.Length);
            pseudo[36] = pseudo[37] = pseudo[38] = 0;
            pseudo[39] = protocol;
            length = 40;
        }
        return Fold(Sum(segment, Sum(pseudo[..length], 0)));
    }

    private static uint Sum(ReadOnlySpan<byte> data, uint sum)
    {
        int i = 0;
        for (; i + 1 < data.Length; i += 2)
        {
            sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        }
        if (i < data.Length)
        {
            sum += (uint)data[i] << 8;
        }
        return sum;
    }

    private static ushort Fold(uint sum)
    {
        while (sum >> 16 != 0)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        return (ushort)~sum;
    }
}
