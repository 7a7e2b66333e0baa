using System.Net;
using MeshNet.Userspace.Crypto;

namespace MeshNet.Userspace.WireGuard;

/// <summary>A snapshot of one peer's state, as <c>wg show</c> reports it.</summary>
/// <param name="PublicKey">The peer's public key.</param>
/// <param name="Endpoint">Where packets go (the latest authenticated source), or null.</param>
/// <param name="AllowedIps">The peer's allowed IPs.</param>
/// <param name="LastHandshake">Wall-clock time of the last completed handshake, or null.</param>
/// <param name="ReceivedBytes">Bytes of WireGuard messages received from the peer.</param>
/// <param name="SentBytes">Bytes of WireGuard messages sent to the peer.</param>
/// <param name="PersistentKeepalive">The persistent keepalive interval, or null.</param>
/// <param name="HasPresharedKey">Whether a pre-shared key is set (the key itself is never exposed).</param>
public sealed record WireGuardPeerStatus(
    WireGuardPublicKey PublicKey,
    IPEndPoint? Endpoint,
    IReadOnlyList<IPNetwork> AllowedIps,
    DateTimeOffset? LastHandshake,
    long ReceivedBytes,
    long SentBytes,
    TimeSpan? PersistentKeepalive,
    bool HasPresharedKey);
