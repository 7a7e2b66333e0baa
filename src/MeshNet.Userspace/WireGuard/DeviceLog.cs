using Microsoft.Extensions.Logging;

namespace MeshNet.Userspace.WireGuard;

/// <summary>
/// The device's log messages (source-generated, stable event ids 1000-1099). Peers appear only
/// as short public-key prefixes; no key material is ever logged.
/// </summary>
internal static partial class DeviceLog
{
    [LoggerMessage(EventId = 1000, Level = LogLevel.Information, Message = "WireGuard device {PublicKey} listening on UDP port {Port}")]
    public static partial void Started(ILogger logger, string publicKey, int port);

    [LoggerMessage(EventId = 1001, Level = LogLevel.Information, Message = "WireGuard device {PublicKey} stopped")]
    public static partial void Stopped(ILogger logger, string publicKey);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Information, Message = "WireGuard device now listening on UDP port {Port}")]
    public static partial void Rebound(ILogger logger, int port);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Debug, Message = "Peer {Peer} configured")]
    public static partial void PeerConfigured(ILogger logger, string peer);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Debug, Message = "Peer {Peer} removed")]
    public static partial void PeerRemoved(ILogger logger, string peer);

    [LoggerMessage(EventId = 1005, Level = LogLevel.Information, Message = "The device's private key changed; sessions with every peer restart")]
    public static partial void PrivateKeyChanged(ILogger logger);

    [LoggerMessage(EventId = 1010, Level = LogLevel.Debug, Message = "Peer {Peer}: sending handshake initiation")]
    public static partial void InitiationSent(ILogger logger, string peer);

    [LoggerMessage(EventId = 1011, Level = LogLevel.Warning, Message = "Peer {Peer}: could not create a handshake initiation (invalid peer key?)")]
    public static partial void InitiationFailed(ILogger logger, string peer);

    [LoggerMessage(EventId = 1012, Level = LogLevel.Warning, Message = "Peer {Peer}: could not create a handshake response")]
    public static partial void ResponseFailed(ILogger logger, string peer);

    [LoggerMessage(EventId = 1013, Level = LogLevel.Debug, Message = "Peer {Peer}: handshake did not complete after {Seconds} seconds, retrying (try {Attempt})")]
    public static partial void HandshakeRetry(ILogger logger, string peer, int seconds, int attempt);

    [LoggerMessage(EventId = 1014, Level = LogLevel.Information, Message = "Peer {Peer}: handshake did not complete after {Attempts} attempts, giving up")]
    public static partial void HandshakeGaveUp(ILogger logger, string peer, int attempts);

    [LoggerMessage(EventId = 1015, Level = LogLevel.Debug, Message = "Peer {Peer}: retrying handshake because we stopped hearing back after {Seconds} seconds")]
    public static partial void PeerSilent(ILogger logger, string peer, int seconds);

    [LoggerMessage(EventId = 1016, Level = LogLevel.Debug, Message = "Peer {Peer}: removing all keys, since we haven't received a new one in {Seconds} seconds")]
    public static partial void ZeroingKeys(ILogger logger, string peer, int seconds);

    [LoggerMessage(EventId = 1017, Level = LogLevel.Debug, Message = "Peer {Peer}: session established ({Role})")]
    public static partial void SessionEstablished(ILogger logger, string peer, string role);

    [LoggerMessage(EventId = 1018, Level = LogLevel.Debug, Message = "Sent a cookie reply to {Source} (under load)")]
    public static partial void CookieReplySent(ILogger logger, string source);

    [LoggerMessage(EventId = 1019, Level = LogLevel.Debug, Message = "Peer {Peer}: cookie reply accepted")]
    public static partial void CookieReplyAccepted(ILogger logger, string peer);

    [LoggerMessage(EventId = 1030, Level = LogLevel.Error, Message = "Unexpected error while processing a handshake message")]
    public static partial void HandshakeProcessingError(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 1031, Level = LogLevel.Error, Message = "Unexpected error in a peer timer")]
    public static partial void TimerError(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 1032, Level = LogLevel.Error, Message = "Unexpected error while processing a received datagram")]
    public static partial void ReceiveError(ILogger logger, Exception exception);
}
