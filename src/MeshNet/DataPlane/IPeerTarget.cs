using MeshNet.Userspace.Crypto;
using MeshNet.Userspace.WireGuard;

namespace MeshNet.DataPlane;

/// <summary>Where <see cref="PeerConfigurator"/> applies peer changes: the WireGuard device (or a recorder in tests).</summary>
internal interface IPeerTarget
{
    /// <summary>Adds a peer or changes it in place.</summary>
    void SetPeer(WireGuardPeerConfig config);

    /// <summary>Removes a peer; false when it was not configured.</summary>
    bool RemovePeer(WireGuardPublicKey publicKey);

    /// <summary>Starts a handshake with a configured peer that restarted, now, even if one was sent in the last seconds.</summary>
    void InitiateHandshake(WireGuardPublicKey publicKey);
}

/// <summary>The real <see cref="IPeerTarget"/>.</summary>
internal sealed class DevicePeerTarget(WireGuardDevice device) : IPeerTarget
{
    public void SetPeer(WireGuardPeerConfig config) => device.SetPeer(config);

    public bool RemovePeer(WireGuardPublicKey publicKey) => device.RemovePeer(publicKey);

    public void InitiateHandshake(WireGuardPublicKey publicKey) => device.InitiateHandshake(publicKey, evenIfRecent: true);
}
