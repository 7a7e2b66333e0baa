using System.Net.Http;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;
using MeshNet.Control.V1;
using Microsoft.Extensions.Logging;

namespace MeshNet.Control;

/// <summary>
/// The node's gRPC connection to the coordination service: one HTTP/2 channel (TLS, or plain
/// HTTP/2 to loopback only), every call signed by <see cref="ProofInterceptor"/> with the
/// current <see cref="Signer"/>. Calls throw what gRPC throws; callers classify with
/// <see cref="ControlFailure.Classify"/>.
/// </summary>
/// <remarks>Thread-safe. Disposing closes the channel and its connections.</remarks>
internal sealed class ControlClient : IDisposable
{
    /// <summary>The largest message accepted from the service (a full netmap of a large tailnet).</summary>
    public const int MaxReceiveMessageSize = 64 << 20;

    private readonly GrpcChannel _channel;
    private readonly V1.Control.ControlClient _client;
    private volatile ControlSigner? _signer;

    public ControlClient(Uri url, Action<SocketsHttpHandler>? configureHandler, ILoggerFactory? loggerFactory)
    {
        Url = url;
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = TimeSpan.FromSeconds(15),
            EnableMultipleHttp2Connections = true,
            // HTTP/2 pings notice a dead connection (a silent middlebox, a vanished server) well
            // before the keep-alive watchdog does.
            KeepAlivePingDelay = TimeSpan.FromSeconds(30),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(20),
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
        };
        try
        {
            configureHandler?.Invoke(handler);
            _channel = GrpcChannel.ForAddress(url, new GrpcChannelOptions
            {
                HttpHandler = handler,
                DisposeHttpClient = true,
                LoggerFactory = loggerFactory,
                MaxReceiveMessageSize = MaxReceiveMessageSize,
            });
        }
        catch
        {
            handler.Dispose();
            throw;
        }
        _client = new V1.Control.ControlClient(_channel.Intercept(new ProofInterceptor(() => _signer)));
    }

    /// <summary>The service's address.</summary>
    public Uri Url { get; }

    /// <summary>The signer for the node key in use; set after <see cref="GetServerInfoAsync"/>. The client does not own it.</summary>
    public ControlSigner? Signer
    {
        get => _signer;
        set => _signer = value;
    }

    public async Task<ServerInfo> GetServerInfoAsync(CancellationToken cancellationToken) =>
        await _client.GetServerInfoAsync(new GetServerInfoRequest(), cancellationToken: cancellationToken).ConfigureAwait(false);

    public async Task<RegisterResponse> RegisterAsync(RegisterRequest request, CancellationToken cancellationToken) =>
        await _client.RegisterAsync(request, cancellationToken: cancellationToken).ConfigureAwait(false);

    public AsyncServerStreamingCall<MapResponse> OpenMap(MapRequest request, CancellationToken cancellationToken) =>
        _client.Map(request, cancellationToken: cancellationToken);

    public async Task UpdateEndpointsAsync(UpdateEndpointsRequest request, CancellationToken cancellationToken) =>
        await _client.UpdateEndpointsAsync(request, cancellationToken: cancellationToken).ConfigureAwait(false);

    /// <summary>Closes the channel. Idempotent.</summary>
    public void Dispose() => _channel.Dispose();
}
