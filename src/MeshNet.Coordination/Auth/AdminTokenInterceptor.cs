using System.Security.Cryptography;
using System.Text;
using Grpc.Core;
using Grpc.Core.Interceptors;
using MeshNet.Coordination.Hosting;
using MeshNet.Coordination.Validation;
using Microsoft.Extensions.Logging;

namespace MeshNet.Coordination.Auth;

/// <summary>
/// Authenticates Admin calls: <c>authorization: Bearer &lt;admin token&gt;</c>, compared in
/// constant time (as SHA-256 digests, so not even the length leaks); Unauthenticated otherwise.
/// The <see cref="TransportRule"/> applies first.
/// </summary>
internal sealed class AdminTokenInterceptor : Interceptor
{
    private const string BearerPrefix = "Bearer ";

    private readonly byte[] _tokenDigest;
    private readonly CoordinationRuntime _runtime;
    private readonly CoordinationCounters _counters;
    private readonly ILogger _logger;

    public AdminTokenInterceptor(CoordinationOptions options, CoordinationRuntime runtime, CoordinationCounters counters, ILogger<AdminTokenInterceptor> logger)
    {
        _runtime = runtime;
        _tokenDigest = SHA256.HashData(Encoding.UTF8.GetBytes(options.AdminToken!));
        _counters = counters;
        _logger = logger;
    }

    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context,
        UnaryServerMethod<TRequest, TResponse> continuation)
    {
        Authenticate(context);
        await _runtime.EnsureStartedAsync(context.CancellationToken).ConfigureAwait(false);
        return await continuation(request, context).ConfigureAwait(false);
    }

    private void Authenticate(ServerCallContext context)
    {
        if (!TransportRule.IsPermitted(context.GetHttpContext()))
        {
            throw Refuse(context, "plain HTTP/2 from a non-loopback address", AuthFailures.TlsRequired());
        }
        var header = context.RequestHeaders.GetValue("authorization");
        if (header is null || !header.StartsWith(BearerPrefix, StringComparison.OrdinalIgnoreCase))
        {
            throw Refuse(context, "no bearer token", new RpcException(new Status(StatusCode.Unauthenticated, "the admin API needs 'authorization: Bearer <admin token>'")));
        }
        var presented = SHA256.HashData(Encoding.UTF8.GetBytes(header[BearerPrefix.Length..].Trim()));
        if (!CryptographicOperations.FixedTimeEquals(presented, _tokenDigest))
        {
            throw Refuse(context, "wrong token", new RpcException(new Status(StatusCode.Unauthenticated, "the admin token is wrong")));
        }
    }

    private RpcException Refuse(ServerCallContext context, string reason, RpcException exception)
    {
        _counters.CallRefused();
        CoordinationLog.AdminCallRefused(_logger, context.Method, context.Peer, reason);
        return exception;
    }
}
