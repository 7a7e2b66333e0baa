using System.Text;
using MeshNet;

namespace QuickStart;

/// <summary>
/// A minimal HTTP/1.1 responder on a <see cref="MeshListener"/>: reads a request head, answers
/// every request with one HTML page and closes the connection. Enough for the sample (ASP.NET
/// Core on the tailnet comes with its own integration).
/// </summary>
internal sealed class TinyHttpServer : IAsyncDisposable
{
    private const int MaxHeadBytes = 16 * 1024;

    private readonly MeshListener _listener;
    private readonly Func<MeshConnection, string> _page;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;

    public TinyHttpServer(MeshListener listener, Func<MeshConnection, string> page)
    {
        _listener = listener;
        _page = page;
        _accepting = AcceptLoopAsync();
    }

    private async Task AcceptLoopAsync()
    {
        var handlers = new List<Task>();
        try
        {
            while (true)
            {
                var connection = await _listener.AcceptAsync(_stop.Token);
                handlers.Add(ServeAsync(connection));
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
        {
            // Stopping.
        }
        await Task.WhenAll(handlers);
    }

    private async Task ServeAsync(MeshConnection connection)
    {
        await using (connection)
        {
            try
            {
                var requestLine = await ReadHeadAsync(connection, _stop.Token);
                Console.WriteLine($"web: {requestLine} from {connection.Peer.Name}");
                var body = Encoding.UTF8.GetBytes(_page(connection));
                var head = Encoding.ASCII.GetBytes(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n" +
                    $"Content-Length: {body.Length}\r\nConnection: close\r\n\r\n");
                await connection.WriteAsync(head, _stop.Token);
                await connection.WriteAsync(body, _stop.Token);
                await connection.ShutdownWriteAsync(_stop.Token);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or InvalidDataException)
            {
                Console.WriteLine($"web: request from {connection.Peer.Name} failed: {e.Message}");
            }
        }
    }

    /// <summary>Reads up to the blank line that ends the request head; returns the request line.</summary>
    private static async Task<string> ReadHeadAsync(Stream stream, CancellationToken cancellationToken)
    {
        var head = new List<byte>();
        var buffer = new byte[1024];
        while (true)
        {
            int read = await stream.ReadAsync(buffer, cancellationToken);
            if (read == 0)
            {
                throw new InvalidDataException("the connection closed before the request head ended");
            }
            head.AddRange(buffer.AsSpan(0, read));
            var text = Encoding.ASCII.GetString(head.ToArray());
            int end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (end >= 0)
            {
                return text[..text.IndexOf("\r\n", StringComparison.Ordinal)];
            }
            if (head.Count > MaxHeadBytes)
            {
                throw new InvalidDataException("the request head is too large");
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _accepting;
        _stop.Dispose();
    }
}
