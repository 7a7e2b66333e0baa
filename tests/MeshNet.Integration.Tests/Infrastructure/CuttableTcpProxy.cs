using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace MeshNet.Integration.Tests.Infrastructure;

/// <summary>
/// A TCP proxy on 127.0.0.1 in front of one target, which a test can cut: <see cref="Cut"/>
/// resets every proxied connection at once (both sides see a reset, as when a middlebox or a
/// network path dies) and, until <see cref="Restore"/>, resets new connections as soon as they
/// arrive. Forwards bytes only; knows nothing of HTTP/2 or gRPC.
/// </summary>
internal sealed class CuttableTcpProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<Socket, byte> _sockets = new();
    private readonly Task _accepting;
    private volatile bool _refusing;
    private int _accepted;

    public CuttableTcpProxy(IPEndPoint target)
    {
        _target = target;
        _listener.Start();
        _accepting = AcceptLoopAsync();
    }

    /// <summary>The proxy's address as a control URL (plain HTTP on loopback).</summary>
    public Uri Url => new($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}");

    /// <summary>Connections accepted so far (including refused ones).</summary>
    public int Accepted => Volatile.Read(ref _accepted);

    /// <summary>Connections being forwarded now.</summary>
    public int Open => _sockets.Count / 2;

    /// <summary>Resets every proxied connection; new ones are reset too until <see cref="Restore"/>.</summary>
    public void Cut()
    {
        _refusing = true;
        foreach (var socket in _sockets.Keys)
        {
            Reset(socket);
        }
    }

    /// <summary>Forwards new connections again.</summary>
    public void Restore() => _refusing = false;

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
            Interlocked.Increment(ref _accepted);
            if (_refusing)
            {
                Reset(client);
                continue;
            }
            _ = ForwardAsync(client);
        }
    }

    private async Task ForwardAsync(Socket client)
    {
        var upstream = new Socket(SocketType.Stream, ProtocolType.Tcp);
        _sockets[client] = 0;
        _sockets[upstream] = 0;
        try
        {
            await upstream.ConnectAsync(_target, _stop.Token);
            await Task.WhenAny(PumpAsync(client, upstream), PumpAsync(upstream, client));
        }
        catch (Exception) when (_stop.IsCancellationRequested || !_sockets.ContainsKey(client))
        {
        }
        catch (SocketException)
        {
        }
        finally
        {
            Reset(client);
            Reset(upstream);
        }
    }

    private async Task PumpAsync(Socket from, Socket to)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            while (true)
            {
                int read = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                if (read == 0)
                {
                    to.Shutdown(SocketShutdown.Send);
                    return;
                }
                await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, _stop.Token);
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
        {
        }
    }

    /// <summary>Closes with a reset (linger 0), as a dead path would look to both ends.</summary>
    private void Reset(Socket socket)
    {
        _sockets.TryRemove(socket, out _);
        try
        {
            socket.LingerState = new LingerOption(true, 0);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
        socket.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        foreach (var socket in _sockets.Keys)
        {
            Reset(socket);
        }
        await _accepting;
        _stop.Dispose();
    }
}
