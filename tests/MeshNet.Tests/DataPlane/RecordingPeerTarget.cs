using MeshNet.DataPlane;
using MeshNet.Userspace.Crypto;
using MeshNet.Userspace.WireGuard;

namespace MeshNet.Tests.DataPlane;

/// <summary>Records the operations a <see cref="PeerConfigurator"/> performs, like a device would receive them.</summary>
internal sealed class RecordingPeerTarget : IPeerTarget
{
    public List<string> Operations { get; } = [];

    public Dictionary<WireGuardPublicKey, WireGuardPeerConfig> Peers { get; } = [];

    public Func<WireGuardPeerConfig, bool>? Reject { get; set; }

    public void SetPeer(WireGuardPeerConfig config)
    {
        if (Reject?.Invoke(config) == true)
        {
            throw new ArgumentException("rejected", nameof(config));
        }
        Operations.Add($"set {Name(config.PublicKey)}");
        Peers[config.PublicKey] = config;
    }

    public bool RemovePeer(WireGuardPublicKey publicKey)
    {
        Operations.Add($"remove {Name(publicKey)}");
        return Peers.Remove(publicKey);
    }

    public void InitiateHandshake(WireGuardPublicKey publicKey) => Operations.Add($"handshake {Name(publicKey)}");

    public void Clear() => Operations.Clear();

    /// <summary>TestNodes.Key(n) → "k{n}".</summary>
    private static string Name(WireGuardPublicKey key) => "k" + (key.AsSpan()[0] | (key.AsSpan()[1] << 8));
}
