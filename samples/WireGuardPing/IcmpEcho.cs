using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace MeshNet.Samples.WireGuardPing;

/// <summary>
/// ICMP echo ("ping") packets, written by hand: a WireGuard device carries whole IP packets, so
/// the sample makes the IPv4 or IPv6 header itself. Just what a ping needs: no IP options, no
/// IPv6 extension headers, no fragments.
/// </summary>
internal static class IcmpEcho
{
    private const byte ProtocolIcmp = 1; // IPv4's protocol field
    private const byte ProtocolIcmpV6 = 58; // IPv6's next header field

    private const byte V4EchoRequest = 8;
    private const byte V4EchoReply = 0;
    private const byte V6EchoRequest = 128;
    private const byte V6EchoReply = 129;

    private const int V4HeaderLength = 20;
    private const int V6HeaderLength = 40;
    private const int EchoHeaderLength = 8; // type, code, checksum, identifier, sequence number
    private const byte HopLimit = 64;

    /// <summary>
    /// An echo request from <paramref name="source"/> to <paramref name="destination"/> (both IPv4
    /// or both IPv6) carrying <paramref name="payload"/>, with every checksum filled in.
    /// </summary>
    public static byte[] Request(IPAddress source, IPAddress destination, ushort identifier, ushort sequence, ReadOnlySpan<byte> payload)
    {
        bool ipv6 = source.AddressFamily == AddressFamily.InterNetworkV6;
        int ipHeaderLength = ipv6 ? V6HeaderLength : V4HeaderLength;
        byte[] packet = new byte[ipHeaderLength + EchoHeaderLength + payload.Length];
        Span<byte> ip = packet.AsSpan(0, ipHeaderLength);
        Span<byte> icmp = packet.AsSpan(ipHeaderLength);

        // The echo message; code 0, checksum last.
        icmp[0] = ipv6 ? V6EchoRequest : V4EchoRequest;
        BinaryPrimitives.WriteUInt16BigEndian(icmp[4..], identifier);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[6..], sequence);
        payload.CopyTo(icmp[EchoHeaderLength..]);

        if (ipv6)
        {
            ip[0] = 0x60; // version 6; traffic class and flow label 0
            BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)icmp.Length); // payload length
            ip[6] = ProtocolIcmpV6;
            ip[7] = HopLimit;
            source.TryWriteBytes(ip[8..24], out _);
            destination.TryWriteBytes(ip[24..40], out _);
            // ICMPv6's checksum also covers a pseudo-header: both addresses, the message length and
            // the next header (RFC 4443 2.3, RFC 8200 8.1).
            uint pseudoHeader = Sum(ip[8..40]) + (uint)icmp.Length + ProtocolIcmpV6;
            BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], Checksum(icmp, pseudoHeader));
        }
        else
        {
            ip[0] = 0x45; // version 4, a header of five 32-bit words
            BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)packet.Length); // total length
            ip[6] = 0x40; // don't fragment
            ip[8] = HopLimit; // time to live
            ip[9] = ProtocolIcmp;
            source.TryWriteBytes(ip[12..16], out _);
            destination.TryWriteBytes(ip[16..20], out _);
            BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum(ip));
            BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], Checksum(icmp)); // ICMP (IPv4) has no pseudo-header
        }
        return packet;
    }

    /// <summary>
    /// Whether <paramref name="packet"/> is the echo reply to the request made by
    /// <see cref="Request"/> with <paramref name="identifier"/> and <paramref name="sequence"/>.
    /// </summary>
    public static bool IsReply(ReadOnlySpan<byte> packet, ushort identifier, ushort sequence)
    {
        ReadOnlySpan<byte> icmp;
        byte replyType;
        if (packet.Length >= V4HeaderLength && packet[0] >> 4 == 4 && packet[9] == ProtocolIcmp)
        {
            int headerLength = (packet[0] & 0x0F) * 4;
            if (headerLength < V4HeaderLength || headerLength > packet.Length)
            {
                return false;
            }
            icmp = packet[headerLength..];
            replyType = V4EchoReply;
        }
        else if (packet.Length >= V6HeaderLength && packet[0] >> 4 == 6 && packet[6] == ProtocolIcmpV6)
        {
            icmp = packet[V6HeaderLength..];
            replyType = V6EchoReply;
        }
        else
        {
            return false;
        }
        return icmp.Length >= EchoHeaderLength
            && icmp[0] == replyType
            && BinaryPrimitives.ReadUInt16BigEndian(icmp[4..]) == identifier
            && BinaryPrimitives.ReadUInt16BigEndian(icmp[6..]) == sequence;
    }

    /// <summary>
    /// The Internet checksum (RFC 1071) of <paramref name="data"/>, whose checksum field is still
    /// zero, starting from <paramref name="sum"/>: the one's complement of the one's-complement
    /// sum of the 16-bit big-endian words.
    /// </summary>
    private static ushort Checksum(ReadOnlySpan<byte> data, uint sum = 0)
    {
        sum += Sum(data);
        while (sum > 0xFFFF)
        {
            sum = (sum & 0xFFFF) + (sum >> 16); // fold the carries back in
        }
        return (ushort)~sum;
    }

    /// <summary>The plain sum of the 16-bit big-endian words of <paramref name="data"/> (an odd last byte is padded with zero).</summary>
    private static uint Sum(ReadOnlySpan<byte> data)
    {
        uint sum = 0;
        for (int i = 0; i + 1 < data.Length; i += 2)
        {
            sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        }
        if (data.Length % 2 == 1)
        {
            sum += (uint)data[^1] << 8;
        }
        return sum;
    }
}
