using Google.Protobuf.WellKnownTypes;
using MeshNet.Control.V1;
using MeshNet.Coordination.Bus;
using MeshNet.Coordination.Hosting;
using MeshNet.Coordination.Policy;
using MeshNet.Coordination.Storage;
using MeshNet.Coordination.Validation;
using Microsoft.Extensions.Logging;

namespace MeshNet.Coordination.Registry;

/// <summary>
/// The Admin API's operations (tailnets, auth keys, nodes, policy), shared by the gRPC service
/// and the embedded server's helpers. Authentication is the caller's business. Failures are
/// <see cref="CoordinationException"/>s with clear messages; writes of a tailnet another server
/// serves fail with NotOwner (the gRPC service forwards them there). Writes take an optional
/// idempotency key: a retried write is applied once and answered as the first time.
/// </summary>
internal sealed class AdminOperations
{
    private static readonly TimeSpan MaxLifetime = TimeSpan.FromDays(3650);

    private readonly ICoordinationStore _store;
    private readonly TailnetHub _hub;
    private readonly NodeLifecycle _lifecycle;
    private readonly CoordinationOptions _options;
    private readonly TimeProvider _time;
    private readonly CoordinationCounters _counters;
    private readonly CoordinationRuntime _runtime;
    private readonly ILogger _logger;

    public AdminOperations(ICoordinationStore store, TailnetHub hub, NodeLifecycle lifecycle, CoordinationOptions options, TimeProvider time,
        CoordinationCounters counters, CoordinationRuntime runtime, ILogger<AdminOperations> logger)
    {
        _counters = counters;
        _runtime = runtime;
        _store = store;
        _hub = hub;
        _lifecycle = lifecycle;
        _options = options;
        _time = time;
        _logger = logger;
    }

    public async Task<Tailnet> CreateTailnetAsync(CreateTailnetRequest request, CancellationToken cancellationToken)
    {
        RequestValidator.TailnetName(request.Name);
        var domain = request.Domain.Length == 0 ? $"{request.Name}.{_options.DomainSuffix}" : request.Domain;
        if (!Names.IsDnsName(domain))
        {
            throw Failures.Invalid("domain must be a lowercase DNS name (labels of [a-z0-9-], at most 253 characters)");
        }
        var lifetime = RequestValidator.Duration(request.NodeKeyLifetime, _options.DefaultNodeKeyLifetime, MaxLifetime, "node_key_lifetime");
        var tailnet = new StoredTailnet(request.Name, domain, _time.GetUtcNow(), lifetime);
        if (!await _store.TryCreateTailnetAsync(tailnet, cancellationToken).ConfigureAwait(false))
        {
            throw Failures.Create(CoordinationErrorCode.AlreadyExists, $"tailnet '{request.Name}' already exists");
        }
        CoordinationLog.TailnetCreated(_logger, tailnet.Name);
        return ToProto(tailnet);
    }

    public async Task<ListTailnetsResponse> ListTailnetsAsync(CancellationToken cancellationToken)
    {
        var response = new ListTailnetsResponse();
        response.Tailnets.Add((await _store.ListTailnetsAsync(cancellationToken).ConfigureAwait(false)).Select(ToProto));
        return response;
    }

    public async Task DeleteTailnetAsync(string name, CancellationToken cancellationToken)
    {
        RequestValidator.TailnetName(name);
        using var scope = await _hub.LockAsync(name, cancellationToken).ConfigureAwait(false) ?? throw TailnetNotFound(name);
        var result = await scope.CommitAsync(fence => _store.DeleteTailnetAsync(fence, cancellationToken), cancellationToken).ConfigureAwait(false);
        if (!result.Value)
        {
            throw TailnetNotFound(name);
        }
        _hub.Close(name, Failures.NotRegistered("the tailnet was deleted"));
        _hub.Keeper.Forget(name, scope.Bus.Epoch);
        CoordinationLog.TailnetDeleted(_logger, name);
    }

