using System.Buffers.Binary;
using System.Security.Cryptography;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using MeshNet.Cache.V1;
using MeshNet.Control.V1;
using MeshNet.Netmap;

namespace MeshNet;

/// <summary>
/// A node's last netmap (itself, its peers with keys, addresses and endpoints, the DNS domain,
/// the packet-filter rules, the stream position, and when it was received), kept by an
/// <see cref="IMeshNetmapStore"/> so that the node restarts and reaches its peers without the
/// coordination service. Immutable.
/// </summary>
/// <remarks>
/// <para>Stores keep it as the bytes of <see cref="Serialize"/>: a versioned envelope whose
/// integrity is protected by an HMAC-SHA256 keyed from the node's private key (HKDF-SHA256), and
/// which names the node's public key. <see cref="Deserialize"/> therefore detects a truncated,
/// modified, foreign (another node's) or unknown-version blob and says which. The netmap holds
/// no secrets (peers' public keys, addresses and rules), but it decides whom the node talks to:
/// a custom store should still keep it private to the node.</para>
/// </remarks>
public sealed class MeshCachedNetmap
{
    /// <summary>The envelope's current version.</summary>
    public const byte FormatVersion = 1;

    private static ReadOnlySpan<byte> Magic => "MNNC"u8;
    private static ReadOnlySpan<byte> KeyInfo => "meshnet netmap cache v1"u8;
    private const int HeaderLength = 4 + 4 + WireGuardKeySize + 4;
    private const int TagLength = 32;
    private const int WireGuardKeySize = 32;

    /// <summary>The largest serialized netmap accepted (64 MiB: about 200,000 peers).</summary>
    public const int MaxSerializedSize = 64 << 20;

    private readonly CachedNetmap _content;

    private MeshCachedNetmap(CachedNetmap content)
    {
        _content = content;
        ReceivedAt = content.Received?.ToDateTimeOffset() ?? DateTimeOffset.UnixEpoch;
    }

    /// <summary>This node's id in its tailnet.</summary>
    public ulong NodeId => _content.Map.Self.Id;

    /// <summary>The tailnet's name.</summary>
    public string Tailnet => _content.Tailnet;

    /// <summary>The number of peers.</summary>
    public int PeerCount => _content.Map.Peers.Count;

    /// <summary>The map-stream sequence number of the last change applied.</summary>
    public ulong Sequence => _content.Sequence;

    /// <summary>The tailnet policy version the netmap reflects (0: none).</summary>
    public ulong PolicyVersion => _content.Map.PolicyVersion;

    /// <summary>When the node last received (a change to) this netmap.</summary>
    public DateTimeOffset ReceivedAt { get; }

    /// <summary>The map-stream session the netmap belongs to.</summary>
    internal string Session => _content.Session;

    /// <summary>The netmap as a full map.</summary>
    internal FullMap Map => _content.Map;

