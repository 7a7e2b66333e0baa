using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Core;
using MeshNet.Protocol;
using MeshNet.Userspace.Crypto;

namespace MeshNet.Control;

/// <summary>
/// Signs control calls for one node key (<see cref="ControlProof"/>): holds the proof key
/// derived from X25519(node key, server key) and writes the four proof headers. The proof key
/// is zeroed on <see cref="Dispose"/>. Thread-safe.
/// </summary>
internal sealed class ControlSigner : IDisposable
{
    private readonly byte[] _proofKey = new byte[ControlProof.ProofSize];
    private readonly TimeProvider _time;
    private readonly string _nodeKey;
    private volatile bool _disposed;

    private ControlSigner(WireGuardPublicKey nodeKey, TimeProvider time)
    {
        NodeKey = nodeKey;
        _nodeKey = nodeKey.ToBase64();
        _time = time;
    }

    /// <summary>The node key this signer proves.</summary>
    public WireGuardPublicKey NodeKey { get; }

    /// <summary>Derives the proof key; null when <paramref name="serverKey"/> is not a usable X25519 key.</summary>
    public static ControlSigner? Create(WireGuardPrivateKey nodeKey, ReadOnlySpan<byte> serverKey, TimeProvider time)
    {
        Span<byte> shared = stackalloc byte[32];
        try
        {
            if (!nodeKey.TryAgree(serverKey, shared))
            {
                return null;
            }
            var signer = new ControlSigner(nodeKey.PublicKey, time);
            ControlProof.DeriveProofKey(shared, signer._proofKey);
            return signer;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(shared);
        }
    }

    /// <summary>Adds the proof headers for a call of <paramref name="method"/> with <paramref name="request"/>.</summary>
    public void Sign(string method, IMessage request, Metadata headers)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        byte[] body = request.ToByteArray();
        long timestamp = _time.GetUtcNow().ToUnixTimeMilliseconds();
        Span<byte> nonce = stackalloc byte[ControlProof.NonceSize];
        RandomNumberGenerator.Fill(nonce);
        Span<byte> proof = stackalloc byte[ControlProof.ProofSize];
        ControlProof.Compute(_proofKey, method, timestamp, nonce, body, proof);
        headers.Add(ControlProof.NodeKeyHeader, _nodeKey);
        headers.Add(ControlProof.TimestampHeader, timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture));
        headers.Add(ControlProof.NonceHeader, Convert.ToBase64String(nonce));
        headers.Add(ControlProof.ProofHeader, Convert.ToBase64String(proof));
    }

    /// <summary>The proof, made with this (old) key, that its holder hands over to <paramref name="newKey"/>.</summary>
    public byte[] CreateRotationProof(WireGuardPublicKey newKey)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var proof = new byte[ControlProof.ProofSize];
        ControlProof.ComputeRotationProof(_proofKey, newKey.AsSpan(), proof);
        return proof;
    }

    /// <summary>Zeroes the proof key. Idempotent.</summary>
    public void Dispose()
    {
        _disposed = true;
        CryptographicOperations.ZeroMemory(_proofKey);
    }

    public override string ToString() => $"ControlSigner({NodeKey.ToShortString()})";
}
