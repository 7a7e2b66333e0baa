namespace MeshNet.Userspace.WireGuard;

/// <summary>
/// Wire formats, sizes, limits and timer constants of the WireGuard protocol, as in the
/// whitepaper, wireguard-go and the Linux implementation.
/// </summary>
internal static class WireGuardProtocol
{
    public const uint MessageInitiation = 1;
    public const uint MessageResponse = 2;
    public const uint MessageCookieReply = 3;
    public const uint MessageTransport = 4;

    public const int InitiationSize = 148;
    public const int ResponseSize = 92;
    public const int CookieReplySize = 64;
    public const int TransportHeaderSize = 16;
    public const int TagSize = 16;
    public const int TransportMinSize = TransportHeaderSize + TagSize;
    public const int PaddingMultiple = 16;

    /// <summary>The largest inner IP packet the device accepts (the IP total-length limit).</summary>
    public const int MaxInnerPacketSize = 65535;

    // Field offsets inside the handshake initiation (after the 4-byte type).
    public const int InitiationSenderOffset = 4;
    public const int InitiationNoiseOffset = 8;       // ephemeral(32) enc_static(48) enc_timestamp(28)
    public const int InitiationNoiseSize = 32 + 48 + 28;

    // Field offsets inside the handshake response.
    public const int ResponseSenderOffset = 4;
    public const int ResponseReceiverOffset = 8;
    public const int ResponseNoiseOffset = 12;        // ephemeral(32) enc_empty(16)
    public const int ResponseNoiseSize = 32 + 16;

    // Cookie reply and transport fields.
    public const int CookieReplyReceiverOffset = 4;
    public const int TransportReceiverOffset = 4;
    public const int TransportCounterOffset = 8;

    public const ulong RekeyAfterMessages = 1UL << 60;
    public const ulong RejectAfterMessages = ulong.MaxValue - (1UL << 13); // 2^64 - 2^13 - 1

    public static readonly TimeSpan RekeyAfterTime = TimeSpan.FromSeconds(120);
    public static readonly TimeSpan RejectAfterTime = TimeSpan.FromSeconds(180);
    public static readonly TimeSpan RekeyAttemptTime = TimeSpan.FromSeconds(90);
    public static readonly TimeSpan RekeyTimeout = TimeSpan.FromSeconds(5);
    public const int RekeyTimeoutJitterMaxMilliseconds = 334;
    public static readonly TimeSpan KeepaliveTimeout = TimeSpan.FromSeconds(10);
    public static readonly TimeSpan CookieRefreshTime = TimeSpan.FromSeconds(120);
    public static readonly TimeSpan HandshakeInitiationRate = TimeSpan.FromMilliseconds(20);

    /// <summary>The initiator's one-time rekey on receive: RejectAfterTime - KeepaliveTimeout - RekeyTimeout (165 s).</summary>
    public static readonly TimeSpan RekeyOnReceiveAge = RejectAfterTime - KeepaliveTimeout - RekeyTimeout;

    /// <summary>Retries of the handshake timer before giving up (RekeyAttemptTime / RekeyTimeout).</summary>
    public const int MaxTimerHandshakes = 18;

    /// <summary>Key material is zeroed after this long without a new session.</summary>
    public static readonly TimeSpan ZeroKeyMaterialAfter = RejectAfterTime * 3;

    /// <summary>Packets held per peer while a handshake is pending (the oldest is dropped beyond it).</summary>
    public const int MaxStagedPackets = 128;

    /// <summary>Handshake messages queued for the handshake worker; more are dropped.</summary>
    public const int HandshakeQueueCapacity = 1024;

    /// <summary>Queue length at which the device considers itself under load (wireguard-go: capacity / 8).</summary>
    public const int UnderLoadQueueLength = HandshakeQueueCapacity / 8;

    /// <summary>How long "under load" persists after the queue drains.</summary>
    public static readonly TimeSpan UnderLoadAfterTime = TimeSpan.FromSeconds(1);

    /// <summary>Default tunnel MTU (1500 minus the largest WireGuard-over-IPv6 overhead of 80 bytes).</summary>
    public const int DefaultMtu = 1420;

    /// <summary>
    /// The padded plaintext length for a packet of <paramref name="packetSize"/> bytes: a
    /// multiple of 16, never beyond the MTU (same rule as wireguard-go).
    /// </summary>
    public static int PaddedSize(int packetSize, int mtu)
    {
        int lastUnit = packetSize;
        if (mtu == 0)
        {
            return (lastUnit + PaddingMultiple - 1) & ~(PaddingMultiple - 1);
        }
        if (lastUnit > mtu)
        {
            lastUnit %= mtu;
        }
        int padded = (lastUnit + PaddingMultiple - 1) & ~(PaddingMultiple - 1);
        if (padded > mtu)
        {
            padded = mtu;
        }
        return packetSize + (padded - lastUnit);
    }
}
