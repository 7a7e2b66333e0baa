using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace MeshNet.Userspace.Tests.Stack;

/// <summary>
/// Builds and parses raw IPv4/IPv6 packets for stack tests, independently of the stack's own
/// code (its own checksum, its own fragmenter): headers with any field value, extension
/// headers, fragments.
/// </summary>
internal static class TestPackets
{
    public const byte Icmp = 1;
    public const byte Tcp = 6;
    public const byte Udp = 17;
    public const byte IcmpV6 = 58;

    public static bool IsV6(IPAddress address) => address.AddressFamily == AddressFamily.InterNetworkV6;

    public static ushort Checksum(ReadOnlySpan<byte> data, uint initial = 0)
    {
        uint sum = initial;
        int i = 0;
        for (; i + 1 < data.Length; i += 2)
        {
            sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        }
        if (i < data.Length)
        {
            sum += (uint)data[i] << 8;
        }
        while (sum >> 16 != 0)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        return (ushort)~sum;
    }

    public static uint PseudoSum(IPAddress source, IPAddress destination, byte protocol, int length)
    {
        Span<byte> bytes = stackalloc byte[32];
        source.TryWriteBytes(bytes, out int s);
        destination.TryWriteBytes(bytes[s..], out int d);
        uint sum = 0;
        for (int i = 0; i < s + d; i += 2)
        {
            sum += BinaryPrimitives.ReadUInt16BigEndian(bytes[i..]);
        }
        return sum + protocol + (uint)(length >> 16) + (uint)(length & 0xFFFF);
    }

    /// <summary>The transport checksum (UDP, TCP, ICMPv6) of <paramref name="segment"/>; 0 when it verifies.</summary>
    public static ushort TransportChecksum(IPAddress source, IPAddress destination, byte protocol, ReadOnlySpan<byte> segment) =>
        Checksum(segment, PseudoSum(source, destination, protocol, segment.Length));

