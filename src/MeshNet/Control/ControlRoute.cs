namespace MeshNet.Control;

/// <summary>What <see cref="ControlClient.Route"/> did after a failed call.</summary>
internal enum ControlRouteKind
{
    /// <summary>Nothing: the same server is tried again after the usual backoff.</summary>
    Stay,

    /// <summary>The server named the tailnet's owner; the next attempt goes there at once.</summary>
    Redirected,

    /// <summary>The server could not be reached or serves nobody right now; the next attempt goes to the next known server.</summary>
    Rotated,
}

/// <summary>Where the next control attempt goes, and how long the service asked to wait first.</summary>
/// <param name="Kind">What changed.</param>
/// <param name="RetryAfter">The service's retry time (zero when it gave none).</param>
/// <param name="Next">The server of the next attempt.</param>
internal readonly record struct ControlRoute(ControlRouteKind Kind, TimeSpan RetryAfter, Uri Next);
