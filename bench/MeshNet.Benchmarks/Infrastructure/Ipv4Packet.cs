using System.Buffers.Binary;
using System.Net;

namespace MeshNet.Benchmarks.Infrastructure;

/// <summary>Builds a well-formed IPv4/UDP packet (header checksum set, UDP checksum 0) of an exact size.</summary>
internal static class Ipv4Packet
{
    public const int HeaderSize = 20;
    public const int UdpHeaderSize = 8;

    public static byte[] Udp(IPAddress source, IPAddress destination, int totalLength, byte fill = 0x5A)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(totalLength, HeaderSize + UdpHeaderSize);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(totalLength, ushort.MaxValue);
        var packet = new byte[totalLength];
        packet[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)totalLength);
        packet[6] = 0x40; // don't fragment
        packet[8] = 64;   // TTL
        packet[9] = 17;   // UDP
        if (!source.TryWriteBytes(packet.AsSpan(12, 4), out _) || !destination.TryWriteBytes(packet.AsSpan(16, 4), out _))
        {
            throw new ArgumentException("IPv4 addresses are required.");
        }
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(10), HeaderChecksum(packet.AsSpan(0, HeaderSize)));

        var udp = packet.AsSpan(HeaderSize);
        BinaryPrimitives.WriteUInt16BigEndian(udp, 40000);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], 5201);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)udp.Length);
        udp[UdpHeaderSize..].Fill(fill);
        return packet;
    }

    private static ushort HeaderChecksum(ReadOnlySpan<byte> header)
    {
        uint sum = 0;
        for (int i = 0; i < header.Length; i += 2)
        {
            sum += BinaryPrimitives.ReadUInt16BigEndian(header[i..]);
        }
        while (sum > 0xFFFF)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        return (ushort)~sum;
    }
}
