using System.Globalization;
using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;
using MeshNet.Control.V1;
using MeshNet.Coordination.Hosting;
using MeshNet.Coordination.Validation;
using MeshNet.Protocol;
using Microsoft.Extensions.Logging;

namespace MeshNet.Coordination.Auth;

/// <summary>
/// Authenticates every Control call except GetServerInfo as coming from the holder of the node
/// key it names (<see cref="ControlProof"/>): the request's <c>node_key</c> must equal the
/// <c>meshnet-node-key</c> header; the timestamp must be within the clock-skew window; the
/// proof, keyed from X25519(node key, server key), must verify over the method, timestamp,
/// nonce and the serialized request; the nonce must be new. Every call, GetServerInfo
/// included, must also pass the <see cref="TransportRule"/>. Failures end the call with
/// Unauthenticated (a key of the wrong size: InvalidArgument) and a reason trailer.
/// </summary>
internal sealed class NodeProofInterceptor : Interceptor
{
    public const string GetServerInfoMethod = "/meshnet.control.v1.Control/GetServerInfo";

    private readonly CoordinationRuntime _runtime;
    private readonly TimeProvider _time;
    private readonly NonceCache _nonces;
    private readonly ProofKeyCache _proofKeys;
    private readonly CoordinationCounters _counters;
    private readonly ILogger _logger;
    private readonly long _skewMs;
    private readonly int _nonceCapacity;

