using System.Security.Cryptography;
using MeshNet.Protocol;
using MeshNet.Userspace.Crypto;

namespace MeshNet.Protocol.Tests;

[Trait("Category", "Unit")]
public sealed class ControlProofTests
{
    private static byte[] NodeProofKey(WireGuardPrivateKey node, ControlServerKey server)
    {
        var shared = new byte[32];
        node.TryAgree(server.PublicKey, shared).Should().BeTrue();
        var proofKey = new byte[32];
        ControlProof.DeriveProofKey(shared, proofKey);
        return proofKey;
    }

    [Fact]
    public void NodeAndServerDeriveTheSameProofKeyAndOnlyTheyCanProve()
    {
        using var server = ControlServerKey.Generate();
        using var node = WireGuardPrivateKey.Generate();
        using var stranger = WireGuardPrivateKey.Generate();
        var nodeSide = NodeProofKey(node, server);
        var serverSide = new byte[32];
        server.TryDeriveProofKey(node.PublicKey.AsSpan(), serverSide).Should().BeTrue();
        nodeSide.Should().Equal(serverSide);

        var nonce = RandomNumberGenerator.GetBytes(ControlProof.NonceSize);
        byte[] request = [1, 2, 3, 4];
        var proof = new byte[32];
        ControlProof.Compute(nodeSide, "/meshnet.control.v1.Control/Register", 1_700_000_000_000, nonce, request, proof);
        ControlProof.Verify(serverSide, "/meshnet.control.v1.Control/Register", 1_700_000_000_000, nonce, request, proof).Should().BeTrue();

        // Any change to what is covered breaks it.
        ControlProof.Verify(serverSide, "/meshnet.control.v1.Control/Map", 1_700_000_000_000, nonce, request, proof).Should().BeFalse();
        ControlProof.Verify(serverSide, "/meshnet.control.v1.Control/Register", 1_700_000_000_001, nonce, request, proof).Should().BeFalse();
        ControlProof.Verify(serverSide, "/meshnet.control.v1.Control/Register", 1_700_000_000_000, RandomNumberGenerator.GetBytes(16), request, proof).Should().BeFalse();
        ControlProof.Verify(serverSide, "/meshnet.control.v1.Control/Register", 1_700_000_000_000, nonce, [1, 2, 3, 5], proof).Should().BeFalse();

        // Another key holder derives a different key.
        var strangerKey = NodeProofKey(stranger, server);
        strangerKey.Should().NotEqual(nodeSide);
        ControlProof.Verify(strangerKey, "/meshnet.control.v1.Control/Register", 1_700_000_000_000, nonce, request, proof).Should().BeFalse();
    }

    [Fact]
    public void RotationProofBindsTheNewKeyToTheOldKeysHolder()
    {
        using var server = ControlServerKey.Generate();
        using var oldKey = WireGuardPrivateKey.Generate();
        using var newKey = WireGuardPrivateKey.Generate();
        var oldProofKey = NodeProofKey(oldKey, server);
        var proof = new byte[32];
        ControlProof.ComputeRotationProof(oldProofKey, newKey.PublicKey.AsSpan(), proof);

        var serverOld = new byte[32];
        server.TryDeriveProofKey(oldKey.PublicKey.AsSpan(), serverOld).Should().BeTrue();
        ControlProof.VerifyRotationProof(serverOld, newKey.PublicKey.AsSpan(), proof).Should().BeTrue();
        ControlProof.VerifyRotationProof(serverOld, oldKey.PublicKey.AsSpan(), proof).Should().BeFalse();
    }

    [Fact]
    public void ServerKeyRoundTripsAndRejectsLowOrderNodeKeys()
    {
        using var server = ControlServerKey.Generate();
        var secret = new byte[32];
        server.ExportSecret(secret);
        using var again = ControlServerKey.FromBytes(secret);
        again.PublicKey.Should().Equal(server.PublicKey);
        server.ToString().Should().NotContain(Convert.ToBase64String(secret));
        server.TryDeriveProofKey(new byte[32], new byte[32]).Should().BeFalse("an all-zero key is a low-order point");
    }
}
