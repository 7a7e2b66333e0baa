using MeshNet.Userspace.Crypto;

namespace MeshNet.DataPlane;

/// <summary>The device operations that turn the applied peer set into the desired one: removals first, then adds and changes.</summary>
/// <param name="Remove">Peers to remove (gone, expired, or replaced by a new key).</param>
/// <param name="Set">Peers to add, or whose endpoint or addresses changed.</param>
internal sealed record PeerPlan(IReadOnlyList<WireGuardPublicKey> Remove, IReadOnlyList<DesiredPeer> Set)
{
    public bool IsEmpty => Remove.Count == 0 && Set.Count == 0;
}