    public NodeProofInterceptor(CoordinationRuntime runtime, CoordinationOptions options, TimeProvider time, NonceCache nonces,
        ProofKeyCache proofKeys, CoordinationCounters counters, ILogger<NodeProofInterceptor> logger)
    {
        _runtime = runtime;
        _time = time;
        _nonces = nonces;
        _proofKeys = proofKeys;
        _counters = counters;
        _logger = logger;
        _skewMs = (long)options.MaxClockSkew.TotalMilliseconds;
        _nonceCapacity = options.NonceCacheCapacity;
    }

    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context,
        UnaryServerMethod<TRequest, TResponse> continuation)
    {
        await AuthenticateAsync(request, context).ConfigureAwait(false);
        return await continuation(request, context).ConfigureAwait(false);
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream,
        ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        await AuthenticateAsync(request, context).ConfigureAwait(false);
        await continuation(request, responseStream, context).ConfigureAwait(false);
    }

    private async Task AuthenticateAsync(object request, ServerCallContext context)
    {
        if (!TransportRule.IsPermitted(context.GetHttpContext()))
        {
            throw Refuse(context, "plain HTTP/2 from a non-loopback address", AuthFailures.TlsRequired());
        }
        if (context.Method == GetServerInfoMethod)
        {
            return;
        }
        await _runtime.EnsureStartedAsync(context.CancellationToken).ConfigureAwait(false);
        Verify((IMessage)request, context);
    }

    private void Verify(IMessage request, ServerCallContext context)
    {
        ByteString? requestKey = request switch
        {
            RegisterRequest register => register.NodeKey,
            MapRequest map => map.NodeKey,
            UpdateEndpointsRequest update => update.NodeKey,
            _ => null,
        };
        if (requestKey is null)
        {
            throw Refuse(context, "unknown method", AuthFailures.Unauthenticated(ControlErrors.BadProof, "this method does not accept node calls"));
        }
        if (requestKey.Length != RequestValidator.KeySize)
        {
            throw Refuse(context, "node_key size", AuthFailures.Invalid($"node_key must be {RequestValidator.KeySize} bytes, not {requestKey.Length}"));
        }

        var headers = context.RequestHeaders;
        Span<byte> headerKey = stackalloc byte[32];
        Span<byte> nonce = stackalloc byte[ControlProof.NonceSize];
        Span<byte> proof = stackalloc byte[ControlProof.ProofSize];
        Span<byte> proofKey = stackalloc byte[ControlProof.ProofSize];
        try
        {
            var keyText = headers.GetValue(ControlProof.NodeKeyHeader);
            var timeText = headers.GetValue(ControlProof.TimestampHeader);
            var nonceText = headers.GetValue(ControlProof.NonceHeader);
            var proofText = headers.GetValue(ControlProof.ProofHeader);
            if (keyText is null || timeText is null || nonceText is null || proofText is null)
            {
                throw BadProof(context, "missing proof headers", "the call carries no proof of key (meshnet-node-key, meshnet-timestamp, meshnet-nonce and meshnet-proof are required)");
            }
            if (!DecodeExact(keyText, headerKey))
            {
                throw BadProof(context, "malformed node key header", "meshnet-node-key must be the base64 of 32 bytes");
            }
            if (!requestKey.Span.SequenceEqual(headerKey))
            {
                throw BadProof(context, "node key mismatch", "the request's node_key does not match the meshnet-node-key header");
            }
            if (!long.TryParse(timeText, NumberStyles.None, CultureInfo.InvariantCulture, out long timestamp))
            {
                throw BadProof(context, "malformed timestamp", "meshnet-timestamp must be unix milliseconds in decimal");
            }
            long now = _time.GetUtcNow().ToUnixTimeMilliseconds();
            if (Math.Abs(now - timestamp) > _skewMs)
            {
                throw Refuse(context, "stale timestamp", AuthFailures.Unauthenticated(ControlErrors.StaleTimestamp,
                    $"the call's timestamp is {Math.Abs(now - timestamp) / 1000} s from the server clock; at most {_skewMs / 1000} s is accepted"));
            }
            if (!DecodeExact(nonceText, nonce))
            {
                throw BadProof(context, "malformed nonce", $"meshnet-nonce must be the base64 of {ControlProof.NonceSize} bytes");
            }
            if (!DecodeExact(proofText, proof))
            {
                throw BadProof(context, "malformed proof", $"meshnet-proof must be the base64 of {ControlProof.ProofSize} bytes");
            }
            if (!_proofKeys.TryGet(headerKey, proofKey))
            {
                if (!_runtime.ServerKey.TryDeriveProofKey(headerKey, proofKey))
                {
                    throw BadProof(context, "invalid node key", "meshnet-node-key is not a usable X25519 public key");
                }
                _proofKeys.Add(headerKey, proofKey);
            }
            if (!ControlProof.Verify(proofKey, context.Method, timestamp, nonce, request.ToByteArray(), proof))
            {
                throw BadProof(context, "proof does not verify", "the proof of key does not verify for this node key, method and request");
            }
            switch (_nonces.TryRecord(nonce, timestamp + _skewMs, now))
            {
                case NonceCheck.Replayed:
                    _counters.ReplayRefused();
                    throw Refuse(context, "replayed nonce", AuthFailures.Unauthenticated(ControlErrors.Replayed, "the call's nonce was seen before: a replay"));
                case NonceCheck.Full:
                    CoordinationLog.NonceCacheFull(_logger, _nonceCapacity);
                    throw Refuse(context, "nonce cache full", new RpcException(new Status(StatusCode.ResourceExhausted, "too many calls; retry later")));
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(proofKey);
        }
    }

    private static bool DecodeExact(string text, Span<byte> destination)
    {
        // Base64 of n bytes is at most 4*ceil(n/3) characters: longer input is refused before decoding.
        if (text.Length > (destination.Length + 2) / 3 * 4 + 4)
        {
            return false;
        }
        Span<byte> buffer = stackalloc byte[destination.Length + 3];
        return Convert.TryFromBase64String(text, buffer, out int written) && written == destination.Length &&
            buffer[..written].TryCopyTo(destination);
    }

    private RpcException BadProof(ServerCallContext context, string logReason, string message) =>
        Refuse(context, logReason, AuthFailures.Unauthenticated(ControlErrors.BadProof, message));

    private RpcException Refuse(ServerCallContext context, string logReason, RpcException exception)
    {
        _counters.CallRefused();
        CoordinationLog.NodeCallRefused(_logger, context.Method, context.Peer, logReason);
        return exception;
    }
}
