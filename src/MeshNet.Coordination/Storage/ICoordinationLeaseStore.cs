namespace MeshNet.Coordination.Storage;

/// <summary>
/// Who serves which tailnet: the coordination servers, one lease per tailnet (owner, epoch,
/// expiry by the database's clock), quarantine, cluster roles and settings, and the incident
/// record. Implemented by the same stores as <see cref="ICoordinationStore"/>.
/// </summary>
/// <remarks>
/// <para>Leases: a grant (claim, handover) always increases the tailnet's epoch, and the epoch is
/// what fences the tailnet's writes (<see cref="TailnetFence"/>). Expiry is computed by the
/// database: <c>now() + ttl</c>. A renewal that does not return a tailnet means its lease is no
/// longer the caller's.</para>
/// <para>Thread-safe; each method is one atomic operation. Renewals should run on their own
/// connections, so that a busy store cannot starve them.</para>
/// </remarks>
public interface ICoordinationLeaseStore
{
    /// <summary>
    /// Records this server (id, URL, instance) as live, replacing an earlier instance with the same
    /// id (whose leases stay as they are until renewed by nobody or reclaimed by this instance).
    /// </summary>
    Task RegisterServerAsync(string serverId, string url, string instance, CancellationToken cancellationToken);

    /// <summary>Marks the server as stopped (its row stays, with an old heartbeat); false when another instance holds the id.</summary>
    Task<bool> DeregisterServerAsync(string serverId, string instance, CancellationToken cancellationToken);

    /// <summary>
    /// The server's heartbeat and the renewal of every lease it holds, in one statement: each lease
    /// owned by (<paramref name="serverId"/>, <paramref name="instance"/>) gets <c>now() + ttl</c>,
    /// whether or not it had expired (no other server claimed it meanwhile, or it would have
    /// another owner). <paramref name="load"/> is stored with the heartbeat.
    /// </summary>
    Task<LeaseRenewal> RenewAsync(string serverId, string instance, TimeSpan ttl, string load, CancellationToken cancellationToken);

    /// <summary>
    /// Claims expired leases (or, with <see cref="LeaseClaim.Tailnet"/>, that one), skipping rows
    /// other claimers hold locked, and applies the quarantine rule. See <see cref="LeaseClaim"/>.
    /// </summary>
    /// <returns>The leases granted, and those quarantined instead (<see cref="LeaseGrant.Quarantined"/>).</returns>
    Task<IReadOnlyList<LeaseGrant>> ClaimAsync(LeaseClaim claim, CancellationToken cancellationToken);

    /// <summary>
    /// The planned handover, one compare-and-set: when <paramref name="tailnet"/>'s lease is held by
    /// <paramref name="fromServer"/> with <paramref name="expectedEpoch"/>, it becomes
    /// <paramref name="toServer"/>'s (instance <paramref name="toInstance"/>) with epoch + 1 and
    /// expiry <c>now() + ttl</c>. Null when the lease was not in that state.
    /// </summary>
    Task<LeaseGrant?> HandOverAsync(string tailnet, string fromServer, ulong expectedEpoch, string toServer, string toInstance, TimeSpan ttl,
        CancellationToken cancellationToken);

    /// <summary>Gives a lease up (expired at once, no owner) when the caller holds it with that epoch; false otherwise.</summary>
    Task<bool> ReleaseAsync(string tailnet, string serverId, ulong epoch, CancellationToken cancellationToken);

    /// <summary>The tailnet's lease, or null when there is no such tailnet.</summary>
    Task<StoredLease?> GetLeaseAsync(string tailnet, CancellationToken cancellationToken);

    /// <summary>Every lease, by tailnet.</summary>
    Task<IReadOnlyList<StoredLease>> ListLeasesAsync(CancellationToken cancellationToken);

    /// <summary>Every server ever registered, by id.</summary>
    Task<IReadOnlyList<StoredServer>> ListServersAsync(CancellationToken cancellationToken);

    /// <summary>Sets whether a server is draining (it claims nothing and nothing is moved to it); false when there is no such server.</summary>
    Task<bool> SetDrainingAsync(string serverId, bool draining, CancellationToken cancellationToken);

    /// <summary>Lets a quarantined tailnet be claimed again; false when it was not quarantined.</summary>
    Task<bool> ReleaseQuarantineAsync(string tailnet, CancellationToken cancellationToken);

    /// <summary>
    /// Takes or keeps a cluster-wide role (such as the rebalancer) for <paramref name="ttl"/>:
    /// true when the caller holds it now.
    /// </summary>
    Task<bool> TryHoldRoleAsync(string role, string serverId, string instance, TimeSpan ttl, CancellationToken cancellationToken);

    /// <summary>A cluster setting, or null.</summary>
    Task<string?> GetSettingAsync(string name, CancellationToken cancellationToken);

    /// <summary>Sets a cluster setting.</summary>
    Task SetSettingAsync(string name, string value, CancellationToken cancellationToken);

    /// <summary>Records an incident (its header); an incident already recorded under that id is kept as it is.</summary>
    Task OpenIncidentAsync(StoredIncident incident, CancellationToken cancellationToken);

    /// <summary>Records or replaces one tailnet's part of an incident.</summary>
    Task SaveIncidentTailnetAsync(StoredIncidentTailnet part, CancellationToken cancellationToken);

    /// <summary>The most recent incidents with their tailnets, newest first.</summary>
    Task<IReadOnlyList<StoredIncident>> ListIncidentsAsync(int limit, CancellationToken cancellationToken);
}