    /// <summary>A UDP header and payload with a correct checksum.</summary>
    public static byte[] UdpSegment(IPAddress source, IPAddress destination, ushort sourcePort, ushort destinationPort, ReadOnlySpan<byte> data)
    {
        var udp = new byte[8 + data.Length];
        BinaryPrimitives.WriteUInt16BigEndian(udp, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(udp.AsSpan(2), destinationPort);
        BinaryPrimitives.WriteUInt16BigEndian(udp.AsSpan(4), (ushort)udp.Length);
        data.CopyTo(udp.AsSpan(8));
        ushort checksum = TransportChecksum(source, destination, Udp, udp);
        BinaryPrimitives.WriteUInt16BigEndian(udp.AsSpan(6), checksum == 0 ? (ushort)0xFFFF : checksum);
        return udp;
    }

    /// <summary>An ICMP or ICMPv6 message with a correct checksum.</summary>
    public static byte[] IcmpMessage(IPAddress source, IPAddress destination, byte type, byte code, uint rest, ReadOnlySpan<byte> body)
    {
        var icmp = new byte[8 + body.Length];
        icmp[0] = type;
        icmp[1] = code;
        BinaryPrimitives.WriteUInt32BigEndian(icmp.AsSpan(4), rest);
        body.CopyTo(icmp.AsSpan(8));
        ushort checksum = IsV6(source) ? TransportChecksum(source, destination, IcmpV6, icmp) : Checksum(icmp);
        BinaryPrimitives.WriteUInt16BigEndian(icmp.AsSpan(2), checksum);
        return icmp;
    }

    public static byte[] EchoRequest(IPAddress source, IPAddress destination, ushort id, ushort sequence, ReadOnlySpan<byte> data) =>
        Ip(source, destination, IsV6(source) ? IcmpV6 : Icmp,
            IcmpMessage(source, destination, IsV6(source) ? (byte)128 : (byte)8, 0, ((uint)id << 16) | sequence, data));

    public static byte[] UdpPacket(IPAddress source, IPAddress destination, ushort sourcePort, ushort destinationPort, ReadOnlySpan<byte> data) =>
        Ip(source, destination, Udp, UdpSegment(source, destination, sourcePort, destinationPort, data));

    /// <summary>An IPv4 or IPv6 packet (by the source's family) around <paramref name="payload"/>.</summary>
    public static byte[] Ip(IPAddress source, IPAddress destination, byte protocol, ReadOnlySpan<byte> payload, ushort id = 0x1234) =>
        IsV6(source) ? Ipv6(source, destination, protocol, payload) : Ipv4(source, destination, protocol, payload, id);

    /// <summary>An IPv4 packet; <paramref name="options"/> (a multiple of 4 bytes) lengthen the header.</summary>
    public static byte[] Ipv4(IPAddress source, IPAddress destination, byte protocol, ReadOnlySpan<byte> payload, ushort id = 0x1234,
        ushort flagsAndOffset = 0, byte ttl = 64, ReadOnlySpan<byte> options = default)
    {
        int headerLength = 20 + options.Length;
        var packet = new byte[headerLength + payload.Length];
        packet[0] = (byte)(0x40 | (headerLength / 4));
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)packet.Length);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), id);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(6), flagsAndOffset);
        packet[8] = ttl;
        packet[9] = protocol;
        source.TryWriteBytes(packet.AsSpan(12, 4), out _);
        destination.TryWriteBytes(packet.AsSpan(16, 4), out _);
        options.CopyTo(packet.AsSpan(20));
        FixIpv4Checksum(packet);
        payload.CopyTo(packet.AsSpan(headerLength));
        return packet;
    }

    public static void FixIpv4Checksum(Span<byte> packet)
    {
        int headerLength = (packet[0] & 0x0F) * 4;
        packet[10] = packet[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(packet[10..], Checksum(packet[..headerLength]));
    }

    /// <summary>An IPv6 packet; <paramref name="payload"/> includes any extension headers.</summary>
    public static byte[] Ipv6(IPAddress source, IPAddress destination, byte nextHeader, ReadOnlySpan<byte> payload, byte hopLimit = 64)
    {
        var packet = new byte[40 + payload.Length];
        packet[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), (ushort)payload.Length);
        packet[6] = nextHeader;
        packet[7] = hopLimit;
        source.TryWriteBytes(packet.AsSpan(8, 16), out _);
        destination.TryWriteBytes(packet.AsSpan(24, 16), out _);
        payload.CopyTo(packet.AsSpan(40));
        return packet;
    }

    /// <summary>An IPv6 extension header of the common layout: next header, length, <paramref name="body"/> (6 + 8n bytes).</summary>
    public static byte[] ExtensionHeader(byte nextHeader, ReadOnlySpan<byte> body)
    {
        if ((body.Length + 2) % 8 != 0)
        {
            throw new ArgumentException("An extension header is a multiple of 8 bytes.");
        }
        var header = new byte[body.Length + 2];
        header[0] = nextHeader;
        header[1] = (byte)((header.Length / 8) - 1);
        body.CopyTo(header.AsSpan(2));
        return header;
    }

    /// <summary>An IPv6 fragment header.</summary>
    public static byte[] FragmentHeader(byte nextHeader, int offset, bool more, uint id)
    {
        var header = new byte[8];
        header[0] = nextHeader;
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(2), (ushort)(offset | (more ? 1 : 0)));
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(4), id);
        return header;
    }

    public static byte[] Concat(params byte[][] parts)
    {
        var result = new byte[parts.Sum(part => part.Length)];
        int offset = 0;
        foreach (var part in parts)
        {
            part.CopyTo(result, offset);
            offset += part.Length;
        }
        return result;
    }

    /// <summary>One fragment of a datagram: IPv4 header with MF/offset, or IPv6 header + fragment header.</summary>
    public static byte[] Fragment(IPAddress source, IPAddress destination, byte protocol, ReadOnlySpan<byte> datagramPayload,
        int offset, int length, bool more, uint id)
    {
        var data = datagramPayload.Slice(offset, length);
        if (IsV6(source))
        {
            return Ipv6(source, destination, 44, Concat(FragmentHeader(protocol, offset, more, id), data.ToArray()));
        }
        return Ipv4(source, destination, protocol, data, (ushort)id, (ushort)((more ? 0x2000 : 0) | (offset / 8)));
    }

    /// <summary>Splits a transport payload into fragments of <paramref name="chunk"/> bytes (a multiple of 8).</summary>
    public static List<byte[]> Fragments(IPAddress source, IPAddress destination, byte protocol, byte[] datagramPayload, int chunk, uint id)
    {
        var fragments = new List<byte[]>();
        for (int offset = 0; offset < datagramPayload.Length; offset += chunk)
        {
            int length = Math.Min(chunk, datagramPayload.Length - offset);
            fragments.Add(Fragment(source, destination, protocol, datagramPayload, offset, length, offset + length < datagramPayload.Length, id));
        }
        return fragments;
    }

    /// <summary>Parses a packet the stack sent, checking its IP header is well formed.</summary>
    public static ParsedPacket Parse(byte[] packet)
    {
        int version = packet[0] >> 4;
        if (version == 4)
        {
            int headerLength = (packet[0] & 0x0F) * 4;
            BinaryPrimitives.ReadUInt16BigEndian(packet.AsSpan(2)).Should().Be((ushort)packet.Length, "the total length matches");
            Checksum(packet.AsSpan(0, headerLength)).Should().Be(0, "the IPv4 header checksum verifies");
            ushort flags = BinaryPrimitives.ReadUInt16BigEndian(packet.AsSpan(6));
            return new ParsedPacket(
                packet, 4, new IPAddress(packet.AsSpan(12, 4)), new IPAddress(packet.AsSpan(16, 4)), packet[9],
                packet[8], BinaryPrimitives.ReadUInt16BigEndian(packet.AsSpan(4)), (flags & 0x1FFF) * 8, (flags & 0x2000) != 0,
                (flags & 0x4000) != 0, IsFragment: (flags & 0x3FFF) != 0, packet[headerLength..]);
        }
        version.Should().Be(6);
        BinaryPrimitives.ReadUInt16BigEndian(packet.AsSpan(4)).Should().Be((ushort)(packet.Length - 40), "the payload length matches");
        var source = new IPAddress(packet.AsSpan(8, 16));
        var destination = new IPAddress(packet.AsSpan(24, 16));
        if (packet[6] == 44)
        {
            ushort field = BinaryPrimitives.ReadUInt16BigEndian(packet.AsSpan(42));
            return new ParsedPacket(packet, 6, source, destination, packet[40], packet[7], BinaryPrimitives.ReadUInt32BigEndian(packet.AsSpan(44)),
                field & 0xFFF8, (field & 1) != 0, DontFragment: false, IsFragment: true, packet[48..]);
        }
        return new ParsedPacket(packet, 6, source, destination, packet[6], packet[7], 0, 0, false, false, false, packet[40..]);
    }

    /// <summary>Joins the fragments of one datagram (any order) into its transport payload.</summary>
    public static byte[] Join(IEnumerable<ParsedPacket> fragments)
    {
        var list = fragments.OrderBy(fragment => fragment.FragmentOffset).ToList();
        list.Select(fragment => fragment.Id).Distinct().Should().ContainSingle("every fragment carries the datagram's identification");
        list[^1].MoreFragments.Should().BeFalse();
        var result = new List<byte>();
        foreach (var fragment in list)
        {
            fragment.FragmentOffset.Should().Be(result.Count, "fragments are contiguous");
            result.AddRange(fragment.Payload);
        }
        return [.. result];
    }
}

/// <summary>A packet the stack sent, parsed (Payload: after the IP header, or after the IPv6 fragment header).</summary>
internal sealed record ParsedPacket(byte[] Raw, int Version, IPAddress Source, IPAddress Destination, byte Protocol, byte HopLimit,
    uint Id, int FragmentOffset, bool MoreFragments, bool DontFragment, bool IsFragment, byte[] Payload);
