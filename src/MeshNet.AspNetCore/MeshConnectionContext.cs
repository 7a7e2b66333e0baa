using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;

namespace MeshNet.AspNetCore;

/// <summary>
/// One accepted <see cref="MeshConnection"/> as Kestrel sees it: a thin adapter, shaped like
/// Kestrel's own socket connection, whose <see cref="Transport"/> is the connection's own pipe
/// pair (no copy: Kestrel parses straight out of the TCP receive buffer and writes into the send
/// buffer).
/// </summary>
/// <remarks>
/// <para><b>Features</b>: the connection id, transport, items, lifetime and endpoint features,
/// and <see cref="IMeshPeerFeature"/> with the caller's identity.</para>
/// <para><b>ConnectionClosed</b> fires (once, on the thread pool) when the connection ends: a read
/// of <see cref="Transport"/>'s input sees the peer's FIN or a reset, or the connection is
/// aborted or disposed. Kestrel's socket transport reads ahead into a pipe of its own and so
/// also notices a FIN while nothing reads; here, where Kestrel reads the connection's buffer
/// directly, a FIN is noticed at Kestrel's next read (HTTP/2 always has one pending).</para>
/// <para><b>Errors</b>: a reset surfaces from the input as <see cref="ConnectionResetException"/>
/// and a read after <see cref="Abort"/> as <see cref="ConnectionAbortedException"/>, the
/// exceptions Kestrel expects from a transport.</para>
/// <para><b>Thread safety and ownership</b>: Kestrel owns the context; one reader and one writer
/// use the transport at a time, while <see cref="Abort"/> and <see cref="DisposeAsync"/> may be
/// called from any thread. <see cref="DisposeAsync"/> completes both pipes and closes the
/// connection (FIN after the buffered data when every received byte was read, a reset
/// otherwise); idempotent.</para>
/// </remarks>
internal sealed class MeshConnectionContext : ConnectionContext,
    IConnectionIdFeature, IConnectionTransportFeature, IConnectionItemsFeature, IConnectionLifetimeFeature,
    IConnectionEndPointFeature, IMeshPeerFeature
{
    private readonly MeshConnection _connection;
    private readonly IDuplexPipe _originalTransport;
    private readonly CancellationTokenSource _closed = new();
    private readonly FeatureCollection _features = new();
    private IDictionary<object, object?>? _items;
    private int _closedFired;
    private int _disposed;

    public MeshConnectionContext(MeshConnection connection, string connectionId)
    {
        _connection = connection;
        ConnectionId = connectionId;
        Peer = connection.Peer;
        LocalEndPoint = connection.LocalEndPoint;
        RemoteEndPoint = connection.RemoteEndPoint;
        ConnectionClosed = _closed.Token;
        _originalTransport = new MeshTransport(new MeshTransportInput(connection.Input, this), connection.Output);
        Transport = _originalTransport;
        _features.Set<IConnectionIdFeature>(this);
        _features.Set<IConnectionTransportFeature>(this);
        _features.Set<IConnectionItemsFeature>(this);
        _features.Set<IConnectionLifetimeFeature>(this);
        _features.Set<IConnectionEndPointFeature>(this);
        _features.Set<IMeshPeerFeature>(this);
    }

    /// <inheritdoc/>
    public MeshPeerIdentity Peer { get; }

    /// <inheritdoc/>
    public override string ConnectionId { get; set; }

    /// <inheritdoc/>
    public override IFeatureCollection Features => _features;

    /// <inheritdoc/>
    public override IDictionary<object, object?> Items
    {
        get => _items ??= new ConnectionItems();
        set => _items = value;
    }

    /// <inheritdoc/>
    public override IDuplexPipe Transport { get; set; }

    /// <inheritdoc/>
    public override EndPoint? LocalEndPoint { get; set; }

    /// <inheritdoc/>
    public override EndPoint? RemoteEndPoint { get; set; }

    /// <inheritdoc/>
    public override CancellationToken ConnectionClosed { get; set; }

    /// <summary>Resets the connection (RST), discarding unsent and unread data; fires <see cref="ConnectionClosed"/>.</summary>
    public override void Abort(ConnectionAbortedException abortReason)
    {
        _connection.Abort();
        FireConnectionClosed();
    }

    /// <summary>Completes both pipes and closes the connection (see the class remarks). Idempotent.</summary>
    public override async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        // The connection's own pipes, even if connection middleware (TLS) replaced Transport.
        _originalTransport.Input.Complete();
        _originalTransport.Output.Complete();
        await _connection.DisposeAsync().ConfigureAwait(false);
        if (Interlocked.Exchange(ref _closedFired, 1) == 0)
        {
            _closed.Cancel();
        }
        // The token source is not disposed: a callback queued by FireConnectionClosed may still run.
    }

    /// <summary>The input saw the end of the connection (FIN, reset or abort).</summary>
    internal void FireConnectionClosed()
    {
        if (Interlocked.Exchange(ref _closedFired, 1) != 0)
        {
            return;
        }
        // As Kestrel's own transports do: never run the application's callbacks on the reading thread.
        ThreadPool.UnsafeQueueUserWorkItem(static closed => closed.Cancel(), _closed, preferLocal: false);
    }

    /// <summary>The connection's endpoints and peer.</summary>
    public override string ToString() => $"{ConnectionId} {_connection}";

    private sealed class MeshTransport(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
