using System.Collections.Concurrent;
using Grpc.Core;
using Grpc.Net.Client;
using MeshNet.Protocol;

namespace MeshNet.Coordination.Services;

/// <summary>
/// HTTP/2 channels to the other servers of the deployment (one per URL, kept for the service's
/// lifetime), and the headers of a server-to-server call: the shared admin token and, when given,
/// an idempotency key. Thread-safe. Disposing closes every channel.
/// </summary>
internal sealed class PeerChannels : IDisposable
{
    private readonly ConcurrentDictionary<string, GrpcChannel> _channels = new(StringComparer.Ordinal);
    private readonly string _adminToken;
    private readonly Func<HttpMessageHandler>? _handlerFactory;

    public PeerChannels(CoordinationOptions options)
    {
        _adminToken = options.AdminToken!;
        _handlerFactory = options.PeerHandlerFactory;
    }

    public GrpcChannel Channel(string url) => _channels.GetOrAdd(url, address => GrpcChannel.ForAddress(address, new GrpcChannelOptions
    {
        HttpHandler = _handlerFactory?.Invoke() ?? new SocketsHttpHandler { EnableMultipleHttp2Connections = true, ConnectTimeout = TimeSpan.FromSeconds(5) },
        DisposeHttpClient = true,
    }));

    /// <summary>Call options with the admin token (and the idempotency key, when given).</summary>
    public CallOptions Options(string? idempotencyKey, DateTime? deadline, CancellationToken cancellationToken)
    {
        var headers = new Metadata { { "authorization", $"Bearer {_adminToken}" } };
        if (idempotencyKey is not null)
        {
            headers.Add(ControlErrors.IdempotencyKeyHeader, idempotencyKey);
        }
        return new CallOptions(headers, deadline, cancellationToken);
    }

    public void Dispose()
    {
        foreach (var channel in _channels.Values)
        {
            channel.Dispose();
        }
        _channels.Clear();
    }
}
