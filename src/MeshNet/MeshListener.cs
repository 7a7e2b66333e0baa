using System.Collections.Concurrent;
using System.Net;
using System.Runtime.ExceptionServices;
using MeshNet.DataPlane;
using MeshNet.Diagnostics;
using MeshNet.Userspace.Stack;
using Microsoft.Extensions.Logging;

namespace MeshNet;

/// <summary>
/// Accepts TCP connections on one port of a node's tailnet addresses, both families
/// (<see cref="MeshNode.ListenAsync"/>). Every accepted connection carries the identity of the
/// node that opened it; a connection from an address that belongs to no node of the current
/// netmap (a peer removed a moment ago) is reset instead of being returned.
/// </summary>
/// <remarks>
/// Thread-safe; several <see cref="AcceptAsync"/> calls may wait at once. Disposing stops
/// listening: connections not yet accepted are reset, a pending <see cref="AcceptAsync"/> fails
/// with <see cref="ObjectDisposedException"/>, connections already accepted are not affected.
/// Disposing the node disposes its listeners.
/// </remarks>
public sealed class MeshListener : IAsyncDisposable
{
    private readonly MeshNode _node;
    private readonly NodeSockets _sockets;
    private readonly TcpListener[] _listeners;
    private readonly ILogger _logger;
    private readonly ConcurrentQueue<TcpConnection> _ready = new();
    private int _disposed;

    internal MeshListener(MeshNode node, NodeSockets sockets, TcpListener[] listeners, ILogger logger)
    {
        _node = node;
        _sockets = sockets;
        _listeners = listeners;
        _logger = logger;
        Port = listeners[0].LocalEndPoint.Port;
        LocalEndPoints = [.. listeners.Select(l => l.LocalEndPoint)];
    }

    /// <summary>The port listened on (the chosen one when 0 was asked for).</summary>
    public int Port { get; }

    /// <summary>What is listened on: the wildcard address of each family the node has, with <see cref="Port"/>.</summary>
    public IReadOnlyList<IPEndPoint> LocalEndPoints { get; }

    /// <summary>Waits for the next connection.</summary>
    /// <exception cref="ObjectDisposedException">The listener (or its node) is or gets disposed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public async ValueTask<MeshConnection> AcceptAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            var tcp = _listeners.Length == 1
                ? await _listeners[0].AcceptAsync(cancellationToken).ConfigureAwait(false)
                : await AcceptEitherAsync(cancellationToken).ConfigureAwait(false);
            var peer = _node.FindPeer(tcp.RemoteEndPoint.Address);
            if (peer is not null)
            {
                return new MeshConnection(tcp, peer);
            }
            MeshLog.ConnectionFromUnknownPeer(_logger, tcp.RemoteEndPoint);
            tcp.Abort();
            await tcp.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Accepts from whichever family's listener has a connection first. The other accept is
    /// cancelled, which loses nothing (a cancelled accept leaves its queue untouched); a
    /// connection it got in the same instant is kept for the next call.
    /// </summary>
    private async ValueTask<TcpConnection> AcceptEitherAsync(CancellationToken cancellationToken)
    {
        if (_ready.TryDequeue(out var waiting))
        {
            return waiting;
        }
        using var race = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var accepts = new Task<TcpConnection>[_listeners.Length];
        for (int i = 0; i < accepts.Length; i++)
        {
            accepts[i] = _listeners[i].AcceptAsync(race.Token).AsTask();
        }
        await Task.WhenAny(accepts).ConfigureAwait(false);
        race.Cancel();
        try
        {
            await Task.WhenAll(accepts).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Inspected below, task by task.
        }
        TcpConnection? result = null;
        Exception? error = null;
        foreach (var accept in accepts)
        {
            if (accept.IsCompletedSuccessfully)
            {
                if (result is null)
                {
                    result = accept.Result;
                }
                else
                {
                    _ready.Enqueue(accept.Result);
                }
            }
            else if (accept.Exception?.InnerException is { } e && e is not OperationCanceledException)
            {
                error ??= e;
            }
        }
        if (Volatile.Read(ref _disposed) != 0)
        {
            DrainReady();
        }
        if (result is not null)
        {
            return result;
        }
        cancellationToken.ThrowIfCancellationRequested();
        if (error is not null)
        {
            ExceptionDispatchInfo.Throw(error);
        }
        throw new ObjectDisposedException(nameof(MeshListener));
    }

    /// <summary>Stops listening (see the class remarks). Idempotent.</summary>
    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return ValueTask.CompletedTask;
        }
        foreach (var listener in _listeners)
        {
            listener.Dispose();
        }
        DrainReady();
        _sockets.OnListenerClosed(this);
        return ValueTask.CompletedTask;
    }

    private void DrainReady()
    {
        while (_ready.TryDequeue(out var tcp))
        {
            tcp.Abort();
            tcp.Dispose();
        }
    }

    /// <summary>The port.</summary>
    public override string ToString() => $"MeshListener(:{Port})";
}
