namespace MeshNet.Userspace.WireGuard;

/// <summary>Why the device dropped a datagram or packet. Each reason has its own counter.</summary>
public enum WireGuardDropReason
{
    /// <summary>A datagram shorter than the smallest message of its type (or than a type field).</summary>
    Truncated,

    /// <summary>A handshake or cookie message whose size is not exactly its type's size.</summary>
    InvalidSize,

    /// <summary>A datagram whose type field names no WireGuard message.</summary>
    UnknownMessageType,

    /// <summary>A handshake message whose mac1 does not verify (not addressed to us, or forged).</summary>
    InvalidMac1,

    /// <summary>Under load, a handshake message without a valid mac2: answered with a cookie reply and dropped.</summary>
    CookieRequired,

    /// <summary>Under load, a handshake message from a source over its token-bucket rate.</summary>
    RateLimited,

    /// <summary>The handshake queue was full.</summary>
    HandshakeQueueFull,

    /// <summary>An initiation or response that failed to authenticate or decrypt.</summary>
    HandshakeFailed,

    /// <summary>An initiation from a static key that is not a configured peer.</summary>
    UnknownPeer,

    /// <summary>An initiation whose timestamp is not newer than the last one accepted (a replay).</summary>
    ReplayedInitiation,

    /// <summary>An initiation less than 20 ms after the previous one from the same peer.</summary>
    InitiationFlood,

    /// <summary>A response for which no initiation of ours is waiting.</summary>
    UnexpectedResponse,

    /// <summary>A cookie reply that does not match a message we sent, or fails to decrypt.</summary>
    InvalidCookieReply,

    /// <summary>A transport message whose receiver index names no session.</summary>
    UnknownReceiverIndex,

    /// <summary>A transport message for a session past its time or message limit.</summary>
    ExpiredSession,

    /// <summary>A transport message that failed authentication.</summary>
    DecryptionFailed,

    /// <summary>A transport message whose counter was already seen or is behind the replay window.</summary>
    ReplayedCounter,

    /// <summary>A decrypted packet that is not a well-formed IPv4 or IPv6 packet.</summary>
    InvalidInnerPacket,

    /// <summary>A decrypted packet whose source address is not in the sending peer's allowed IPs.</summary>
    DisallowedSourceAddress,

    /// <summary>An outbound packet whose destination matches no peer's allowed IPs.</summary>
    NoRoute,

    /// <summary>An outbound packet that is empty, oversized or not IPv4/IPv6.</summary>
    InvalidOutboundPacket,

    /// <summary>An outbound packet for a peer with no known endpoint.</summary>
    NoEndpoint,

    /// <summary>An outbound packet dropped because the peer's staging queue was full (the oldest goes).</summary>
    StagingQueueFull,

    /// <summary>Staged packets dropped because the handshake gave up, or key material expired.</summary>
    HandshakeGaveUp,

    /// <summary>The bind refused to send the datagram.</summary>
    SendFailed,

    /// <summary>A datagram that arrived after the device was disposed, or for a removed peer.</summary>
    DeviceDown,
}
