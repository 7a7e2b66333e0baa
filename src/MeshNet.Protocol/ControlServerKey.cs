using System.Security.Cryptography;
using NSec.Cryptography;

namespace MeshNet.Protocol;

/// <summary>
/// The coordination server's X25519 key: nodes derive their call proofs from it. The secret is
/// held by NSec in guarded memory, zeroed on <see cref="Dispose"/>, and never printed.
/// Thread-safe for concurrent use.
/// </summary>
public sealed class ControlServerKey : IDisposable
{
    private readonly Key _key;

    private ControlServerKey(Key key)
    {
        _key = key;
        PublicKey = key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
    }

    /// <summary>The 32-byte public key (sent to nodes by GetServerInfo).</summary>
    public byte[] PublicKey { get; }

    /// <summary>Generates a new key.</summary>
    public static ControlServerKey Generate() =>
        new(Key.Create(KeyAgreementAlgorithm.X25519, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport }));

    /// <summary>Loads a key from its 32 secret bytes (for example from the server's database).</summary>
    /// <exception cref="ArgumentException">Not 32 bytes.</exception>
    public static ControlServerKey FromBytes(ReadOnlySpan<byte> secret)
    {
        if (secret.Length != 32)
        {
            throw new ArgumentException("A server key is 32 bytes.", nameof(secret));
        }
        return new(Key.Import(KeyAgreementAlgorithm.X25519, secret, KeyBlobFormat.RawPrivateKey,
            new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport }));
    }

    /// <summary>Copies the 32 secret bytes out, for persisting; the caller zeroes its copy.</summary>
    public void ExportSecret(Span<byte> destination)
    {
        if (!_key.TryExport(KeyBlobFormat.RawPrivateKey, destination, out int written) || written != 32)
        {
            throw new CryptographicException("The server key could not be exported.");
        }
    }

    /// <summary>
    /// Derives the proof key shared with the node whose public key is <paramref name="nodeKey"/>.
    /// </summary>
    /// <returns>False for an invalid node key (unparsable or a low-order point).</returns>
    public bool TryDeriveProofKey(ReadOnlySpan<byte> nodeKey, Span<byte> proofKey)
    {
        if (nodeKey.Length != 32 || !NSec.Cryptography.PublicKey.TryImport(KeyAgreementAlgorithm.X25519, nodeKey, KeyBlobFormat.RawPublicKey, out var peer) || peer is null)
        {
            return false;
        }
        var creation = new SharedSecretCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport };
        using var shared = KeyAgreementAlgorithm.X25519.Agree(_key, peer, in creation);
        if (shared is null)
        {
            return false;
        }
        Span<byte> secret = stackalloc byte[32];
        try
        {
            if (!shared.TryExport(SharedSecretBlobFormat.RawSharedSecret, secret, out int written) || written != 32)
            {
                return false;
            }
            ControlProof.DeriveProofKey(secret, proofKey);
            return true;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
        }
    }

    /// <summary>Zeroes the secret. Idempotent.</summary>
    public void Dispose() => _key.Dispose();

    /// <summary>Never shows the secret.</summary>
    public override string ToString() => $"ControlServerKey(public {Convert.ToBase64String(PublicKey)[..8]}…)";
}
