namespace MeshNet.Coordination.Storage;

/// <summary>A coordination server as registered.</summary>
/// <param name="Id">Its configured id.</param>
/// <param name="Url">Where nodes and other servers reach it.</param>
/// <param name="Instance">Its current process instance.</param>
/// <param name="StartedAt">When that instance registered.</param>
/// <param name="HeartbeatAge">How long ago its last heartbeat was, by the database's clock.</param>
/// <param name="Draining">True while it is being drained (it claims nothing; nothing is moved to it).</param>
/// <param name="Load">The load it reported with its last heartbeat (JSON; empty when none).</param>
/// <param name="Stopped">True when it deregistered (stopped cleanly).</param>
public sealed record StoredServer(string Id, string Url, string Instance, DateTimeOffset StartedAt, TimeSpan HeartbeatAge, bool Draining,
    string Load, bool Stopped);
