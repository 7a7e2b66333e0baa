using System.Net;
using MeshNet.Userspace.Crypto;

namespace MeshNet.Userspace.WireGuard;

/// <summary>
/// The configuration of one peer, applied with <see cref="WireGuardDevice.SetPeer"/>. Applying
/// it to an existing peer changes it in place, without disturbing its sessions.
/// </summary>
public sealed class WireGuardPeerConfig
{
    /// <summary>Creates a configuration for the peer with <paramref name="publicKey"/>.</summary>
    public WireGuardPeerConfig(WireGuardPublicKey publicKey)
    {
        ArgumentNullException.ThrowIfNull(publicKey);
        PublicKey = publicKey;
    }

    /// <summary>The peer's public key: its identity.</summary>
    public WireGuardPublicKey PublicKey { get; }

    /// <summary>
    /// The endpoint to send to. Null keeps the current one (learned by roaming, or none); a
    /// value replaces it.
    /// </summary>
    public IPEndPoint? Endpoint { get; set; }

    /// <summary>
    /// The inner addresses this peer may use as source and that are routed to it
    /// (cryptokey routing). Replaces the peer's previous set. A prefix held by another peer
    /// moves to this one.
    /// </summary>
    public IReadOnlyList<IPNetwork> AllowedIps { get; set; } = [];

    /// <summary>Persistent keepalive interval, or null/zero for none. At most 65535 s.</summary>
    public TimeSpan? PersistentKeepalive { get; set; }

    /// <summary>
    /// An optional pre-shared key; null means none. The device copies it: the caller keeps
    /// ownership of this instance.
    /// </summary>
    public WireGuardPresharedKey? PresharedKey { get; set; }
}
