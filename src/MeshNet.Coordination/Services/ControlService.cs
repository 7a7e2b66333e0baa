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
/// caller's. Map and UpdateEndpoints need a registered node (FailedPrecondition otherwise), and
/// a server that does not serve the node's tailnet answers with a redirect to the one that does
/// (<see cref="StatusMapping"/>). A node's live state (online, endpoints, run id) is written
/// (fenced) before it is published, so that a server taking the tailnet over has it; the writes
/// of a tailnet are batched (<see cref="LiveStateWriter"/>), so that a mass reconnect costs a few
/// store transactions rather than one per node.
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
        var (tailnet, nodeId) = await LocateAsync(request.NodeKey, context.CancellationToken).ConfigureAwait(false);
        // The node's live state is written and published with its batch, and the stream attached
        // right after, under the same write gate: its first message shows it online with these
        // endpoints, and whatever is published later reaches its session.
        var (bus, stream, kind) = await _hub.LiveStateFor(tailnet).AttachAsync(nodeId, request.NodeKey.ToByteArray(), endpoints, request.Instance,
            request.Session, request.LastSequence, request.LastRevision, context.CancellationToken).ConfigureAwait(false);
        _counters.StreamOpened();
        _hub.Recorder.OnAttached(tailnet, nodeId);
        CoordinationLog.MapStreamOpened(_logger, nodeId, kind.ToString());
        try
        {
            await PumpAsync(stream, responseStream, context.CancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _counters.StreamClosed();
            if (bus.Detach(stream, _time.GetUtcNow()))
            {
                await WriteOfflineAsync(bus, nodeId).ConfigureAwait(false);
            }
            CoordinationLog.MapStreamClosed(_logger, nodeId);
        }
    }

    public override async Task<UpdateEndpointsResponse> UpdateEndpoints(UpdateEndpointsRequest request, ServerCallContext context)
    {
        RequestValidator.NodeKey(request.NodeKey, "node_key");
        var endpoints = RequestValidator.Endpoints(request.Endpoints, "endpoints");
        var node = await FindNodeAsync(request.NodeKey, context.CancellationToken).ConfigureAwait(false);
        if (node.KeyExpiry <= _time.GetUtcNow())
        {
            throw Failures.NodeKeyExpired();
        }
        await _hub.LiveStateFor(node.Tailnet).ReportEndpointsAsync(node.Id, endpoints, context.CancellationToken).ConfigureAwait(false);
        return new UpdateEndpointsResponse();
    }

    /// <summary>
    /// The node's tailnet and id: from the tailnets loaded here when known (a takeover's mass
    /// reconnect then costs no store query per stream; the bus checks the key on attach), else the store.
    /// </summary>
    private async Task<(string Tailnet, ulong Id)> LocateAsync(ByteString nodeKey, CancellationToken cancellationToken)
    {
        if (_hub.Locator.TryFind(nodeKey.Span, out var tailnet, out var id))
        {
            return (tailnet, id);
        }
        var node = await FindNodeAsync(nodeKey, cancellationToken).ConfigureAwait(false);
        _hub.Locator.Remember(node);
        return (node.Tailnet, node.Id);
    }

    private async Task<StoredNode> FindNodeAsync(ByteString nodeKey, CancellationToken cancellationToken) =>
        await _store.GetNodeByKeyAsync(nodeKey.Memory, cancellationToken).ConfigureAwait(false)
            ?? throw Failures.NotRegistered("the node is not registered: call Register first");

    /// <summary>
    /// The node's last stream here ended: it goes offline with the next batch of live state
    /// (unless it has a stream again by then, or the bus was closed or replaced meanwhile).
    /// </summary>
    private async Task WriteOfflineAsync(TailnetBus bus, ulong nodeId)
    {
        try
        {
            if (bus.IsClosed || _hub.TryGetLoaded(bus.Tailnet) != bus)
            {
                return;
            }
            await _hub.LiveStateFor(bus.Tailnet).WriteOfflineAsync(bus, nodeId).ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            CoordinationLog.LastSeenFailed(_logger, nodeId, exception);
        }
    }

    /// <summary>
    /// Sends the stream's queue in order until the client leaves or the bus ends the stream; what
    /// was queued before the end is still sent (a handover's last messages precede its redirect),
    /// then the call ends with the bus's reason.
    /// </summary>
    private async Task PumpAsync(MapStream stream, IServerStreamWriter<MapResponse> writer, CancellationToken callToken)
    {
        // A write is not canceled by the termination itself (that would abort the HTTP/2 stream
        // and lose the status), but a client that stops reading gets only a grace period.
        using var writes = CancellationTokenSource.CreateLinkedTokenSource(callToken);
        using var grace = stream.Terminated.Register(static state => ((CancellationTokenSource)state!).CancelAfter(WriteGrace), writes);
        try
        {
            // Ending the stream completes its queue: the loop ends once the queue is drained.
            while (await stream.WaitToReadAsync(callToken).ConfigureAwait(false))
            {
                while (stream.TryRead(out var message))
                {
                    await writer.WriteAsync(message, writes.Token).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The client left, or stopped reading after the bus ended the stream (its reason follows).
        }
        if (stream.Failure is { } failure && !callToken.IsCancellationRequested)
        {
            CoordinationLog.MapStreamTerminated(_logger, stream.NodeId, failure.Message);
            throw failure;
        }
    }
}
