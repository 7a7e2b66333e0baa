using Google.Protobuf;
using MeshNet.Control.V1;
using MeshNet.Coordination.Bus;
using MeshNet.Coordination.Hosting;
using MeshNet.Coordination.Policy;
using MeshNet.Coordination.Storage;
using MeshNet.Coordination.Validation;
using MeshNet.Protocol;
using Microsoft.Extensions.Logging;

namespace MeshNet.Coordination.Registry;

/// <summary>
/// Register: new nodes with auth keys, re-registration of known node keys, and key rotation.
/// A node keeps its id, addresses and name for its whole life. Key expiry policy: a still-valid
/// key may be replaced on the old key's proof alone; an expired key only with the proof and a
/// valid auth key of the node's tailnet (whose use is counted), so that an expiry, by time or
/// by an administrator, forces re-authentication. Writes to a tailnet run under
/// its bus's write gate (the fenced store write, then the publish), so the tailnet's peers see
/// every change in order; a server that does not hold the tailnet's lease answers NotOwner (the
/// node follows the redirect). Registration is idempotent by node key: a retried registration
/// (or rotation) whose first answer was lost returns the node as registered. The caller (the
/// Control service) has already checked the proof of key.
/// </summary>
internal sealed class NodeRegistrar
{
    private const int MaxAddressAttempts = 64;

    private readonly ICoordinationStore _store;
    private readonly TailnetHub _hub;
    private readonly CoordinationRuntime _runtime;
    private readonly TimeProvider _time;
    private readonly CoordinationCounters _counters;
    private readonly AddressAllocator _addresses;
    private readonly ILogger _logger;

    public NodeRegistrar(ICoordinationStore store, TailnetHub hub, CoordinationRuntime runtime, TimeProvider time,
        CoordinationCounters counters, AddressAllocator addresses, ILogger<NodeRegistrar> logger)
    {
        _store = store;
        _hub = hub;
        _runtime = runtime;
        _time = time;
        _counters = counters;
        _addresses = addresses;
        _logger = logger;
    }

    public async Task<RegisterResponse> RegisterAsync(RegisterRequest request, CancellationToken cancellationToken)
    {
        try
        {
            RequestValidator.NodeKey(request.NodeKey, "node_key");
            RequestValidator.Hostname(request.Hostname);
            var requestedTags = RequestValidator.Tags(request.RequestedTags, "requested_tags");
            if (request.AuthKey.Length > RequestValidator.MaxAuthKeyLength)
            {
                throw Failures.Invalid($"auth_key is {request.AuthKey.Length} characters; the limit is {RequestValidator.MaxAuthKeyLength}");
            }
            var now = _time.GetUtcNow();
            RegisterResponse? response = null;
            if (request.OldNodeKey.Length > 0 || request.OldNodeKeyProof.Length > 0)
            {
                response = await TryRotateAsync(request, requestedTags, now, cancellationToken).ConfigureAwait(false);
            }
            if (response is null)
            {
                var known = await _store.GetNodeByKeyAsync(request.NodeKey.Memory, cancellationToken).ConfigureAwait(false);
                response = known is not null
                    ? await ReregisterAsync(known, request, requestedTags, now, cancellationToken).ConfigureAwait(false)
                    : await RegisterNewAsync(request, requestedTags, now, cancellationToken).ConfigureAwait(false);
            }
            _counters.Registered();
            return response;
        }
        catch (CoordinationException exception) when (exception.ErrorCode is not (CoordinationErrorCode.NotOwner or CoordinationErrorCode.NoOwner))
        {
            _counters.RegistrationRefused();
            CoordinationLog.RegistrationRefused(_logger, exception.ErrorCode.ToString());
            throw;
        }
    }

