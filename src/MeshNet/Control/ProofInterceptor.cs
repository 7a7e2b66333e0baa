using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace MeshNet.Control;

/// <summary>
/// Adds the proof-of-key headers (<see cref="ControlSigner"/>) to every control call except
/// <c>GetServerInfo</c>, which is unauthenticated (it is how the node learns the server key).
/// </summary>
internal sealed class ProofInterceptor(Func<ControlSigner?> signer) : Interceptor
{
    public const string GetServerInfoMethod = "/meshnet.control.v1.Control/GetServerInfo";

    public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(TRequest request,
        ClientInterceptorContext<TRequest, TResponse> context, AsyncUnaryCallContinuation<TRequest, TResponse> continuation) =>
        continuation(request, Sign(request, context));

    public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(TRequest request,
        ClientInterceptorContext<TRequest, TResponse> context, AsyncServerStreamingCallContinuation<TRequest, TResponse> continuation) =>
        continuation(request, Sign(request, context));

    public override TResponse BlockingUnaryCall<TRequest, TResponse>(TRequest request,
        ClientInterceptorContext<TRequest, TResponse> context, BlockingUnaryCallContinuation<TRequest, TResponse> continuation) =>
        continuation(request, Sign(request, context));

    private ClientInterceptorContext<TRequest, TResponse> Sign<TRequest, TResponse>(TRequest request, ClientInterceptorContext<TRequest, TResponse> context)
        where TRequest : class
        where TResponse : class
    {
        string method = context.Method.FullName;
        if (method == GetServerInfoMethod)
        {
            return context;
        }
        var current = signer() ?? throw new InvalidOperationException($"No proof key for {method}: GetServerInfo must come first.");
        var headers = new Metadata();
        if (context.Options.Headers is { } existing)
        {
            foreach (var entry in existing)
            {
                headers.Add(entry);
            }
        }
        current.Sign(method, (IMessage)request, headers);
        return new ClientInterceptorContext<TRequest, TResponse>(context.Method, context.Host, context.Options.WithHeaders(headers));
    }
}
