using System.Buffers.Binary;

namespace MeshNet.Userspace.WireGuard;

/// <summary>
/// The few IP header facts cryptokey routing needs: the destination of an outbound packet,
/// and the length and source of a decrypted inbound one. Allocation-free; stateless.
/// </summary>
internal static class InnerPacket
{
    public const int IPv4HeaderSize = 20;
    public const int IPv6HeaderSize = 40;

    /// <summary>The destination address (4 or 16 bytes) of a well-formed IPv4/IPv6 packet.</summary>
    public static bool TryGetDestination(ReadOnlySpan<byte> packet, out ReadOnlySpan<byte> destination)
    {
        destination = default;
        if (packet.IsEmpty || packet.Length > WireGuardProtocol.MaxInnerPacketSize)
        {
            return false;
        }
        switch (packet[0] >> 4)
        {
            case 4 when packet.Length >= IPv4HeaderSize:
                destination = packet.Slice(16, 4);
                return true;
            case 6 when packet.Length >= IPv6HeaderSize:
                destination = packet.Slice(24, 16);
                return true;
            default:
                return false;
        }
    }

    /// <summary>
    /// Validates a decrypted packet and returns its true length (from the IP header; padding
    /// after it is trimmed) and its source address.
    /// </summary>
    public static bool TryParseInbound(ReadOnlySpan<byte> plaintext, out int length, out ReadOnlySpan<byte> source)
    {
        length = 0;
        source = default;
        if (plaintext.IsEmpty)
        {
            return false;
        }
        switch (plaintext[0] >> 4)
        {
            case 4:
                if (plaintext.Length < IPv4HeaderSize)
                {
                    return false;
                }
                int total4 = BinaryPrimitives.ReadUInt16BigEndian(plaintext[2..]);
                if (total4 < IPv4HeaderSize || total4 > plaintext.Length)
                {
                    return false;
                }
                length = total4;
                source = plaintext.Slice(12, 4);
                return true;
            case 6:
                if (plaintext.Length < IPv6HeaderSize)
                {
                    return false;
                }
                int total6 = BinaryPrimitives.ReadUInt16BigEndian(plaintext[4..]) + IPv6HeaderSize;
                if (total6 > plaintext.Length)
                {
                    return false;
                }
                length = total6;
                source = plaintext.Slice(8, 16);
                return true;
            default:
                return false;
        }
    }
}
