namespace MeshNet;

/// <summary>Where the netmap a node runs on came from (<see cref="MeshNodeStatus.NetmapSource"/>).</summary>
public enum MeshNetmapSource
{
    /// <summary>The netmap came from the coordination service during this run.</summary>
    Live,

    /// <summary>
    /// The node started from its <see cref="MeshNodeOptions.NetmapStore"/> and has not yet heard
    /// from the coordination service: it reaches the peers it knew, with the rules it had.
    /// </summary>
    Cached,
}
