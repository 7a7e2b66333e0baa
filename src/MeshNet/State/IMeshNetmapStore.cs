namespace MeshNet;

/// <summary>
/// Keeps a node's last netmap between runs (<see cref="MeshCachedNetmap"/>), so that the node
/// restarts and reaches its peers even while the coordination service is down. Set it with
/// <see cref="MeshNodeOptions.NetmapStore"/>. Implementations: <see cref="InMemoryNetmapStore"/>
/// (within one process), <see cref="FileNetmapStore"/> (a file); write your own for a database row or a
/// secret store (see <c>samples/CustomStores</c>).
/// </summary>
/// <remarks>
/// <para>A store is plain persistence: it never calls the coordination service or the data
/// plane. The node calls <see cref="LoadAsync"/> once when it starts, <see cref="SaveAsync"/> when
/// its netmap changed (coalesced: at most once per <see cref="MeshNodeOptions.NetmapCacheWriteInterval"/>,
/// and when the node stops), and <see cref="DeleteAsync"/> when caching is switched off or the
/// service forbids it; never concurrently for one node. A store serves one node at a time.</para>
/// <para>Keep the bytes of <see cref="MeshCachedNetmap.Serialize"/>: they are versioned and
/// integrity-protected with a key derived from the node's private key, and
/// <see cref="MeshCachedNetmap.Deserialize"/> refuses what was truncated, modified, written for
/// another node or by an unknown version.</para>
/// </remarks>
public interface IMeshNetmapStore
{
    /// <summary>
    /// Loads the netmap saved for <paramref name="identity"/>. Returns null when there is none,
    /// and also when the stored one is unusable (truncated, modified, another node's, an unknown
    /// version): the store then reports why (a warning in its log) and sets the bad copy aside
    /// rather than deleting it, and the node starts from the coordination service.
    /// </summary>
    /// <exception cref="MeshException"><see cref="MeshErrorCode.StateStoreFailed"/>: the store cannot be read at all (I/O, permissions).</exception>
    ValueTask<MeshCachedNetmap?> LoadAsync(MeshNodeIdentity identity, CancellationToken cancellationToken = default);

    /// <summary>Saves <paramref name="netmap"/> for <paramref name="identity"/>, replacing what was saved before, atomically.</summary>
    /// <exception cref="MeshException"><see cref="MeshErrorCode.StateStoreFailed"/>: the netmap could not be written.</exception>
    ValueTask SaveAsync(MeshNodeIdentity identity, MeshCachedNetmap netmap, CancellationToken cancellationToken = default);

    /// <summary>Removes the saved netmap, if any.</summary>
    /// <exception cref="MeshException"><see cref="MeshErrorCode.StateStoreFailed"/>: it could not be removed.</exception>
    ValueTask DeleteAsync(CancellationToken cancellationToken = default);
}
