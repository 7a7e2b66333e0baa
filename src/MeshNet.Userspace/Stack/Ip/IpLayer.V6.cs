using System.Buffers;
using System.Buffers.Binary;
using MeshNet.Userspace.Net;

namespace MeshNet.Userspace.Stack.Ip;

// IPv6 input: the fixed header, extension headers (RFC 8200 4) and fragments.
internal sealed partial class IpLayer
{
    /// <summary>Extension headers accepted before the upper-layer header; more is an attack, not a packet.</summary>
    private const int MaxExtensionHeaders = 8;

    private void ReceiveIPv6(ReadOnlySpan<byte> packet)
    {
        if (packet.Length < IpProtocol.Ipv6HeaderLength)
        {
            Drop(StackDropReason.IpTruncated);
            return;
        }
        int total = IpProtocol.Ipv6HeaderLength + BinaryPrimitives.ReadUInt16BigEndian(packet[4..]);
        if (total > packet.Length)
        {
            Drop(StackDropReason.IpTruncated);
            return;
        }
        packet = packet[..total];

        var destination = NetAddress.FromBytes(packet.Slice(24, 16));
        if (destination.IsIPv4 || !_context.IsLocal(destination))
        {
            Drop(StackDropReason.IpNotForUs);
            return;
        }
        var source = NetAddress.FromBytes(packet.Slice(8, 16));
        if (source.IsIPv4 || !IpAddressRules.IsUnicast(source) || _context.IsLocal(source))
        {
            Drop(StackDropReason.IpBadSource);
            return;
        }
        ProcessIPv6(packet, owned: null, source, destination, reassembled: false);
    }

    /// <summary>
    /// Walks the extension headers of a validated IPv6 packet and delivers it, or passes a
    /// fragment to the reassembler. <paramref name="owned"/> is the pooled buffer holding a
    /// reassembled <paramref name="packet"/> (null for a packet from the link, which is copied
    /// before delivery).
    /// </summary>
    private void ProcessIPv6(ReadOnlySpan<byte> packet, byte[]? owned, NetAddress source, NetAddress destination, bool reassembled)
    {
        byte next = packet[6];
        int nextField = 6;
        int offset = IpProtocol.Ipv6HeaderLength;
        for (int headers = 0; ; headers++)
        {
            if (headers > MaxExtensionHeaders)
            {
                Drop(StackDropReason.IpBadExtensionHeader);
                return;
            }
            int length;
            switch (next)
            {
                case IpProtocol.HopByHopOptions when offset != IpProtocol.Ipv6HeaderLength:
                    Drop(StackDropReason.IpBadExtensionHeader); // only allowed right after the IPv6 header
                    return;
                case IpProtocol.HopByHopOptions:
                case IpProtocol.DestinationOptions:
                    if (!TryReadOptionsHeader(packet, offset, out length))
                    {
                        Drop(StackDropReason.IpBadExtensionHeader);
                        return;
                    }
                    break;
                case IpProtocol.Routing:
                    // A host is the final destination only when no segments are left (RFC 8200 4.4).
                    if (!TryReadHeaderLength(packet, offset, out length) || packet[offset + 3] != 0)
                    {
                        Drop(StackDropReason.IpBadExtensionHeader);
                        return;
                    }
                    break;
                case IpProtocol.Fragment:
                    if (reassembled || packet.Length - offset < IpProtocol.FragmentHeaderLength)
                    {
                        Drop(StackDropReason.IpBadExtensionHeader); // a fragment inside a fragment
                        return;
                    }
                    ushort field = BinaryPrimitives.ReadUInt16BigEndian(packet[(offset + 2)..]);
                    int fragmentOffset = field & 0xFFF8;
                    bool more = (field & 1) != 0;
                    if (fragmentOffset != 0 || more)
                    {
                        ReceiveIPv6Fragment(packet, offset, nextField, fragmentOffset, more, source, destination);
                        return;
                    }
                    length = IpProtocol.FragmentHeaderLength; // an atomic fragment (RFC 6946): not reassembled
                    break;
                default:
                    if (owned is null)
                    {
                        DeliverCopy(packet, offset, source, destination, next, nextField);
                    }
                    else
                    {
                        Dispatch(owned.AsSpan(0, packet.Length), offset, source, destination, next, nextField);
                    }
                    return;
            }
            nextField = offset;
            next = packet[offset];
            offset += length;
        }
    }