    /// <summary>
    /// Rotation: null when the old key is unknown and either an auth key is given (the request then
    /// registers as new) or the new key is registered already (a retried rotation: the request is
    /// then a re-registration).
    /// </summary>
    private async Task<RegisterResponse?> TryRotateAsync(RegisterRequest request, IReadOnlyList<string> requestedTags, DateTimeOffset now,
        CancellationToken cancellationToken)
    {
        RequestValidator.NodeKey(request.OldNodeKey, "old_node_key");
        if (request.OldNodeKeyProof.Length != ControlProof.ProofSize)
        {
            throw Failures.Invalid($"old_node_key_proof must be {ControlProof.ProofSize} bytes, not {request.OldNodeKeyProof.Length}");
        }
        if (request.OldNodeKey.Equals(request.NodeKey))
        {
            throw Failures.Invalid("old_node_key equals node_key: a rotation needs a new key");
        }
        var node = await _store.GetNodeByKeyAsync(request.OldNodeKey.Memory, cancellationToken).ConfigureAwait(false);
        if (node is null)
        {
            if (request.AuthKey.Length > 0 || await _store.GetNodeByKeyAsync(request.NodeKey.Memory, cancellationToken).ConfigureAwait(false) is not null)
            {
                return null;
            }
            throw Failures.Create(CoordinationErrorCode.AuthKeyRequired, "old_node_key is not registered, and registering as a new node needs an auth key");
        }
        if (!VerifyRotationProof(request.OldNodeKey.Span, request.NodeKey.Span, request.OldNodeKeyProof.Span))
        {
            throw Failures.Create(CoordinationErrorCode.BadProof, "old_node_key_proof does not verify: the caller does not hold old_node_key");
        }
        // A still-valid key hands over on its own proof. An expired one (its lifetime ended, or an
        // administrator expired it) proves nothing any more: only a valid auth key of the node's
        // tailnet brings the node back, so that key expiry forces re-authentication.
        StoredAuthKey? authorizing = null;
        if (node.KeyExpiry <= now)
        {
            if (request.AuthKey.Length == 0)
            {
                throw Failures.NodeKeyExpired("the old key's proof alone cannot replace an expired key");
            }
            authorizing = await CheckAuthKeyAsync(request.AuthKey, now, cancellationToken).ConfigureAwait(false);
            if (authorizing.Tailnet != node.Tailnet)
            {
                throw AuthKeyFailure(CoordinationErrorCode.AuthKeyUnknown, "unknown auth key (not a key of the node's tailnet)");
            }
        }
        using var scope = await RequireScopeAsync(node.Tailnet, cancellationToken).ConfigureAwait(false);
        var bus = scope.Bus;
        var tailnet = await _store.GetTailnetAsync(node.Tailnet, cancellationToken).ConfigureAwait(false)
            ?? throw Failures.NotRegistered("the node's tailnet was deleted");
        var tags = GrantTags(bus.Policy, requestedTags, node.Tags, node.User, "the node", newNode: false);
        var expiry = now + tailnet.NodeKeyLifetime;
        scope.Charge();
        var result = await scope.CommitAsync(fence => _store.UpdateNodeKeyAsync(fence, node.Id, request.OldNodeKey.Memory, request.NodeKey.Memory, expiry,
            authorizing?.Id, now, cancellationToken), cancellationToken).ConfigureAwait(false);
        if (!result.IsCommitted)
        {
            switch (result.Value)
            {
                case NodeKeyUpdateOutcome.NodeKeyTaken:
                    throw Failures.Create(CoordinationErrorCode.Conflict, "node_key is already registered to another node");
                case NodeKeyUpdateOutcome.AuthKeyUnusable:
                    // Used, revoked or expired since the check: say which.
                    await CheckAuthKeyAsync(request.AuthKey, now, cancellationToken).ConfigureAwait(false);
                    throw AuthKeyFailure(CoordinationErrorCode.AuthKeyUsedUp, "auth key already used (it is a one-off key)");
                default:
                    throw Failures.NotRegistered("old_node_key is no longer registered (removed or rotated concurrently)");
            }
        }
        bus.RotateKey(node.Id, request.NodeKey.Span, expiry, result.Revision);
        var updated = node with { NodeKey = request.NodeKey.ToByteArray(), KeyExpiry = expiry };
        if (request.Hostname != node.Hostname || !tags.SequenceEqual(node.Tags))
        {
            updated = await UpdateRecordAsync(scope, updated, request.Hostname, tags, cancellationToken).ConfigureAwait(false);
        }
        _counters.KeyRotated();
        if (authorizing is not null)
        {
            CoordinationLog.NodeReauthenticated(_logger, node.Id, authorizing.Id, node.Tailnet);
        }
        else
        {
            CoordinationLog.NodeKeyRotated(_logger, node.Id, node.Tailnet);
        }
        return Response(bus, updated, tailnet);
    }

    private async Task<RegisterResponse> ReregisterAsync(StoredNode node, RegisterRequest request, IReadOnlyList<string> requestedTags,
        DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (node.KeyExpiry <= now)
        {
            throw Failures.NodeKeyExpired();
        }
        using var scope = await RequireScopeAsync(node.Tailnet, cancellationToken).ConfigureAwait(false);
        var bus = scope.Bus;
        var current = await _store.GetNodeAsync(node.Id, cancellationToken).ConfigureAwait(false)
            ?? throw Failures.NotRegistered("the node was removed; register again with an auth key");
        var tailnet = await _store.GetTailnetAsync(current.Tailnet, cancellationToken).ConfigureAwait(false)
            ?? throw Failures.NotRegistered("the node's tailnet was deleted");
        var tags = GrantTags(bus.Policy, requestedTags, current.Tags, current.User, "the node", newNode: false);
        if (request.Hostname != current.Hostname || !tags.SequenceEqual(current.Tags))
        {
            current = await UpdateRecordAsync(scope, current, request.Hostname, tags, cancellationToken).ConfigureAwait(false);
        }
        CoordinationLog.NodeReregistered(_logger, current.Id, current.Tailnet);
        return Response(bus, current, tailnet);
    }

