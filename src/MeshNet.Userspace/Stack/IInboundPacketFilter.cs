namespace MeshNet.Userspace.Stack;

/// <summary>
/// A stateful packet filter the stack consults (<see cref="IpStackOptions.InboundFilter"/>):
/// it judges every inbound datagram after IP validation and fragment reassembly, before any
/// transport sees it, and it is told about every datagram the stack sends so that it can track
/// the flows the stack opens.
/// </summary>
/// <remarks>
/// <para>Both methods are called on the data path, on any thread, concurrently (inbound on the
/// link's threads, outbound on whichever thread sends: applications, timers, the link's
/// threads for replies); they must be thread-safe, must not block, must not throw, and should
/// not allocate. The headers are parsed once by the stack; transport checksums are not yet
/// verified when <see cref="Inspect"/> runs (the transport verifies them after an accept).</para>
/// </remarks>
public interface IInboundPacketFilter
{
    /// <summary>Decides about one inbound datagram (whole: reassembled if it was fragmented).</summary>
    FilterVerdict Inspect(in DatagramHeaders datagram);

    /// <summary>
    /// The stack is sending <paramref name="datagram"/> (once per datagram, before
    /// fragmentation; ICMP errors the stack originates included).
    /// </summary>
    void OnSent(in DatagramHeaders datagram);
}
