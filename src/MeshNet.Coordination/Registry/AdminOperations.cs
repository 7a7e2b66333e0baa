using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using MeshNet.Control.V1;
using MeshNet.Coordination.Bus;
using MeshNet.Coordination.Policy;
using MeshNet.Coordination.Storage;
using MeshNet.Coordination.Validation;
using Microsoft.Extensions.Logging;

namespace MeshNet.Coordination.Registry;

/// <summary>
/// The Admin API's operations (tailnets, auth keys, nodes), shared by the gRPC service and the
/// embedded server's helpers. Authentication is the caller's business. Failures are
/// RpcExceptions (InvalidArgument, NotFound, AlreadyExists) with clear messages.
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
    private readonly ILogger _logger;

    public AdminOperations(ICoordinationStore store, TailnetHub hub, NodeLifecycle lifecycle, CoordinationOptions options, TimeProvider time,
        CoordinationCounters counters, ILogger<AdminOperations> logger)
    {
        _counters = counters;
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
            throw new RpcException(new Status(StatusCode.AlreadyExists, $"tailnet '{request.Name}' already exists"));
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
        using var lease = await _hub.LockAsync(name, cancellationToken).ConfigureAwait(false) ?? throw TailnetNotFound(name);
        if (!await _store.DeleteTailnetAsync(name, cancellationToken).ConfigureAwait(false))
        {
            throw TailnetNotFound(name);
        }
        _hub.Close(name, Failures.NotRegistered("the tailnet was deleted"));
        CoordinationLog.TailnetDeleted(_logger, name);
    }

    /// <summary>Creates an auth key; the secret form is returned only here.</summary>
    public async Task<CreateAuthKeyResponse> CreateAuthKeyAsync(CreateAuthKeyRequest request, CancellationToken cancellationToken)
    {
        RequestValidator.TailnetName(request.Tailnet, "tailnet");
        var tags = RequestValidator.Tags(request.Tags, "tags");
        var lifetime = RequestValidator.Duration(request.Lifetime, _options.DefaultAuthKeyLifetime, MaxLifetime, "lifetime");
        RequestValidator.Description(request.Description);
        RequestValidator.User(request.User);
        var now = _time.GetUtcNow();
        var (id, text, hash) = AuthKeySecret.Generate();
        var key = new StoredAuthKey(id, request.Tailnet, hash, request.Reusable, request.Ephemeral, tags, now, now + lifetime, 0, false, request.Description,
            request.User);
        if (!await _store.TryCreateAuthKeyAsync(key, cancellationToken).ConfigureAwait(false))
        {
            throw TailnetNotFound(request.Tailnet);
        }
        CoordinationLog.AuthKeyCreated(_logger, id, key.Tailnet, key.Reusable, key.Ephemeral);
        return new CreateAuthKeyResponse { Key = ToProto(key), Secret = text };
    }

    public async Task<ListAuthKeysResponse> ListAuthKeysAsync(string tailnet, CancellationToken cancellationToken)
    {
        await RequireTailnetAsync(tailnet, cancellationToken).ConfigureAwait(false);
        var response = new ListAuthKeysResponse();
        response.Keys.Add((await _store.ListAuthKeysAsync(tailnet, cancellationToken).ConfigureAwait(false)).Select(ToProto));
        return response;
    }

    public async Task RevokeAuthKeyAsync(string id, CancellationToken cancellationToken)
    {
        if (id.Length is 0 or > 64 || !await _store.RevokeAuthKeyAsync(id, cancellationToken).ConfigureAwait(false))
        {
            throw new RpcException(new Status(StatusCode.NotFound, "no auth key has that id"));
        }
        CoordinationLog.AuthKeyRevoked(_logger, id);
    }

    /// <summary>The tailnet's nodes, with live online state and endpoints when its bus is loaded.</summary>
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

    public async Task DeleteNodeAsync(string tailnet, ulong id, CancellationToken cancellationToken)
    {
        RequestValidator.TailnetName(tailnet, "tailnet");
        if (!await _lifecycle.DeleteNodeAsync(tailnet, id, "deleted by an administrator", cancellationToken).ConfigureAwait(false))
        {
            throw NodeNotFound(tailnet, id);
        }
    }

    public async Task ExpireNodeKeyAsync(string tailnet, ulong id, CancellationToken cancellationToken)
    {
        RequestValidator.TailnetName(tailnet, "tailnet");
        if (!await _lifecycle.ExpireKeyAsync(tailnet, id, cancellationToken).ConfigureAwait(false))
        {
            throw NodeNotFound(tailnet, id);
        }
    }

    /// <summary>
    /// Parses, validates and tests the policy (outside any lock), then under the tailnet's write
    /// gate saves it and puts it in force: affected nodes get one delta each. Empty text removes
    /// the policy. On any failure the previous policy stays in force.
    /// </summary>
    public async Task<SetPolicyResponse> SetPolicyAsync(SetPolicyRequest request, CancellationToken cancellationToken)
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
        using var lease = await _hub.LockAsync(request.Tailnet, cancellationToken).ConfigureAwait(false) ?? throw TailnetNotFound(request.Tailnet);
        var text = document is null ? "" : request.Policy;
        var saved = await _store.SavePolicyAsync(request.Tailnet, text, _time.GetUtcNow(), cancellationToken).ConfigureAwait(false)
            ?? throw TailnetNotFound(request.Tailnet);
        int affected = lease.Bus.SetPolicy(document, saved.Version);
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

    private static RpcException TailnetNotFound(string name) => new(new Status(StatusCode.NotFound, $"tailnet '{name}' does not exist"));

    private static RpcException NodeNotFound(string tailnet, ulong id) => new(new Status(StatusCode.NotFound, $"tailnet '{tailnet}' has no node {id}"));

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