    private async Task<RegisterResponse> RegisterNewAsync(RegisterRequest request, IReadOnlyList<string> requestedTags, DateTimeOffset now,
        CancellationToken cancellationToken)
    {
        var key = await CheckAuthKeyAsync(request.AuthKey, now, cancellationToken).ConfigureAwait(false);
        using var scope = await _hub.LockAsync(key.Tailnet, cancellationToken).ConfigureAwait(false)
            ?? throw AuthKeyFailure(CoordinationErrorCode.AuthKeyUnknown, "unknown auth key");
        var bus = scope.Bus;
        var tailnet = await _store.GetTailnetAsync(key.Tailnet, cancellationToken).ConfigureAwait(false)
            ?? throw AuthKeyFailure(CoordinationErrorCode.AuthKeyUnknown, "unknown auth key");
        var tags = GrantTags(bus.Policy, requestedTags, key.Tags, key.User, "the auth key", newNode: true);
        var label = Names.LabelFromHostname(request.Hostname);
        string? name = null;
        for (int attempt = 0; attempt < MaxAddressAttempts; attempt++)
        {
            name ??= await FreeNameAsync(tailnet.Name, label, cancellationToken).ConfigureAwait(false);
            var (ipv4, ipv6) = _addresses.Next();
            var candidate = new StoredNode(0, tailnet.Name, request.NodeKey.ToByteArray(), name, request.Hostname, ipv4, ipv6, tags,
                request.Ephemeral || key.Ephemeral, now + tailnet.NodeKeyLifetime, now, null, key.Id, key.User);
            scope.Charge();
            var written = await scope.CommitAsync(fence => _store.InsertNodeAsync(fence, candidate, cancellationToken), cancellationToken).ConfigureAwait(false);
            var result = written.Value;
            switch (result.Outcome)
            {
                case NodeInsertOutcome.Inserted:
                    bus.Upsert(result.Node!, written.Revision);
                    CoordinationLog.NodeRegistered(_logger, result.Node!.Id, result.Node.Name, tailnet.Name);
                    return Response(bus, result.Node, tailnet);
                case NodeInsertOutcome.NameTaken:
                    name = null;
                    break;
                case NodeInsertOutcome.AddressTaken:
                    break;
                case NodeInsertOutcome.NodeKeyTaken:
                    throw Failures.Create(CoordinationErrorCode.Conflict, "the node key was registered concurrently; register again");
                case NodeInsertOutcome.TailnetMissing:
                    throw AuthKeyFailure(CoordinationErrorCode.AuthKeyUnknown, "unknown auth key");
                case NodeInsertOutcome.AuthKeyUnusable:
                    // Used, revoked or expired since the check: say which.
                    await CheckAuthKeyAsync(request.AuthKey, now, cancellationToken).ConfigureAwait(false);
                    throw AuthKeyFailure(CoordinationErrorCode.AuthKeyUsedUp, "auth key already used (it is a one-off key)");
            }
        }
        throw Failures.Create(CoordinationErrorCode.ResourceExhausted, "no free address found in the tailnet");
    }

    private async Task<StoredAuthKey> CheckAuthKeyAsync(string text, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (text.Length == 0)
        {
            throw AuthKeyFailure(CoordinationErrorCode.AuthKeyRequired, "an auth key is required to register a new node");
        }
        if (!AuthKeySecret.TryParse(text, out var id, out var secret))
        {
            throw AuthKeyFailure(CoordinationErrorCode.AuthKeyUnknown, "unknown auth key (malformed: expected mnkey-<id>-<secret>)");
        }
        var key = await _store.GetAuthKeyAsync(id, cancellationToken).ConfigureAwait(false);
        if (key is null || !AuthKeySecret.Matches(secret, key.SecretHash))
        {
            throw AuthKeyFailure(CoordinationErrorCode.AuthKeyUnknown, "unknown auth key");
        }
        if (key.Revoked)
        {
            throw AuthKeyFailure(CoordinationErrorCode.AuthKeyRevoked, "auth key revoked");
        }
        if (key.Expires <= now)
        {
            throw AuthKeyFailure(CoordinationErrorCode.AuthKeyExpired, "auth key expired");
        }
        if (!key.Reusable && key.Uses > 0)
        {
            throw AuthKeyFailure(CoordinationErrorCode.AuthKeyUsedUp, "auth key already used (it is a one-off key)");
        }
        return key;
    }