    /// <summary>
    /// Creates an auth key; the secret form is returned only here. With an idempotency key the key
    /// is derived from it (and the server's secret), so a retry returns the same key.
    /// </summary>
    public async Task<CreateAuthKeyResponse> CreateAuthKeyAsync(CreateAuthKeyRequest request, CancellationToken cancellationToken,
        string? idempotencyKey = null)
    {
        RequestValidator.TailnetName(request.Tailnet, "tailnet");
        var tags = RequestValidator.Tags(request.Tags, "tags");
        var lifetime = RequestValidator.Duration(request.Lifetime, _options.DefaultAuthKeyLifetime, MaxLifetime, "lifetime");
        RequestValidator.Description(request.Description);
        RequestValidator.User(request.User);
        var now = _time.GetUtcNow();
        var (id, text, hash) = idempotencyKey is null ? AuthKeySecret.Generate() : DeriveKey(request.Tailnet, idempotencyKey);
        var key = new StoredAuthKey(id, request.Tailnet, hash, request.Reusable, request.Ephemeral, tags, now, now + lifetime, 0, false, request.Description,
            request.User);
        using var scope = await _hub.LockAsync(request.Tailnet, cancellationToken).ConfigureAwait(false) ?? throw TailnetNotFound(request.Tailnet);
        scope.Charge();
        var result = await scope.CommitAsync(fence => _store.TryCreateAuthKeyAsync(fence, key, cancellationToken), cancellationToken, idempotencyKey)
            .ConfigureAwait(false);
        if (result.Status == FencedStatus.Duplicate)
        {
            var earlier = await _store.GetAuthKeyAsync(id, cancellationToken).ConfigureAwait(false) ?? throw TailnetNotFound(request.Tailnet);
            return new CreateAuthKeyResponse { Key = ToProto(earlier), Secret = text };
        }
        if (!result.Value)
        {
            throw TailnetNotFound(request.Tailnet);
        }
        CoordinationLog.AuthKeyCreated(_logger, id, key.Tailnet, key.Reusable, key.Ephemeral);
        return new CreateAuthKeyResponse { Key = ToProto(key), Secret = text };
    }

    private (string Id, string Text, byte[] Hash) DeriveKey(string tailnet, string idempotencyKey)
    {
        Span<byte> secret = stackalloc byte[32];
        try
        {
            _runtime.ServerKey.ExportSecret(secret);
            return AuthKeySecret.Derive(secret, tailnet, idempotencyKey);
        }
        finally
        {
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(secret);
        }
    }

    public async Task<ListAuthKeysResponse> ListAuthKeysAsync(string tailnet, CancellationToken cancellationToken)
    {
        await RequireTailnetAsync(tailnet, cancellationToken).ConfigureAwait(false);
        var response = new ListAuthKeysResponse();
        response.Keys.Add((await _store.ListAuthKeysAsync(tailnet, cancellationToken).ConfigureAwait(false)).Select(ToProto));
        return response;
    }

    public async Task RevokeAuthKeyAsync(string id, CancellationToken cancellationToken, string? idempotencyKey = null)
    {
        var key = id.Length is 0 or > 64 ? null : await _store.GetAuthKeyAsync(id, cancellationToken).ConfigureAwait(false);
        if (key is null)
        {
            throw Failures.NotFound("no auth key has that id");
        }
        using var scope = await _hub.LockAsync(key.Tailnet, cancellationToken).ConfigureAwait(false) ?? throw Failures.NotFound("no auth key has that id");
        scope.Charge();
        var result = await scope.CommitAsync(fence => _store.RevokeAuthKeyAsync(fence, id, cancellationToken), cancellationToken, idempotencyKey)
            .ConfigureAwait(false);
        if (result.Status != FencedStatus.Duplicate && !result.Value)
        {
            throw Failures.NotFound("no auth key has that id");
        }
        CoordinationLog.AuthKeyRevoked(_logger, id);
    }

    /// <summary>The tailnet's nodes as stored, live state included (any server can answer).</summary>
    public async Task<ListNodesResponse> ListNodesAsync(string tailnet, CancellationToken cancellationToken)
    {
        await RequireTailnetAsync(tailnet, cancellationToken).ConfigureAwait(false);
        var bus = _hub.TryGetLoaded(tailnet);
        var response = new ListNodesResponse();
        foreach (var node in await _store.ListNodesAsync(tailnet, cancellationToken).ConfigureAwait(false))
        {
            response.Nodes.Add(bus?.GetRecord(node.Id) ?? NodeRecords.ToProto(node));
        }
        return response;
    }

    public async Task DeleteNodeAsync(string tailnet, ulong id, CancellationToken cancellationToken, string? idempotencyKey = null)
    {
        RequestValidator.TailnetName(tailnet, "tailnet");
        if (!await _lifecycle.DeleteNodeAsync(tailnet, id, "deleted by an administrator", cancellationToken, null, idempotencyKey).ConfigureAwait(false))
        {
            throw NodeNotFound(tailnet, id);
        }
    }

