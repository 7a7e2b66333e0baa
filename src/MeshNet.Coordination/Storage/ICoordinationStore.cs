namespace MeshNet.Coordination.Storage;

/// <summary>
/// The durable state of the coordination service: the server key, tailnets, auth keys, nodes,
/// policies, and each tailnet's change log. Plain persistence: no policy lives here (names,
/// addresses and auth-key rules are decided by the service), but the store enforces what must
/// hold under concurrency: node keys unique across the deployment; names and addresses unique
/// per tailnet; an auth key's use counted in the same transaction as the node it registers; and
/// <b>fencing</b>: every write of a tailnet carries a <see cref="TailnetFence"/> and is applied
/// only under the lease epoch it names (<see cref="ICoordinationLeaseStore"/>), in the same
/// transaction that advances the tailnet's revision and appends its change-log entry.
/// </summary>
/// <remarks>
/// <para>Implementations are thread-safe, and every method is one atomic operation.</para>
/// <para>Two implementations: <see cref="SqliteCoordinationStore"/> (the embedded default, one
/// server) and the PostgreSQL store of <c>MeshNet.Coordination.PostgreSql</c> (several servers).
/// The same test suite runs against both.</para>
/// <para>Expected conflicts are results (<see cref="NodeInsertOutcome"/>, booleans,
/// <see cref="FencedStatus"/>), not exceptions; exceptions mean the store itself failed. A write
/// whose commit failed in transit has an unknown outcome: retry it with the same idempotency key.</para>
/// </remarks>
public interface ICoordinationStore
{
    /// <summary>
    /// Creates the database on first start and applies pending schema migrations, in order.
    /// Idempotent; safe when several servers start at once. Called once before any other method.
    /// </summary>
    /// <returns>The schema version now in force.</returns>
    /// <exception cref="StoreSchemaException">The schema is newer than this code, or a migration failed.</exception>
    Task<int> InitializeAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Returns the deployment's 32-byte secret server key, storing <paramref name="candidate"/>
    /// first when there is none yet (atomically: concurrent callers all get the same key).
    /// </summary>
    Task<byte[]> GetOrAddServerKeyAsync(ReadOnlyMemory<byte> candidate, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Creates a tailnet with an unowned lease at revision 0; false when the name is taken.</summary>
    Task<bool> TryCreateTailnetAsync(StoredTailnet tailnet, CancellationToken cancellationToken);

    /// <summary>The tailnet of that name, or null.</summary>
    Task<StoredTailnet?> GetTailnetAsync(string name, CancellationToken cancellationToken);

    /// <summary>Every tailnet, by name.</summary>
    Task<IReadOnlyList<StoredTailnet>> ListTailnetsAsync(CancellationToken cancellationToken);

    /// <summary>Deletes a tailnet with its auth keys, nodes, log and lease; the value is false when there was none.</summary>
    Task<FencedResult<bool>> DeleteTailnetAsync(TailnetFence fence, CancellationToken cancellationToken);

    /// <summary>
    /// A consistent snapshot of the tailnet for loading its bus: nodes with live state, policy,
    /// removals after the log floor, revision and floor. Null when the tailnet does not exist.
    /// </summary>
    Task<StoredTailnetState?> LoadTailnetAsync(string tailnet, CancellationToken cancellationToken);

    /// <summary>Creates an auth key (its tailnet is <paramref name="fence"/>'s); the value is false when the id is taken or the tailnet does not exist.</summary>
    Task<FencedResult<bool>> TryCreateAuthKeyAsync(TailnetFence fence, StoredAuthKey key, CancellationToken cancellationToken);

    /// <summary>The auth key of that id, or null.</summary>
    Task<StoredAuthKey?> GetAuthKeyAsync(string id, CancellationToken cancellationToken);

    /// <summary>The auth keys of a tailnet, oldest first.</summary>
    Task<IReadOnlyList<StoredAuthKey>> ListAuthKeysAsync(string tailnet, CancellationToken cancellationToken);

    /// <summary>Revokes an auth key of the fence's tailnet; the value is false when it has none of that id.</summary>
    Task<FencedResult<bool>> RevokeAuthKeyAsync(TailnetFence fence, string id, CancellationToken cancellationToken);

    /// <summary>The node with that node key (in any tailnet), or null.</summary>
    Task<StoredNode?> GetNodeByKeyAsync(ReadOnlyMemory<byte> nodeKey, CancellationToken cancellationToken);

    /// <summary>The node with that id, or null.</summary>
    Task<StoredNode?> GetNodeAsync(ulong id, CancellationToken cancellationToken);

    /// <summary>The nodes of a tailnet, by id.</summary>
    Task<IReadOnlyList<StoredNode>> ListNodesAsync(string tailnet, CancellationToken cancellationToken);

    /// <summary>How many nodes there are in every tailnet together.</summary>
    Task<long> CountNodesAsync(CancellationToken cancellationToken);

    /// <summary>The names in a tailnet that start with <paramref name="prefix"/> (for choosing a free one).</summary>
    Task<IReadOnlyList<string>> ListNamesWithPrefixAsync(string tailnet, string prefix, CancellationToken cancellationToken);

    /// <summary>
    /// Inserts a node of the fence's tailnet (its <see cref="StoredNode.Id"/> is ignored and
    /// assigned) after checking, in one transaction: the tailnet exists; node key, name and
    /// addresses are free; and, when <see cref="StoredNode.AuthKeyId"/> is set, the key belongs to
    /// the tailnet and is usable at <see cref="StoredNode.Created"/> (not revoked, not expired,
    /// reusable or unused), counting the use.
    /// </summary>
    Task<FencedResult<NodeInsertResult>> InsertNodeAsync(TailnetFence fence, StoredNode node, CancellationToken cancellationToken);

    /// <summary>
    /// Replaces a node's key (rotation) if its current key is <paramref name="expectedOldKey"/>,
    /// and sets the new key's expiry. When <paramref name="authKeyId"/> is set (re-authorizing a
    /// node whose key expired), the same transaction checks that this auth key belongs to the
    /// node's tailnet and is usable at <paramref name="now"/> (not revoked, not expired, reusable
    /// or unused), and counts the use; otherwise nothing changes.
    /// </summary>
    Task<FencedResult<NodeKeyUpdateOutcome>> UpdateNodeKeyAsync(TailnetFence fence, ulong id, ReadOnlyMemory<byte> expectedOldKey,
        ReadOnlyMemory<byte> newKey, DateTimeOffset keyExpiry, string? authKeyId, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Sets a node's key expiry; the value is false when the tailnet has no such node.</summary>
    Task<FencedResult<bool>> SetKeyExpiryAsync(TailnetFence fence, ulong id, DateTimeOffset keyExpiry, CancellationToken cancellationToken);

    /// <summary>
    /// Sets the host name a node reported and its tags (a change of tags also sets
    /// <see cref="StoredNode.TagsRevision"/>); the value is false when the tailnet has no such node.
    /// </summary>
    Task<FencedResult<bool>> UpdateNodeAsync(TailnetFence fence, ulong id, string hostname, IReadOnlyList<string> tags, CancellationToken cancellationToken);

    /// <summary>
    /// Writes the live state of several nodes of the tailnet at one revision (nodes that no
    /// longer exist are skipped); the value is how many were written.
    /// </summary>
    Task<FencedResult<int>> UpdateLiveStateAsync(TailnetFence fence, IReadOnlyList<NodeLiveState> states, CancellationToken cancellationToken);

    /// <summary>Deletes a node of the tailnet (its id stays in the change log); the value is false when there was none.</summary>
    Task<FencedResult<bool>> DeleteNodeAsync(TailnetFence fence, ulong id, CancellationToken cancellationToken);

    /// <summary>The tailnet's saved policy (text empty when it was removed), or null when none was ever saved.</summary>
    Task<StoredPolicy?> GetPolicyAsync(string tailnet, CancellationToken cancellationToken);

    /// <summary>
    /// Saves the tailnet's policy text (empty: removed) with the next version (1 for the first
    /// save); the value is null when the tailnet does not exist.
    /// </summary>
    Task<FencedResult<StoredPolicy?>> SavePolicyAsync(TailnetFence fence, string text, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// Ephemeral nodes that are offline and were last seen (or, never connected, created) before
    /// <paramref name="cutoff"/>, at most <paramref name="limit"/>.
    /// </summary>
    Task<IReadOnlyList<StoredNode>> ListEphemeralNodesIdleSinceAsync(DateTimeOffset cutoff, int limit, CancellationToken cancellationToken);

    /// <summary>
    /// Nodes whose key expiry is in (<paramref name="after"/>, <paramref name="upTo"/>], at most
    /// <paramref name="limit"/>, soonest first.
    /// </summary>
    Task<IReadOnlyList<StoredNode>> ListNodesWithKeyExpiryAsync(DateTimeOffset after, DateTimeOffset upTo, int limit, CancellationToken cancellationToken);

    /// <summary>The change-log entry written with that idempotency key, or null (never written, or pruned).</summary>
    Task<StoredChange?> FindChangeAsync(string tailnet, string idempotencyKey, CancellationToken cancellationToken);

    /// <summary>The tailnet's change-log entries after <paramref name="afterRevision"/>, oldest first, at most <paramref name="limit"/>.</summary>
    Task<IReadOnlyList<StoredChange>> ListChangesAsync(string tailnet, ulong afterRevision, int limit, CancellationToken cancellationToken);

    /// <summary>
    /// Deletes change-log entries committed more than <paramref name="olderThan"/> ago (by the
    /// database's clock), keeping at least the newest <paramref name="keep"/> of each tailnet, and
    /// raises each tailnet's log floor past them.
    /// </summary>
    /// <returns>How many entries were deleted.</returns>
    Task<int> PruneChangesAsync(TimeSpan olderThan, int keep, CancellationToken cancellationToken);
}