    private async Task<string> FreeNameAsync(string tailnet, string label, CancellationToken cancellationToken)
    {
        var taken = new HashSet<string>(await _store.ListNamesWithPrefixAsync(tailnet, Names.CandidatePrefix(label), cancellationToken).ConfigureAwait(false),
            StringComparer.Ordinal);
        for (int n = 1; ; n++)
        {
            var candidate = Names.Candidate(label, n);
            if (!taken.Contains(candidate))
            {
                return candidate;
            }
        }
    }

    private bool VerifyRotationProof(ReadOnlySpan<byte> oldKey, ReadOnlySpan<byte> newKey, ReadOnlySpan<byte> proof)
    {
        Span<byte> proofKey = stackalloc byte[ControlProof.ProofSize];
        try
        {
            return _runtime.ServerKey.TryDeriveProofKey(oldKey, proofKey) && ControlProof.VerifyRotationProof(proofKey, newKey, proof);
        }
        finally
        {
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(proofKey);
        }
    }

    private async Task<TailnetWriteScope> RequireScopeAsync(string tailnet, CancellationToken cancellationToken) =>
        await _hub.LockAsync(tailnet, cancellationToken).ConfigureAwait(false) ?? throw Failures.NotRegistered("the node's tailnet was deleted");

    /// <summary>
    /// The tags the node gets. Without a policy: requested tags must be among
    /// <paramref name="granted"/> (the auth key's, or the node's own), and the node gets
    /// <paramref name="granted"/>. With one: every tag the node gets must be declared in
    /// tagOwners, and a requested tag beyond <paramref name="granted"/> needs an owner that is
    /// the node's user, a group with that user, or one of <paramref name="granted"/>.
    /// </summary>
    /// <exception cref="CoordinationException">TagsNotPermitted, naming the tags.</exception>
    private static IReadOnlyList<string> GrantTags(PolicyDocument? policy, IReadOnlyList<string> requested, IReadOnlyList<string> granted,
        string user, string grantor, bool newNode)
    {
        var extra = requested.Where(tag => !granted.Contains(tag, StringComparer.Ordinal)).ToList();
        if (policy is null)
        {
            if (extra.Count > 0)
            {
                throw Failures.Create(CoordinationErrorCode.TagsNotPermitted,
                    $"tags not permitted by {grantor}: {string.Join(", ", extra)}");
            }
            return granted;
        }
        var checkedTags = newNode ? granted.Concat(extra) : extra;
        var undeclared = checkedTags.Where(tag => !policy.TagOwners.ContainsKey(tag)).ToList();
        if (undeclared.Count > 0)
        {
            throw Failures.Create(CoordinationErrorCode.TagsNotPermitted,
                $"tags not declared in the tailnet policy's tagOwners: {string.Join(", ", undeclared)}");
        }
        var refused = extra.Where(tag => !policy.Owns(user, granted.ToList(), tag)).ToList();
        if (refused.Count > 0)
        {
            throw Failures.Create(CoordinationErrorCode.TagsNotPermitted,
                $"tags not permitted by {grantor} or the tailnet policy's tagOwners: {string.Join(", ", refused)}");
        }
        return extra.Count == 0 ? granted : [.. granted.Concat(extra).Order(StringComparer.Ordinal)];
    }

    /// <summary>Writes the node's host name and tags and publishes its new record.</summary>
    private async Task<StoredNode> UpdateRecordAsync(TailnetWriteScope scope, StoredNode node, string hostname, IReadOnlyList<string> tags,
        CancellationToken cancellationToken)
    {
        scope.Charge();
        var result = await scope.CommitAsync(fence => _store.UpdateNodeAsync(fence, node.Id, hostname, tags, cancellationToken), cancellationToken)
            .ConfigureAwait(false);
        if (!result.IsCommitted)
        {
            throw Failures.NotRegistered("the node was removed concurrently; register again");
        }
        var updated = node with { Hostname = hostname, Tags = tags };
        scope.Bus.Upsert(updated, result.Revision);
        return updated;
    }

    private static CoordinationException AuthKeyFailure(CoordinationErrorCode code, string message) => Failures.Create(code, message);

    private static RegisterResponse Response(TailnetBus bus, StoredNode node, StoredTailnet tailnet) => new()
    {
        Self = bus.GetRecord(node.Id) ?? NodeRecords.ToProto(node),
        Tailnet = tailnet.Name,
        Domain = tailnet.Domain,
    };
}
