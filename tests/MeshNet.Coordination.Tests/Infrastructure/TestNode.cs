using System.Globalization;
using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Core;
using MeshNet.Protocol;
using MeshNet.Userspace.Crypto;

namespace MeshNet.Coordination.Tests.Infrastructure;

/// <summary>A node's key pair and the proofs it signs its calls with (tests only).</summary>
internal sealed class TestNode : IDisposable
{
    private TestNode(WireGuardPrivateKey key)
    {
        Key = key;
        PublicKey = key.PublicKey.AsSpan().ToArray();
    }

    public WireGuardPrivateKey Key { get; }

    public byte[] PublicKey { get; }

    public ByteString PublicKeyBytes => ByteString.CopyFrom(PublicKey);

    public static TestNode Create() => new(WireGuardPrivateKey.Generate());

    public static string MethodName(string method) => $"/meshnet.control.v1.Control/{method}";

    public byte[] ProofKey(byte[] serverPublicKey)
    {
        var shared = new byte[32];
        Key.TryAgree(serverPublicKey, shared).Should().BeTrue();
        var proofKey = new byte[32];
        ControlProof.DeriveProofKey(shared, proofKey);
        return proofKey;
    }

    /// <summary>The proof headers of one call.</summary>
    public Metadata Sign(byte[] serverPublicKey, string method, IMessage request, long unixMilliseconds, byte[]? nonce = null, byte[]? headerKey = null)
    {
        nonce ??= RandomNumberGenerator.GetBytes(ControlProof.NonceSize);
        var proof = new byte[ControlProof.ProofSize];
        ControlProof.Compute(ProofKey(serverPublicKey), MethodName(method), unixMilliseconds, nonce, request.ToByteArray(), proof);
        return new Metadata
        {
            { ControlProof.NodeKeyHeader, Convert.ToBase64String(headerKey ?? PublicKey) },
            { ControlProof.TimestampHeader, unixMilliseconds.ToString(CultureInfo.InvariantCulture) },
            { ControlProof.NonceHeader, Convert.ToBase64String(nonce) },
            { ControlProof.ProofHeader, Convert.ToBase64String(proof) },
        };
    }

    /// <summary>The rotation proof that <paramref name="newNode"/>'s key replaces this one.</summary>
    public ByteString RotationProof(byte[] serverPublicKey, TestNode newNode)
    {
        var proof = new byte[32];
        ControlProof.ComputeRotationProof(ProofKey(serverPublicKey), newNode.PublicKey, proof);
        return ByteString.CopyFrom(proof);
    }

    public void Dispose() => Key.Dispose();
}
