using System.Security.Cryptography;
using Grpc.Core;
using MeshNet.Control.V1;
using MeshNet.Coordination.Tests.Infrastructure;
using MeshNet.Protocol;

namespace MeshNet.Coordination.Tests.Security;

[Trait("Category", "Security")]
public sealed class NodeAuthenticationTests : IAsyncLifetime
{
    private CoordinationHarness _harness = null!;
    private NodeClient _node = null!;

    public async Task InitializeAsync()
    {
        _harness = await CoordinationHarness.StartAsync();
        var key = await _harness.TailnetWithKeyAsync("acme");
        (_node, _) = await _harness.JoinAsync(key, "alice");
    }

    public async Task DisposeAsync() => await _harness.DisposeAsync();

    private UpdateEndpointsRequest Request() => new() { NodeKey = _node.Node.PublicKeyBytes, Endpoints = { "192.0.2.1:41641" } };

    private Task Call(UpdateEndpointsRequest request, Metadata headers) =>
        _node.Client.UpdateEndpointsAsync(request, headers).ResponseAsync;

    [Fact]
    public async Task ASignedCallIsAccepted() => await Call(Request(), _node.Sign("UpdateEndpoints", Request()));

    [Fact]
    public async Task ACallWithoutProofIsRejected()
    {
        await Errors.ExpectAsync(() => Call(Request(), new Metadata()), StatusCode.Unauthenticated, ControlErrors.BadProof, "no proof");
        var headers = _node.Sign("UpdateEndpoints", Request());
        headers.Remove(headers.Get(ControlProof.ProofHeader)!);
        await Errors.ExpectAsync(() => Call(Request(), headers), StatusCode.Unauthenticated, ControlErrors.BadProof);
    }

    [Fact]
    public async Task AProofByAnotherKeyIsRejected()
    {
        using var stranger = TestNode.Create();
        var request = Request();
        // The stranger signs with its own key but claims to be alice.
        var headers = stranger.Sign(_harness.ServerKey, "UpdateEndpoints", request, _node.Now, headerKey: _node.Node.PublicKey);
        await Errors.ExpectAsync(() => Call(request, headers), StatusCode.Unauthenticated, ControlErrors.BadProof, "does not verify");
    }

    [Fact]
    public async Task ARequestForAnotherNodeKeyThanTheHeaderIsRejected()
    {
        using var stranger = TestNode.Create();
        var request = new UpdateEndpointsRequest { NodeKey = _node.Node.PublicKeyBytes };
        var headers = stranger.Sign(_harness.ServerKey, "UpdateEndpoints", request, _node.Now);
        await Errors.ExpectAsync(() => Call(request, headers), StatusCode.Unauthenticated, ControlErrors.BadProof, "does not match");
    }

    [Fact]
    public async Task AProofForAnotherMethodOrAnotherRequestIsRejected()
    {
        var request = Request();
        var forMap = _node.Node.Sign(_harness.ServerKey, "Map", request, _node.Now);
        await Errors.ExpectAsync(() => Call(request, forMap), StatusCode.Unauthenticated, ControlErrors.BadProof);

        var signed = _node.Sign("UpdateEndpoints", request);
        var altered = Request();
        altered.Endpoints.Add("203.0.113.66:1");
        await Errors.ExpectAsync(() => Call(altered, signed), StatusCode.Unauthenticated, ControlErrors.BadProof);
    }

    [Fact]
    public async Task StaleAndFutureTimestampsAreRejected()
    {
        var request = Request();
        long now = _node.Now;
        foreach (long skew in new[] { -121_000L, 121_000L })
        {
            var headers = _node.Node.Sign(_harness.ServerKey, "UpdateEndpoints", request, now + skew);
            await Errors.ExpectAsync(() => Call(request, headers), StatusCode.Unauthenticated, ControlErrors.StaleTimestamp, "server clock");
        }
        // Within the window is fine.
        await Call(request, _node.Node.Sign(_harness.ServerKey, "UpdateEndpoints", request, now - 100_000));
    }

    [Fact]
    public async Task AReplayedCallIsRejected()
    {
        var request = Request();
        var headers = _node.Sign("UpdateEndpoints", request);
        await Call(request, headers);
        await Errors.ExpectAsync(() => Call(request, headers), StatusCode.Unauthenticated, ControlErrors.Replayed, "replay");
        // The same nonce under a fresh timestamp is a replay too.
        var nonce = Convert.FromBase64String(headers.GetValue(ControlProof.NonceHeader)!);
        var again = _node.Node.Sign(_harness.ServerKey, "UpdateEndpoints", request, _node.Now + 1, nonce);
        await Errors.ExpectAsync(() => Call(request, again), StatusCode.Unauthenticated, ControlErrors.Replayed);
        _harness.Server.Counters.ReplaysRefused.Should().Be(2);
    }

    [Fact]
    public async Task MalformedProofHeadersAreRejected()
    {
        var request = Request();
        foreach (var (header, value) in new[]
        {
            (ControlProof.NodeKeyHeader, "not base64!"),
            (ControlProof.NodeKeyHeader, Convert.ToBase64String(new byte[31])),
            (ControlProof.TimestampHeader, "-5"),
            (ControlProof.TimestampHeader, "12e3"),
            (ControlProof.NonceHeader, Convert.ToBase64String(new byte[15])),
            (ControlProof.ProofHeader, Convert.ToBase64String(new byte[8000])),
        })
        {
            var headers = _node.Sign("UpdateEndpoints", request);
            headers.Remove(headers.Get(header)!);
            headers.Add(header, value);
            await Errors.ExpectAsync(() => Call(request, headers), StatusCode.Unauthenticated, ControlErrors.BadProof);
        }
    }

    [Fact]
    public async Task ALowOrderNodeKeyIsRejected()
    {
        var zero = new UpdateEndpointsRequest { NodeKey = Google.Protobuf.ByteString.CopyFrom(new byte[32]) };
        var headers = new Metadata
        {
            { ControlProof.NodeKeyHeader, Convert.ToBase64String(new byte[32]) },
            { ControlProof.TimestampHeader, _node.Now.ToString(System.Globalization.CultureInfo.InvariantCulture) },
            { ControlProof.NonceHeader, Convert.ToBase64String(RandomNumberGenerator.GetBytes(16)) },
            { ControlProof.ProofHeader, Convert.ToBase64String(new byte[32]) },
        };
        await Errors.ExpectAsync(() => Call(zero, headers), StatusCode.Unauthenticated, ControlErrors.BadProof, "X25519");
    }

    [Fact]
    public async Task MapAndRegisterAreAuthenticatedToo()
    {
        var map = new MapRequest { NodeKey = _node.Node.PublicKeyBytes };
        await Errors.ExpectAsync(async () =>
        {
            using var call = _node.Client.Map(map, new Metadata());
            await call.ResponseStream.MoveNext();
        }, StatusCode.Unauthenticated, ControlErrors.BadProof);
        var register = _node.RegisterRequest(null);
        await Errors.ExpectAsync(() => _node.Client.RegisterAsync(register, new Metadata()).ResponseAsync, StatusCode.Unauthenticated, ControlErrors.BadProof);
        _harness.Server.Counters.CallsRefused.Should().BeGreaterThanOrEqualTo(2);
    }
}
