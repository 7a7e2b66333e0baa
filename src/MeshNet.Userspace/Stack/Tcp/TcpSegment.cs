using System.Buffers.Binary;
using MeshNet.Userspace.Net;
using MeshNet.Userspace.Stack.Ip;

namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>
/// One inbound TCP segment, parsed in place: header fields, options and the payload span.
/// Valid only during the call that received it.
/// </summary>
internal ref struct TcpSegment
{
    /// <summary>Bytes of a TCP header without options.</summary>
    public const int HeaderLength = 20;

    /// <summary>IANA protocol number of TCP.</summary>
    public const byte Protocol = 6;

    public ushort SourcePort;
    public ushort DestinationPort;
    public uint Seq;
    public uint Ack;
    public TcpFlags Flags;
    public ushort Window;
    public TcpOptions Options;
    public Span<byte> Payload;

    public readonly bool Syn => (Flags & TcpFlags.Syn) != 0;

    public readonly bool Fin => (Flags & TcpFlags.Fin) != 0;

    public readonly bool Rst => (Flags & TcpFlags.Rst) != 0;

    public readonly bool HasAck => (Flags & TcpFlags.Ack) != 0;

    /// <summary>SEG.LEN: payload plus one for SYN and one for FIN.</summary>
    public readonly int SeqLength => Payload.Length + (Syn ? 1 : 0) + (Fin ? 1 : 0);

    /// <summary>
    /// Parses and validates a segment: length, data offset, checksum over the pseudo-header,
    /// ports, options and flag combinations. Returns null when the segment is good, otherwise
    /// the reason to drop it.
    /// </summary>
    public static StackDropReason? TryParse(NetAddress source, NetAddress destination, Span<byte> packet, out TcpSegment segment)
    {
        segment = default;
        if (packet.Length < HeaderLength)
        {
            return StackDropReason.TcpMalformed;
        }
        int dataOffset = (packet[12] >> 4) * 4;
        if (dataOffset < HeaderLength || dataOffset > packet.Length)
        {
            return StackDropReason.TcpMalformed;
        }
        if (InternetChecksum.Transport(source, destination, Protocol, packet) != 0)
        {
            return StackDropReason.TcpMalformed;
        }
        segment.SourcePort = BinaryPrimitives.ReadUInt16BigEndian(packet);
        segment.DestinationPort = BinaryPrimitives.ReadUInt16BigEndian(packet[2..]);
        if (segment.SourcePort == 0 || segment.DestinationPort == 0)
        {
            return StackDropReason.TcpMalformed;
        }
        segment.Seq = BinaryPrimitives.ReadUInt32BigEndian(packet[4..]);
        segment.Ack = BinaryPrimitives.ReadUInt32BigEndian(packet[8..]);
        segment.Flags = (TcpFlags)packet[13];
        segment.Window = BinaryPrimitives.ReadUInt16BigEndian(packet[14..]);
        if (!TcpOptions.TryParse(packet[HeaderLength..dataOffset], out segment.Options))
        {
            return StackDropReason.TcpBadOptions;
        }
        var flags = segment.Flags;
        if ((flags & TcpFlags.Syn) != 0 && (flags & (TcpFlags.Fin | TcpFlags.Rst)) != 0)
        {
            return StackDropReason.TcpBadFlags;
        }
        segment.Payload = packet[dataOffset..];
        return null;
    }

    /// <summary>
    /// Writes a TCP header (without options; <paramref name="optionsLength"/> bytes of options
    /// follow it) at the start of <paramref name="destination"/>. The checksum field is zero.
    /// </summary>
    public static void WriteHeader(Span<byte> destination, ushort sourcePort, ushort destinationPort, uint seq, uint ack,
        TcpFlags flags, ushort window, int optionsLength)
    {
        BinaryPrimitives.WriteUInt16BigEndian(destination, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(destination[2..], destinationPort);
        BinaryPrimitives.WriteUInt32BigEndian(destination[4..], seq);
        BinaryPrimitives.WriteUInt32BigEndian(destination[8..], ack);
        destination[12] = (byte)(((HeaderLength + optionsLength) / 4) << 4);
        destination[13] = (byte)flags;
        BinaryPrimitives.WriteUInt16BigEndian(destination[14..], window);
        destination[16] = 0;
        destination[17] = 0;
        destination[18] = 0;
        destination[19] = 0;
    }

    /// <summary>Fills in the checksum of the segment in <paramref name="segment"/> (header, options and data).</summary>
    public static void SetChecksum(Span<byte> segment, NetAddress source, NetAddress destination)
    {
        segment[16] = 0;
        segment[17] = 0;
        ushort checksum = InternetChecksum.Transport(source, destination, Protocol, segment);
        BinaryPrimitives.WriteUInt16BigEndian(segment[16..], checksum);
    }
}
