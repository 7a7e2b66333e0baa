using MeshNet.Userspace.Net;

namespace MeshNet.Userspace.Stack.Ip;

/// <summary>
/// The IP layer's send side, as transports see it. The real implementation prefixes an IPv4
/// or IPv6 header (fragmenting when larger than the MTU) and hands the packet to the link;
/// protocol tests substitute a recorder.
/// </summary>
internal interface IIpOutput
{
    /// <summary>Room a transport must leave in front of its data for the IP header (40 bytes).</summary>
    public const int HeaderRoom = 40;

    /// <summary>
    /// Sends a transport packet. <paramref name="buffer"/> holds the transport header and data
    /// at <c>[HeaderRoom, HeaderRoom + length)</c>, with the transport checksum already filled
    /// in; the bytes before it are scratch space for the IP header. The caller keeps ownership
    /// of the buffer; it is not referenced after the call returns. Never throws for network
    /// conditions.
    /// </summary>
    /// <returns>False when the packet could not be sent (no route for the source family, too large...).</returns>
    bool Send(NetAddress source, NetAddress destination, byte protocol, byte[] buffer, int length, byte trafficClass = 0);

    /// <summary>The largest transport packet (header and data) that fits in one IP packet to <paramref name="destination"/> without fragmentation.</summary>
    int MaxTransportPayload(NetAddress destination);
}
