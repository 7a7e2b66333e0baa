using System.Net;
using System.Security.Cryptography;
using MeshNet.Userspace.Crypto;

namespace MeshNet;

/// <summary>
/// What a node keeps between runs (through an <see cref="IMeshStateStore"/>): its private key
/// and, once registered, the identity the coordination service gave it.
/// </summary>
/// <remarks>
/// The instance owns its <see cref="PrivateKey"/>: disposing the identity disposes (zeroes)
/// the key. <see cref="ToString"/> shows only the public key. Not thread-safe for mutation;
/// a store returns a new instance from every load and copies what it saves.
/// </remarks>
public sealed class MeshNodeIdentity : IDisposable
{
    /// <summary>Creates an identity around <paramref name="privateKey"/>, which it takes ownership of.</summary>
    public MeshNodeIdentity(WireGuardPrivateKey privateKey)
    {
        ArgumentNullException.ThrowIfNull(privateKey);
        PrivateKey = privateKey;
    }

    /// <summary>The node's WireGuard private key (also its node key on the control plane). Owned by this instance.</summary>
    public WireGuardPrivateKey PrivateKey { get; }

    /// <summary>The node's public key.</summary>
    public WireGuardPublicKey PublicKey => PrivateKey.PublicKey;

    /// <summary>The node's id in its tailnet, once registered.</summary>
    public ulong? NodeId { get; set; }

    /// <summary>The tailnet the node joined, once registered.</summary>
    public string? Tailnet { get; set; }

    /// <summary>The node's tailnet addresses, once registered.</summary>
    public IReadOnlyList<IPAddress> Addresses { get; set; } = [];

    /// <summary>The coordination service the registration belongs to.</summary>
    public Uri? ControlUrl { get; set; }

    /// <summary>
    /// The UDP port the node's WireGuard socket last used (0: none yet). A node configured with
    /// port 0 binds this one again when it is free, so that peers holding the old endpoint in
    /// their netmaps reach it after a restart without the coordination service.
    /// </summary>
    public int ListenPort { get; set; }

    /// <summary>True when the node has registered with <see cref="ControlUrl"/>.</summary>
    public bool IsRegistered => NodeId is not null && ControlUrl is not null;

    /// <summary>Creates a new random identity (not registered).</summary>
    public static MeshNodeIdentity Generate() => new(WireGuardPrivateKey.Generate());

    /// <summary>A deep copy, with its own copy of the private key.</summary>
    public MeshNodeIdentity Clone()
    {
        Span<byte> secret = stackalloc byte[WireGuardPrivateKey.Size];
        try
        {
            PrivateKey.ExportSecret(secret);
            return new MeshNodeIdentity(WireGuardPrivateKey.FromBytes(secret))
            {
                NodeId = NodeId,
                Tailnet = Tailnet,
                Addresses = [.. Addresses],
                ControlUrl = ControlUrl,
                ListenPort = ListenPort,
            };
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
        }
    }

    /// <summary>Zeroes the private key. Idempotent.</summary>
    public void Dispose() => PrivateKey.Dispose();

    /// <summary>The public key and registration; never the private key.</summary>
    public override string ToString() =>
        $"MeshNodeIdentity(public {PublicKey.ToShortString()}, node {(NodeId?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "unregistered")}, tailnet {Tailnet ?? "none"})";
}