    /// <summary>Captures <paramref name="snapshot"/>, received (last changed) at <paramref name="receivedAt"/>.</summary>
    internal static MeshCachedNetmap From(NetmapSnapshot snapshot, string tailnet, DateTimeOffset receivedAt)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        return new MeshCachedNetmap(new CachedNetmap
        {
            Map = NetmapApplier.ToFullMap(snapshot),
            Session = snapshot.Session,
            Sequence = snapshot.Sequence,
            Received = Timestamp.FromDateTimeOffset(receivedAt),
            Tailnet = tailnet,
        });
    }

    /// <summary>The netmap snapshot this cache restores.</summary>
    internal NetmapSnapshot ToSnapshot() => NetmapApplier.ApplyFull(_content.Map, _content.Session, _content.Sequence);

    /// <summary>
    /// The integrity-protected bytes a store keeps: magic <c>MNNC</c>, the format version, the
    /// node's public key, the length and protobuf content, and an HMAC-SHA256 over all of it
    /// keyed from <paramref name="identity"/>'s private key.
    /// </summary>
    /// <param name="identity">The node the netmap belongs to (its private key keys the HMAC; it is not written).</param>
    public byte[] Serialize(MeshNodeIdentity identity)
    {
        ArgumentNullException.ThrowIfNull(identity);
        int payloadLength = _content.CalculateSize();
        var bytes = new byte[HeaderLength + payloadLength + TagLength];
        Magic.CopyTo(bytes);
        bytes[4] = FormatVersion;
        identity.PublicKey.AsSpan().CopyTo(bytes.AsSpan(8, WireGuardKeySize));
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(8 + WireGuardKeySize), payloadLength);
        _content.WriteTo(bytes.AsSpan(HeaderLength, payloadLength));
        ComputeTag(identity, bytes.AsSpan(0, HeaderLength + payloadLength), bytes.AsSpan(HeaderLength + payloadLength));
        return bytes;
    }

    /// <summary>Reads bytes written by <see cref="Serialize"/> for the same node.</summary>
    /// <param name="data">The stored bytes.</param>
    /// <param name="identity">The node reading them (its private key checks the HMAC).</param>
    /// <exception cref="InvalidDataException">
    /// The bytes are not a netmap cache, are truncated, of an unknown version, written for
    /// another node key, modified, or hold a malformed netmap; the message says which.
    /// </exception>
    public static MeshCachedNetmap Deserialize(ReadOnlySpan<byte> data, MeshNodeIdentity identity)
    {
        ArgumentNullException.ThrowIfNull(identity);
        if (data.Length > MaxSerializedSize)
        {
            throw new InvalidDataException($"the netmap cache is larger than {MaxSerializedSize} bytes");
        }
        if (data.Length < 5 || !data[..4].SequenceEqual(Magic))
        {
            throw new InvalidDataException(data.Length < 4 ? "the netmap cache is truncated (shorter than its header)" : "the data is not a MeshNet netmap cache (wrong magic)");
        }
        if (data[4] != FormatVersion)
        {
            throw new InvalidDataException($"the netmap cache has format version {data[4]}, which this MeshNet does not know (it reads version {FormatVersion})");
        }
        if (data.Length < HeaderLength + TagLength)
        {
            throw new InvalidDataException("the netmap cache is truncated (shorter than its header and integrity tag)");
        }
        var writtenFor = data.Slice(8, WireGuardKeySize);
        if (!writtenFor.SequenceEqual(identity.PublicKey.AsSpan()))
        {
            throw new InvalidDataException($"the netmap cache belongs to another node key ({Convert.ToBase64String(writtenFor)[..8]}..., not {identity.PublicKey.ToShortString()})");
        }
        int payloadLength = BinaryPrimitives.ReadInt32BigEndian(data[(8 + WireGuardKeySize)..]);
        if (payloadLength < 0 || data.Length != HeaderLength + payloadLength + TagLength)
        {
            throw new InvalidDataException($"the netmap cache is truncated or has trailing bytes ({data.Length} bytes, the header announces {HeaderLength + (long)payloadLength + TagLength})");
        }
        Span<byte> expected = stackalloc byte[TagLength];
        ComputeTag(identity, data[..(HeaderLength + payloadLength)], expected);
        if (!CryptographicOperations.FixedTimeEquals(expected, data[(HeaderLength + payloadLength)..]))
        {
            throw new InvalidDataException("the netmap cache failed its integrity check (it was modified or corrupted)");
        }
        CachedNetmap content;
        try
        {
            content = CachedNetmap.Parser.ParseFrom(data.Slice(HeaderLength, payloadLength));
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"the netmap cache holds a malformed netmap: {e.Message}", e);
        }
        if (content.Map?.Self is null)
        {
            throw new InvalidDataException("the netmap cache holds no netmap of the node itself");
        }
        return new MeshCachedNetmap(content);
    }

    private static void ComputeTag(MeshNodeIdentity identity, ReadOnlySpan<byte> message, Span<byte> tag)
    {
        Span<byte> secret = stackalloc byte[WireGuardKeySize];
        Span<byte> key = stackalloc byte[32];
        try
        {
            identity.PrivateKey.ExportSecret(secret);
            HKDF.DeriveKey(HashAlgorithmName.SHA256, secret, key, salt: [], KeyInfo);
            HMACSHA256.HashData(key, message, tag);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
            CryptographicOperations.ZeroMemory(key);
        }
    }

    /// <summary>The node, the peer count, the sequence and the time received.</summary>
    public override string ToString() =>
        $"MeshCachedNetmap(node {NodeId}, {PeerCount} peers, sequence {Sequence}, received {ReceivedAt:O})";
}