    private void ReceiveIPv6Fragment(ReadOnlySpan<byte> packet, int fragmentHeader, int nextField, int offset, bool more,
        NetAddress source, NetAddress destination)
    {
        byte protocol = packet[fragmentHeader];
        int headerEnd = fragmentHeader + IpProtocol.FragmentHeaderLength;
        ReadOnlySpan<byte> data = packet[headerEnd..];
        if (offset == 0 && !HasWholeHeaderChain(protocol, data))
        {
            Drop(StackDropReason.FragmentMalformed);
            return;
        }
        // RFC 8200 4.5: fragments are identified by source, destination and identification only;
        // the next header of the first fragment is the one used.
        var key = new FragmentKey(source, destination, BinaryPrimitives.ReadUInt32BigEndian(packet[(fragmentHeader + 4)..]), 0);
        if (_reassembler.Add(key, packet[..headerEnd], fragmentHeader, nextField, offset, more, data, out var datagram))
        {
            try
            {
                ProcessIPv6(datagram.Buffer.AsSpan(0, datagram.Length), datagram.Buffer, source, destination, reassembled: true);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(datagram.Buffer);
            }
        }
    }

    /// <summary>
    /// RFC 8200 4.5 and RFC 7112: the first fragment must hold every extension header and the
    /// upper-layer header (Linux's minimum sizes: TCP 20, UDP 8, ICMPv6 8 bytes).
    /// </summary>
    private static bool HasWholeHeaderChain(byte protocol, ReadOnlySpan<byte> data)
    {
        int offset = 0;
        for (int i = 0; i <= MaxExtensionHeaders; i++)
        {
            switch (protocol)
            {
                case IpProtocol.HopByHopOptions:
                case IpProtocol.DestinationOptions:
                case IpProtocol.Routing:
                    if (!TryReadHeaderLength(data, offset, out int length))
                    {
                        return false;
                    }
                    protocol = data[offset];
                    offset += length;
                    continue;
                case IpProtocol.Fragment:
                    return false;
                default:
                    int minimum = protocol switch
                    {
                        IpProtocol.Tcp => 20,
                        IpProtocol.Udp or IpProtocol.IcmpV6 => 8,
                        _ => 0,
                    };
                    return data.Length - offset >= minimum;
            }
        }
        return false;
    }

    // An extension header with the common layout (next header, length in 8-byte units - 1) that fits in the packet.
    private static bool TryReadHeaderLength(ReadOnlySpan<byte> packet, int offset, out int length)
    {
        length = 0;
        if (packet.Length - offset < 8)
        {
            return false;
        }
        length = (packet[offset + 1] + 1) * 8;
        return packet.Length - offset >= length;
    }

    /// <summary>
    /// Checks a hop-by-hop or destination options header (RFC 8200 4.2): every option must fit,
    /// and an unrecognized option (anything but Pad1 and PadN) is acceptable only when the two
    /// high bits of its type say "skip over this option".
    /// </summary>
    private static bool TryReadOptionsHeader(ReadOnlySpan<byte> packet, int offset, out int length)
    {
        if (!TryReadHeaderLength(packet, offset, out length))
        {
            return false;
        }
        ReadOnlySpan<byte> options = packet.Slice(offset + 2, length - 2);
        int i = 0;
        while (i < options.Length)
        {
            byte type = options[i];
            if (type == 0)
            {
                i++; // Pad1
                continue;
            }
            if (options.Length - i < 2 || options.Length - i - 2 < options[i + 1])
            {
                return false;
            }
            if (type != 1 && type >> 6 != 0)
            {
                return false; // unrecognized, and the action is "discard" (we send no parameter problem)
            }
            i += 2 + options[i + 1];
        }
        return true;
    }
}
