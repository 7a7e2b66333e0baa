using System.Reflection;
using Google.Protobuf;
using Grpc.Core;
using MeshNet.Control.V1;
using ControlApi = MeshNet.Control.V1.Control;
using MeshNet.Coordination.Bus;
using MeshNet.Coordination.Hosting;
using MeshNet.Coordination.Registry;
using MeshNet.Coordination.Storage;
using MeshNet.Coordination.Validation;
using Microsoft.Extensions.Logging;

namespace MeshNet.Coordination.Services;

/// <summary>
/// The node API (<c>meshnet.control.v1.Control</c>). Calls other than GetServerInfo arrive
/// authenticated by <see cref="Auth.NodeProofInterceptor"/>: the request's node key is the
/// caller's. Map and UpdateEndpoints need a registered node (FailedPrecondition otherwise).
/// </summary>
internal sealed class ControlService : ControlApi.ControlBase
{
    private static readonly string ServerVersion =
        typeof(ControlService).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

    private static readonly TimeSpan WriteGrace = TimeSpan.FromSeconds(5);

    private readonly CoordinationRuntime _runtime;
    private readonly ICoordinationStore _store;
    private readonly TailnetHub _hub;
    private readonly NodeRegistrar _registrar;
    private readonly TimeProvider _time;
    private readonly CoordinationCounters _counters;
    private readonly ILogger _logger;

    public ControlService(CoordinationRuntime runtime, ICoordinationStore store, TailnetHub hub, NodeRegistrar registrar, TimeProvider time,
        CoordinationCounters counters, ILogger<ControlService> logger)
    {
        _runtime = runtime;
        _store = store;
        _hub = hub;
        _registrar = registrar;
        _time = time;
        _counters = counters;
        _logger = logger;
    }

    public override async Task<ServerInfo> GetServerInfo(GetServerInfoRequest request, ServerCallContext context)
    {
        await _runtime.EnsureStartedAsync(context.CancellationToken).ConfigureAwait(false);
        return new ServerInfo { ServerKey = ByteString.CopyFrom(_runtime.ServerKey.PublicKey), ProtocolVersion = 1, ServerVersion = ServerVersion };
    }

    public override Task<RegisterResponse> Register(RegisterRequest request, ServerCallContext context) =>
        _registrar.RegisterAsync(request, context.CancellationToken);

    public override async Task Map(MapRequest request, IServerStreamWriter<MapResponse> responseStream, ServerCallContext context)
    {
        RequestValidator.NodeKey(request.NodeKey, "node_key");
        RequestValidator.Session(request.Session);
        RequestValidator.Instance(request.Instance);
        var endpoints = RequestValidator.Endpoints(request.Endpoints, "endpoints");
        StoredNode node;
        TailnetBus bus;
        MapStream stream;
        bool resumed;
        while (true)
        {
            (node, bus) = await FindNodeAsync(request.NodeKey, context.CancellationToken).ConfigureAwait(false);
            try
            {
                stream = bus.Attach(node.Id, request.NodeKey.Span, request.Session, request.LastSequence, endpoints, _time.GetUtcNow(), out resumed,
                    request.Instance);
                break;
            }
            catch (RpcException) when (bus.IsRetired)
            {
                // Unloaded between the lookup and the attach: load it afresh.
            }
        }
        _counters.StreamOpened();
        CoordinationLog.MapStreamOpened(_logger, node.Id, resumed ? "resumed" : "full map");
        try
        {
            await PumpAsync(stream, responseStream, context.CancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _counters.StreamClosed();
            var now = _time.GetUtcNow();
            if (bus.Detach(stream, now))
            {
                await RecordLastSeenAsync(node.Id, now).ConfigureAwait(false);
            }
            CoordinationLog.MapStreamClosed(_logger, node.Id);
        }
    }

    public override async Task<UpdateEndpointsResponse> UpdateEndpoints(UpdateEndpointsRequest request, ServerCallContext context)
    {
        RequestValidator.NodeKey(request.NodeKey, "node_key");
        var endpoints = RequestValidator.Endpoints(request.Endpoints, "endpoints");
        var (node, bus) = await FindNodeAsync(request.NodeKey, context.CancellationToken).ConfigureAwait(false);
        if (node.KeyExpiry <= _time.GetUtcNow())
        {
            throw Failures.NodeKeyExpired();
        }
        bus.UpdateEndpoints(node.Id, endpoints);
        return new UpdateEndpointsResponse();
    }

    private async Task<(StoredNode Node, TailnetBus Bus)> FindNodeAsync(ByteString nodeKey, CancellationToken cancellationToken)
    {
        var node = await _store.GetNodeByKeyAsync(nodeKey.Memory, cancellationToken).ConfigureAwait(false)
            ?? throw Failures.NotRegistered("the node is not registered: call Register first");
        var bus = await _hub.GetAsync(node.Tailnet, cancellationToken).ConfigureAwait(false)
            ?? throw Failures.NotRegistered("the node's tailnet was deleted");
        return (node, bus);
    }

    /// <summary>
    /// Sends the stream's queue in order until the client leaves or the bus ends the stream,
    /// in which case the call ends with the bus's reason.
    /// </summary>
    private async Task PumpAsync(MapStream stream, IServerStreamWriter<MapResponse> writer, CancellationToken callToken)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(callToken, stream.Terminated);
        // A write is not canceled by the termination itself (that would abort the HTTP/2 stream
        // and lose the status), but a client that stops reading gets only a grace period.
        using var writes = CancellationTokenSource.CreateLinkedTokenSource(callToken);
        using var grace = stream.Terminated.Register(static state => ((CancellationTokenSource)state!).CancelAfter(WriteGrace), writes);
        try
        {
            var reader = stream.Reader;
            while (await reader.WaitToReadAsync(linked.Token).ConfigureAwait(false))
            {
                while (reader.TryRead(out var message))
                {
                    await writer.WriteAsync(message, writes.Token).ConfigureAwait(false);
                    if (stream.Terminated.IsCancellationRequested)
                    {
                        break;
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The client left, or the bus ended the stream (its reason follows).
        }
        if (stream.Failure is { } failure && !callToken.IsCancellationRequested)
        {
            CoordinationLog.MapStreamTerminated(_logger, stream.NodeId, failure.Status.Detail);
            throw failure;
        }
    }

    private async Task RecordLastSeenAsync(ulong nodeId, DateTimeOffset now)
    {
        try
        {
            await _store.SetLastSeenAsync(nodeId, now, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            CoordinationLog.LastSeenFailed(_logger, nodeId, exception);
        }
    }
}
