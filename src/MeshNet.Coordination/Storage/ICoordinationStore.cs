namespace MeshNet.Coordination.Storage;

/// <summary>
/// The durable state of the coordination service: the server key, tailnets, auth keys and
/// nodes. Plain persistence: no policy lives here (names, addresses and auth-key rules are
/// decided by the service), but the store enforces what must hold under concurrency:
/// node keys unique across the server; names and addresses unique per tailnet; an auth key's
/// use counted in the same transaction as the node it registers.
/// </summary>
/// <remarks>
/// <para>Implementations are thread-safe, and every method is one atomic operation. Live data
/// (endpoints, online state, map sessions) never comes here.</para>
/// <para>The embedded default is <see cref="SqliteCoordinationStore"/>. A server-side provider
/// (PostgreSQL) implements the same contract; for a sharded deployment it will add a lease per
/// tailnet and guard each write with the lease's epoch, which the service's single writer per
/// tailnet (its bus) already prepares for.</para>
/// <para>Expected conflicts are results (<see cref="NodeInsertOutcome"/>, booleans), not
/// exceptions; exceptions mean the store itself failed.</para>
/// </remarks>
public interface ICoordinationStore
{
    /// <summary>
    /// Creates the database on first start and applies pending schema migrations, in order.
    /// Idempotent. Called once before any other method.
    /// </summary>
    /// <returns>The schema version now in force.</returns>
    /// <exception cref="StoreSchemaException">The schema is newer than this code, or a migration failed.</exception>
    Task<int> InitializeAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Returns the server's 32-byte secret key, storing <paramref name="candidate"/> first when
    /// there is none yet (atomically: concurrent callers all get the same key).
    /// </summary>
    Task<byte[]> GetOrAddServerKeyAsync(ReadOnlyMemory<byte> candidate, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Creates a tailnet; false when the name is taken.</summary>
    Task<bool> TryCreateTailnetAsync(StoredTailnet tailnet, CancellationToken cancellationToken);

    /// <summary>The tailnet of that name, or null.</summary>
    Task<StoredTailnet?> GetTailnetAsync(string name, CancellationToken cancellationToken);

    /// <summary>Every tailnet, by name.</summary>
    Task<IReadOnlyList<StoredTailnet>> ListTailnetsAsync(CancellationToken cancellationToken);

    /// <summary>Deletes a tailnet with its auth keys and nodes; false when there was none.</summary>
    Task<bool> DeleteTailnetAsync(string name, CancellationToken cancellationToken);

    /// <summary>Creates an auth key; false when the id is taken or the tailnet does not exist.</summary>
    Task<bool> TryCreateAuthKeyAsync(StoredAuthKey key, CancellationToken cancellationToken);

    /// <summary>The auth key of that id, or null.</summary>
    Task<StoredAuthKey?> GetAuthKeyAsync(string id, CancellationToken cancellationToken);

    /// <summary>The auth keys of a tailnet, oldest first.</summary>
    Task<IReadOnlyList<StoredAuthKey>> ListAuthKeysAsync(string tailnet, CancellationToken cancellationToken);

    /// <summary>Revokes an auth key; false when there is none of that id.</summary>
    Task<bool> RevokeAuthKeyAsync(string id, CancellationToken cancellationToken);

    /// <summary>The node with that node key (in any tailnet), or null.</summary>
    Task<StoredNode?> GetNodeByKeyAsync(ReadOnlyMemory<byte> nodeKey, CancellationToken cancellationToken);

    /// <summary>The node with that id, or null.</summary>
    Task<StoredNode?> GetNodeAsync(ulong id, CancellationToken cancellationToken);

    /// <summary>The nodes of a tailnet, by id.</summary>
    Task<IReadOnlyList<StoredNode>> ListNodesAsync(string tailnet, CancellationToken cancellationToken);

    /// <summary>The names in a tailnet that start with <paramref name="prefix"/> (for choosing a free one).</summary>
    Task<IReadOnlyList<string>> ListNamesWithPrefixAsync(string tailnet, string prefix, CancellationToken cancellationToken);

    /// <summary>
    /// Inserts a node (its <see cref="StoredNode.Id"/> is ignored and assigned) after checking,
    /// in one transaction: the tailnet exists; node key, name and addresses are free; and, when
    /// <see cref="StoredNode.AuthKeyId"/> is set, the key is usable at <see cref="StoredNode.Created"/>
    /// (not revoked, not expired, reusable or unused), counting the use.
    /// </summary>
    Task<NodeInsertResult> InsertNodeAsync(StoredNode node, CancellationToken cancellationToken);

    /// <summary>
    /// Replaces a node's key (rotation) if its current key is <paramref name="expectedOldKey"/>,
    /// and sets the new key's expiry. When <paramref name="authKeyId"/> is set (re-authorizing a
    /// node whose key expired), the same transaction checks that this auth key belongs to the
    /// node's tailnet and is usable at <paramref name="now"/> (not revoked, not expired, reusable
    /// or unused), and counts the use; otherwise nothing changes.
    /// </summary>
    Task<NodeKeyUpdateOutcome> UpdateNodeKeyAsync(ulong id, ReadOnlyMemory<byte> expectedOldKey, ReadOnlyMemory<byte> newKey,
        DateTimeOffset keyExpiry, string? authKeyId, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Sets a node's key expiry; false when there is no such node.</summary>
    Task<bool> SetKeyExpiryAsync(ulong id, DateTimeOffset keyExpiry, CancellationToken cancellationToken);

    /// <summary>Sets the host name a node reported; false when there is no such node.</summary>
    Task<bool> SetHostnameAsync(ulong id, string hostname, CancellationToken cancellationToken);

    /// <summary>Replaces a node's tags; false when there is no such node.</summary>
    Task<bool> SetTagsAsync(ulong id, IReadOnlyList<string> tags, CancellationToken cancellationToken);

    /// <summary>The tailnet's saved policy (text empty when it was removed), or null when none was ever saved.</summary>
    Task<StoredPolicy?> GetPolicyAsync(string tailnet, CancellationToken cancellationToken);

    /// <summary>
    /// Saves the tailnet's policy text (empty: removed) with the next version (1 for the first
    /// save); null when the tailnet does not exist.
    /// </summary>
    Task<StoredPolicy?> SavePolicyAsync(string tailnet, string text, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Records when a node was last connected; false when there is no such node.</summary>
    Task<bool> SetLastSeenAsync(ulong id, DateTimeOffset lastSeen, CancellationToken cancellationToken);

    /// <summary>Deletes a node; false when there was none.</summary>
    Task<bool> DeleteNodeAsync(ulong id, CancellationToken cancellationToken);

    /// <summary>
    /// Ephemeral nodes last seen (or, never connected, created) before <paramref name="cutoff"/>,
    /// at most <paramref name="limit"/>.
    /// </summary>
    Task<IReadOnlyList<StoredNode>> ListEphemeralNodesIdleSinceAsync(DateTimeOffset cutoff, int limit, CancellationToken cancellationToken);

    /// <summary>
    /// Nodes whose key expiry is in (<paramref name="after"/>, <paramref name="upTo"/>], at most
    /// <paramref name="limit"/>, soonest first.
    /// </summary>
    Task<IReadOnlyList<StoredNode>> ListNodesWithKeyExpiryAsync(DateTimeOffset after, DateTimeOffset upTo, int limit, CancellationToken cancellationToken);
}