    public async Task ExpireNodeKeyAsync(string tailnet, ulong id, CancellationToken cancellationToken, string? idempotencyKey = null)
    {
        RequestValidator.TailnetName(tailnet, "tailnet");
        if (!await _lifecycle.ExpireKeyAsync(tailnet, id, cancellationToken, idempotencyKey).ConfigureAwait(false))
        {
            throw NodeNotFound(tailnet, id);
        }
    }

    /// <summary>
    /// Parses, validates and tests the policy (outside any lock), then under the tailnet's write
    /// gate saves it and puts it in force: affected nodes get one delta each. Empty text removes
    /// the policy. On any failure the previous policy stays in force.
    /// </summary>
    public async Task<SetPolicyResponse> SetPolicyAsync(SetPolicyRequest request, CancellationToken cancellationToken, string? idempotencyKey = null)
    {
        RequestValidator.TailnetName(request.Tailnet, "tailnet");
        PolicyDocument? document = null;
        if (!string.IsNullOrWhiteSpace(request.Policy))
        {
            try
            {
                document = PolicyParser.Parse(request.Policy);
                document.RunTests();
            }
            catch (PolicyException exception)
            {
                CoordinationLog.PolicyRefused(_logger, request.Tailnet, exception.Message);
                throw Failures.Policy(exception);
            }
        }
        using var scope = await _hub.LockAsync(request.Tailnet, cancellationToken).ConfigureAwait(false) ?? throw TailnetNotFound(request.Tailnet);
        scope.Charge();
        var text = document is null ? "" : request.Policy;
        var result = await scope.CommitAsync(fence => _store.SavePolicyAsync(fence, text, _time.GetUtcNow(), cancellationToken), cancellationToken,
            idempotencyKey).ConfigureAwait(false);
        if (result.Status == FencedStatus.Duplicate)
        {
            // Saved before (the answer was lost): the version it was saved as.
            return new SetPolicyResponse { Version = ulong.Parse(result.Detail, System.Globalization.CultureInfo.InvariantCulture) };
        }
        var saved = result.Value ?? throw TailnetNotFound(request.Tailnet);
        int affected = scope.Bus.SetPolicy(document, saved.Version, result.Revision);
        _counters.PolicySaved();
        CoordinationLog.PolicySaved(_logger, request.Tailnet, saved.Version, affected);
        return new SetPolicyResponse { Version = saved.Version, NodesAffected = (uint)affected };
    }

    /// <summary>The tailnet's saved policy (empty text when none) and its version.</summary>
    public async Task<GetPolicyResponse> GetPolicyAsync(string tailnet, CancellationToken cancellationToken)
    {
        await RequireTailnetAsync(tailnet, cancellationToken).ConfigureAwait(false);
        var stored = await _store.GetPolicyAsync(tailnet, cancellationToken).ConfigureAwait(false);
        var response = new GetPolicyResponse();
        if (stored is not null)
        {
            response.Policy = stored.Text;
            response.Version = stored.Version;
            response.Updated = Timestamp.FromDateTimeOffset(stored.Updated);
        }
        return response;
    }

    private async Task RequireTailnetAsync(string tailnet, CancellationToken cancellationToken)
    {
        RequestValidator.TailnetName(tailnet, "tailnet");
        if (await _store.GetTailnetAsync(tailnet, cancellationToken).ConfigureAwait(false) is null)
        {
            throw TailnetNotFound(tailnet);
        }
    }

    private static CoordinationException TailnetNotFound(string name) => Failures.NotFound($"tailnet '{name}' does not exist");

    private static CoordinationException NodeNotFound(string tailnet, ulong id) => Failures.NotFound($"tailnet '{tailnet}' has no node {id}");

    private static Tailnet ToProto(StoredTailnet tailnet) => new()
    {
        Name = tailnet.Name,
        Domain = tailnet.Domain,
        Created = Timestamp.FromDateTimeOffset(tailnet.Created),
        NodeKeyLifetime = Duration.FromTimeSpan(tailnet.NodeKeyLifetime),
    };

    private static AuthKey ToProto(StoredAuthKey key)
    {
        var proto = new AuthKey
        {
            Id = key.Id,
            Tailnet = key.Tailnet,
            Reusable = key.Reusable,
            Ephemeral = key.Ephemeral,
            Created = Timestamp.FromDateTimeOffset(key.Created),
            Expires = Timestamp.FromDateTimeOffset(key.Expires),
            Uses = (uint)key.Uses,
            Revoked = key.Revoked,
            Description = key.Description,
            User = key.User,
        };
        proto.Tags.Add(key.Tags);
        return proto;
    }
}
