namespace MeshNet.Coordination.Sharding;

/// <summary>
/// Calls to the other servers of the deployment, for planned moves. Implemented at the gRPC edge
/// (<c>Services/</c>); failures are exceptions, and a call that timed out has an unknown outcome.
/// </summary>
internal interface IClusterPeers
{
    /// <summary>Asks the server at <paramref name="url"/> to read the tailnet ahead of a handover; returns the revision it read.</summary>
    Task<ulong> PrepareAsync(string url, string tailnet, CancellationToken cancellationToken);

    /// <summary>Asks the server at <paramref name="url"/> to take the tailnet over; returns its new epoch.</summary>
    Task<ulong> AcceptAsync(string url, HandoverRequest request, CancellationToken cancellationToken);

    /// <summary>The load of each tailnet the server at <paramref name="url"/> serves, and its CPU use.</summary>
    Task<RebalancePlanner.ServerLoads> GetLoadAsync(string url, CancellationToken cancellationToken);

    /// <summary>Asks the server at <paramref name="url"/>, the tailnet's owner, to move it to <paramref name="targetServer"/>.</summary>
    Task<Control.V1.MoveTailnetResponse> MoveAsync(string url, string tailnet, string targetServer, CancellationToken cancellationToken);

    /// <summary>Asks the server at <paramref name="url"/> to drain itself (or to stop draining).</summary>
    Task<Control.V1.DrainServerResponse> DrainAsync(string url, string serverId, bool undrain, CancellationToken cancellationToken);
}
