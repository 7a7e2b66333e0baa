using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;
using MeshNet.Control;
using MeshNet.Control.V1;
using MeshNet.Protocol;
using MeshNet.Userspace.Crypto;
using Microsoft.Extensions.Time.Testing;

namespace MeshNet.Tests.Control;

/// <summary>The interceptor's headers are exactly what the service verifies (<see cref="ControlServerKey"/>, <see cref="ControlProof"/>).</summary>
[Trait("Category", "Unit")]
public sealed class ProofInterceptorTests : IDisposable
{
    private static readonly Marshaller<RegisterRequest> RequestMarshaller = Marshallers.Create(m => m.ToByteArray(), RegisterRequest.Parser.ParseFrom);
    private static readonly Marshaller<RegisterResponse> ResponseMarshaller = Marshallers.Create(m => m.ToByteArray(), RegisterResponse.Parser.ParseFrom);

    private readonly ControlServerKey _server = ControlServerKey.Generate();
    private readonly WireGuardPrivateKey _node = WireGuardPrivateKey.Generate();
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2025, 1, 2, 3, 4, 5, TimeSpan.Zero));
    private readonly ControlSigner _signer;

    public ProofInterceptorTests()
    {
        _signer = ControlSigner.Create(_node, _server.PublicKey, _time)!;
    }

    public void Dispose()
    {
        _signer.Dispose();
        _node.Dispose();
        _server.Dispose();
    }

    private static Method<RegisterRequest, RegisterResponse> Method(string name) =>
        new(MethodType.Unary, "meshnet.control.v1.Control", name, RequestMarshaller, ResponseMarshaller);

    private static Metadata? Intercept(Interceptor interceptor, Method<RegisterRequest, RegisterResponse> method, RegisterRequest request)
    {
        Metadata? sent = null;
        var context = new ClientInterceptorContext<RegisterRequest, RegisterResponse>(method, null, new CallOptions());
        using var call = interceptor.AsyncUnaryCall(request, context, (req, ctx) =>
        {
            sent = ctx.Options.Headers;
            return new AsyncUnaryCall<RegisterResponse>(Task.FromResult(new RegisterResponse()), Task.FromResult(new Metadata()),
                () => Status.DefaultSuccess, () => [], () => { });
        });
        return sent;
    }

    [Fact]
    public void EveryCallCarriesAProofTheServerAccepts()
    {
        var interceptor = new ProofInterceptor(() => _signer);
        var request = new RegisterRequest { NodeKey = ByteString.CopyFrom(_node.PublicKey.AsSpan()), Hostname = "web", AuthKey = "mnkey-x" };
        var headers = Intercept(interceptor, Method("Register"), request)!;

        headers.GetValue(ControlProof.NodeKeyHeader).Should().Be(_node.PublicKey.ToBase64());
        long timestamp = long.Parse(headers.GetValue(ControlProof.TimestampHeader)!, System.Globalization.CultureInfo.InvariantCulture);
        timestamp.Should().Be(_time.GetUtcNow().ToUnixTimeMilliseconds(), "the timestamp comes from the node's TimeProvider");
        var nonce = Convert.FromBase64String(headers.GetValue(ControlProof.NonceHeader)!);
        nonce.Should().HaveCount(ControlProof.NonceSize);
        var proof = Convert.FromBase64String(headers.GetValue(ControlProof.ProofHeader)!);

        var serverProofKey = new byte[32];
        _server.TryDeriveProofKey(_node.PublicKey.AsSpan(), serverProofKey).Should().BeTrue();
        ControlProof.Verify(serverProofKey, "/meshnet.control.v1.Control/Register", timestamp, nonce, request.ToByteArray(), proof).Should().BeTrue();
        ControlProof.Verify(serverProofKey, "/meshnet.control.v1.Control/Map", timestamp, nonce, request.ToByteArray(), proof).Should().BeFalse();
    }

    [Fact]
    public void NoncesAreNeverReused()
    {
        var interceptor = new ProofInterceptor(() => _signer);
        var nonces = Enumerable.Range(0, 100)
            .Select(_ => Intercept(interceptor, Method("Register"), new RegisterRequest())!.GetValue(ControlProof.NonceHeader))
            .ToList();
        nonces.Should().OnlyHaveUniqueItems();
    }

    [Fact]
    public void GetServerInfoIsNotSignedAndOtherCallsNeedASigner()
    {
        var interceptor = new ProofInterceptor(() => null);
        Intercept(interceptor, Method("GetServerInfo"), new RegisterRequest()).Should().BeNull();
        var act = () => Intercept(interceptor, Method("Register"), new RegisterRequest());
        act.Should().Throw<InvalidOperationException>().WithMessage("*GetServerInfo*");
    }

    [Fact]
    public void RotationProofIsMadeWithTheOldKey()
    {
        using var newKey = WireGuardPrivateKey.Generate();
        var proof = _signer.CreateRotationProof(newKey.PublicKey);
        var serverOld = new byte[32];
        _server.TryDeriveProofKey(_node.PublicKey.AsSpan(), serverOld);
        ControlProof.VerifyRotationProof(serverOld, newKey.PublicKey.AsSpan(), proof).Should().BeTrue();
    }

    [Fact]
    public void AnInvalidServerKeyGivesNoSigner()
    {
        ControlSigner.Create(_node, new byte[32], _time).Should().BeNull("an all-zero key is a low-order point");
        ControlSigner.Create(_node, new byte[5], _time).Should().BeNull();
    }
}
