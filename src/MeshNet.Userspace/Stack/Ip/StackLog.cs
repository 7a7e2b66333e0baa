using MeshNet.Userspace.Net;
using Microsoft.Extensions.Logging;

namespace MeshNet.Userspace.Stack.Ip;

/// <summary>
/// Log messages of the stack's IP, ICMP and UDP layers and of <see cref="Link.MemoryLink"/>
/// (source-generated, stable event ids 3000-3099). Nothing is logged per packet above Debug.
/// </summary>
internal static partial class StackLog
{
    [LoggerMessage(EventId = 3000, Level = LogLevel.Information, Message = "IP stack started: addresses {Addresses}, MTU {Mtu}")]
    public static partial void Started(ILogger logger, string addresses, int mtu);

    [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "IP stack stopped")]
    public static partial void Stopped(ILogger logger);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Error, Message = "Unexpected error while processing an inbound packet; the packet is dropped")]
    public static partial void InboundError(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Error, Message = "The link threw while taking an outbound packet; the packet is lost")]
    public static partial void LinkError(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Error, Message = "Unexpected error in the reassembly timer")]
    public static partial void TimerError(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 3010, Level = LogLevel.Debug, Message = "Reassembly of a datagram from {Source} timed out with {Fragments} fragments held")]
    public static partial void ReassemblyTimedOut(ILogger logger, NetAddress source, int fragments);

    [LoggerMessage(EventId = 3011, Level = LogLevel.Debug, Message = "Dropped an incomplete datagram from {Source} ({Fragments} fragments) to make room for reassembly")]
    public static partial void ReassemblyEvicted(ILogger logger, NetAddress source, int fragments);

    [LoggerMessage(EventId = 3020, Level = LogLevel.Debug, Message = "UDP socket bound to {LocalEndPoint}")]
    public static partial void UdpBound(ILogger logger, System.Net.IPEndPoint localEndPoint);

    [LoggerMessage(EventId = 3021, Level = LogLevel.Debug, Message = "UDP socket {LocalEndPoint} closed")]
    public static partial void UdpClosed(ILogger logger, System.Net.IPEndPoint localEndPoint);

    [LoggerMessage(EventId = 3090, Level = LogLevel.Error, Message = "The receiver of memory link end {End} threw; delivery continues")]
    public static partial void LinkReceiverFailed(ILogger logger, Exception exception, string end);

    [LoggerMessage(EventId = 3091, Level = LogLevel.Error, Message = "The filter of a memory link threw for a packet from end {End}; the packet is dropped")]
    public static partial void LinkFilterFailed(ILogger logger, Exception exception, string end);
}
