namespace MeshNet.Coordination;

/// <summary>
/// Live counters of the coordination service. Reads are lock-free snapshots of monotonically
/// increasing values (except <see cref="MapStreamsActive"/>); thread-safe. Resolve it from the
/// service provider.
/// </summary>
public sealed partial class CoordinationCounters
{
    private long _registrations;
    private long _registrationsRefused;
    private long _keyRotations;
    private long _mapStreamsOpened;
    private long _mapStreamsActive;
    private long _fullMapsSent;
    private long _streamsResumed;
    private long _mapMessagesQueued;
    private long _keepAlivesQueued;
    private long _slowStreamsDropped;
    private long _callsRefused;
    private long _replaysRefused;
    private long _ephemeralNodesRemoved;
    private long _nodeKeysExpired;
    private long _maintenancePasses;
    private long _policiesSaved;
    private long _policyDeltasSent;

    /// <summary>Registrations that succeeded (new nodes, re-registrations and rotations).</summary>
    public long Registrations => Volatile.Read(ref _registrations);

    /// <summary>Registrations refused (auth-key problems, tags, expiry, bad input).</summary>
    public long RegistrationsRefused => Volatile.Read(ref _registrationsRefused);

    /// <summary>Node-key rotations.</summary>
    public long KeyRotations => Volatile.Read(ref _keyRotations);

    /// <summary>Map streams opened.</summary>
    public long MapStreamsOpened => Volatile.Read(ref _mapStreamsOpened);

    /// <summary>Map streams open now.</summary>
    public long MapStreamsActive => Volatile.Read(ref _mapStreamsActive);

    /// <summary>Full netmaps sent (new streams and resumes that could not be served from the replay buffer).</summary>
    public long FullMapsSent => Volatile.Read(ref _fullMapsSent);

    /// <summary>Streams resumed from a replay buffer, without a full netmap.</summary>
    public long StreamsResumed => Volatile.Read(ref _streamsResumed);

    /// <summary>Delta messages queued on live map streams (one per affected connected node and change).</summary>
    public long MapMessagesQueued => Volatile.Read(ref _mapMessagesQueued);

    /// <summary>Keep-alives queued on map streams.</summary>
    public long KeepAlivesQueued => Volatile.Read(ref _keepAlivesQueued);

    /// <summary>Map streams closed because the client did not keep up.</summary>
    public long SlowStreamsDropped => Volatile.Read(ref _slowStreamsDropped);

    /// <summary>Node and admin calls refused by authentication or the transport rule.</summary>
    public long CallsRefused => Volatile.Read(ref _callsRefused);

    /// <summary>Node calls refused as replays (a nonce seen before).</summary>
    public long ReplaysRefused => Volatile.Read(ref _replaysRefused);

    /// <summary>Ephemeral nodes removed after being offline too long.</summary>
    public long EphemeralNodesRemoved => Volatile.Read(ref _ephemeralNodesRemoved);

    /// <summary>Node keys that reached their expiry (or were expired by an administrator).</summary>
    public long NodeKeysExpired => Volatile.Read(ref _nodeKeysExpired);

    /// <summary>Maintenance passes run (key expiry, ephemeral-node removal, session retention).</summary>
    public long MaintenancePasses => Volatile.Read(ref _maintenancePasses);

    /// <summary>Tailnet policies saved (set or removed).</summary>
    public long PoliciesSaved => Volatile.Read(ref _policiesSaved);

    /// <summary>Deltas sent to nodes because a policy change altered their peers, filter or enforcement.</summary>
    public long PolicyDeltasSent => Volatile.Read(ref _policyDeltasSent);

    /// <summary>A one-line summary, for logs and test failures.</summary>
    public override string ToString() =>
        $"registrations={Registrations} refused={RegistrationsRefused} rotations={KeyRotations} streams={MapStreamsActive}/{MapStreamsOpened} " +
        $"fullMaps={FullMapsSent} resumed={StreamsResumed} messages={MapMessagesQueued} keepAlives={KeepAlivesQueued} " +
        $"slowDropped={SlowStreamsDropped} callsRefused={CallsRefused} replays={ReplaysRefused} " +
        $"ephemeralRemoved={EphemeralNodesRemoved} keysExpired={NodeKeysExpired} maintenance={MaintenancePasses} policies={PoliciesSaved} policyDeltas={PolicyDeltasSent} " +
        ShardingSummary();

    internal void Registered() => Interlocked.Increment(ref _registrations);

    internal void RegistrationRefused() => Interlocked.Increment(ref _registrationsRefused);

    internal void KeyRotated() => Interlocked.Increment(ref _keyRotations);

    internal void StreamOpened()
    {
        Interlocked.Increment(ref _mapStreamsOpened);
        Interlocked.Increment(ref _mapStreamsActive);
    }

    internal void StreamClosed() => Interlocked.Decrement(ref _mapStreamsActive);

    internal void FullMapSent() => Interlocked.Increment(ref _fullMapsSent);

    internal void StreamResumed() => Interlocked.Increment(ref _streamsResumed);

    internal void MessageQueued() => Interlocked.Increment(ref _mapMessagesQueued);

    internal void KeepAliveQueued() => Interlocked.Increment(ref _keepAlivesQueued);

    internal void SlowStreamDropped() => Interlocked.Increment(ref _slowStreamsDropped);

    internal void CallRefused() => Interlocked.Increment(ref _callsRefused);

    internal void ReplayRefused() => Interlocked.Increment(ref _replaysRefused);

    internal void EphemeralNodeRemoved() => Interlocked.Increment(ref _ephemeralNodesRemoved);

    internal void NodeKeyExpired() => Interlocked.Increment(ref _nodeKeysExpired);

    internal void MaintenancePass() => Interlocked.Increment(ref _maintenancePasses);

    internal void PolicySaved() => Interlocked.Increment(ref _policiesSaved);

    internal void PolicyDeltaSent() => Interlocked.Increment(ref _policyDeltasSent);
}
