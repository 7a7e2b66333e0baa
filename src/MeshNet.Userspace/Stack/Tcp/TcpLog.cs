using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>
/// TCP's log messages (source-generated, stable event ids 3100-3299). Nothing is logged per
/// segment: only connection lifecycle events and unexpected errors.
/// </summary>
internal static partial class TcpLog
{
    [LoggerMessage(EventId = 3100, Level = LogLevel.Information, Message = "TCP listening on {Endpoint} (backlog {Backlog})")]
    public static partial void Listening(ILogger logger, string endpoint, int backlog);

    [LoggerMessage(EventId = 3101, Level = LogLevel.Debug, Message = "TCP listener on {Endpoint} stopped")]
    public static partial void ListenerStopped(ILogger logger, string endpoint);

    [LoggerMessage(EventId = 3110, Level = LogLevel.Debug, Message = "TCP {Flow}: established ({Role}), MSS {Mss}, window scale {SendScale}/{ReceiveScale}, SACK {Sack}, timestamps {Timestamps}")]
    public static partial void Established(ILogger logger, TcpFlowKey flow, string role, int mss, int sendScale, int receiveScale, bool sack, bool timestamps);

    [LoggerMessage(EventId = 3111, Level = LogLevel.Debug, Message = "TCP {Flow}: closed ({Reason})")]
    public static partial void Closed(ILogger logger, TcpFlowKey flow, SocketError reason);

    [LoggerMessage(EventId = 3112, Level = LogLevel.Debug, Message = "TCP {Flow}: reset by the peer in {State}")]
    public static partial void ResetByPeer(ILogger logger, TcpFlowKey flow, TcpState state);

    [LoggerMessage(EventId = 3113, Level = LogLevel.Debug, Message = "TCP {Flow}: timed out in {State} ({What})")]
    public static partial void TimedOut(ILogger logger, TcpFlowKey flow, TcpState state, string what);

    [LoggerMessage(EventId = 3120, Level = LogLevel.Warning, Message = "TCP listener on {Endpoint}: half-open queue full, sending SYN cookies")]
    public static partial void SynCookiesActive(ILogger logger, string endpoint);

    [LoggerMessage(EventId = 3121, Level = LogLevel.Warning, Message = "TCP: connection limit ({Limit}) reached; refusing new connections")]
    public static partial void ConnectionLimit(ILogger logger, int limit);

    [LoggerMessage(EventId = 3200, Level = LogLevel.Error, Message = "TCP: unexpected error while processing a segment")]
    public static partial void SegmentError(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 3201, Level = LogLevel.Error, Message = "TCP: unexpected error in a connection timer")]
    public static partial void TimerError(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 3202, Level = LogLevel.Error, Message = "TCP: the IP output threw while sending a segment")]
    public static partial void OutputError(ILogger logger, Exception exception);
}
