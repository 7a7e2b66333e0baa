using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using MeshNet.Userspace.Crypto;

namespace MeshNet;

/// <summary>
/// The JSON form of a <see cref="MeshNodeIdentity"/> written by <see cref="FileStateStore"/>
/// (version 2):
/// <code>
/// {
///   "format": "meshnet-node-state",
///   "version": 2,
///   "privateKey": "&lt;base64&gt;",
///   "nodeId": 7,
///   "tailnet": "acme",
///   "addresses": ["100.64.0.7", "fd7a:115c:a1e0::7"],
///   "controlUrl": "https://...",
///   "listenPort": 41641,
///   "integrity": "&lt;base64 HMAC-SHA256&gt;"
/// }
/// </code>
/// <c>nodeId</c>, <c>tailnet</c> and <c>controlUrl</c> are written once registered,
/// <c>listenPort</c> when not 0.
/// </summary>
/// <remarks>
/// <para><b>Integrity</b> (version 2): <c>integrity</c> is the last property; its value is the
/// base64 HMAC-SHA256, keyed with HKDF-SHA256 (no salt, info <c>meshnet node state v2</c>, 32
/// bytes) of the node's private key, of the file's bytes from its first byte up to and including
/// the last byte of the value before <c>"integrity"</c> (that is, the document as written
/// before the integrity property was appended: no separator, no whitespace after that value).
/// The reader checks exactly those bytes, so any change to them (an edited value, a property
/// removed, a bit flipped, even whitespace) fails the check; nothing may follow the integrity
/// property but the closing brace. The HMAC detects corruption and careless edits, not an
/// attacker: whoever can write the file can read the key in it.</para>
/// <para>Version 1 (no <c>integrity</c>, no <c>listenPort</c>) is still read; the store writes
/// version 2 on its next save. Readers ignore properties they do not know; a file of a higher
/// <c>version</c> is refused. The key is written and read as bytes, never as a .NET string, and
/// every buffer that held it is zeroed by the caller.</para>
/// </remarks>
internal static class StateFileFormat
{
    public const string FormatName = "meshnet-node-state";
    public const int Version = 2;
    public const int MaxFileSize = 1 << 20;
    private const int TagSize = 32;
    private static ReadOnlySpan<byte> IntegrityKeyInfo => "meshnet node state v2"u8;

    /// <summary>Serializes into a buffer the caller must zero (it holds the key).</summary>
    public static MemoryStream Serialize(MeshNodeIdentity identity)
    {
        // Sized up front so that the stream never grows (growing would leave a copy of the key
        // in the abandoned buffer).
        var stream = new MemoryStream(4096);
        Span<byte> secret = stackalloc byte[WireGuardPrivateKey.Size];
        try
        {
            using var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
            writer.WriteStartObject();
            writer.WriteString("format", FormatName);
            writer.WriteNumber("version", Version);
            identity.PrivateKey.ExportSecret(secret);
            writer.WriteBase64String("privateKey", secret);
            if (identity.NodeId is { } nodeId)
            {
                writer.WriteNumber("nodeId", nodeId);
            }
            if (identity.Tailnet is { } tailnet)
            {
                writer.WriteString("tailnet", tailnet);
            }
            writer.WriteStartArray("addresses");
            foreach (var address in identity.Addresses)
            {
                writer.WriteStringValue(address.ToString());
            }
            writer.WriteEndArray();
            if (identity.ControlUrl is { } url)
            {
                writer.WriteString("controlUrl", url.AbsoluteUri);
            }
            if (identity.ListenPort != 0)
            {
                writer.WriteNumber("listenPort", identity.ListenPort);
            }
            // Everything written so far (up to the last value) is what the integrity tag covers.
            writer.Flush();
            Span<byte> tag = stackalloc byte[TagSize];
            ComputeTag(secret, stream.GetBuffer().AsSpan(0, (int)stream.Length), tag);
            writer.WriteBase64String("integrity", tag);
            writer.WriteEndObject();
            writer.Flush();
            return stream;
        }
        catch
        {
            CryptographicOperations.ZeroMemory(stream.GetBuffer());
            throw;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
        }
    }

    /// <summary>Parses a state file.</summary>
    /// <exception cref="StateFileCorruptException">Not a valid state file.</exception>
    /// <exception cref="StateFileVersionException">Written by a newer version.</exception>
    public static MeshNodeIdentity Deserialize(ReadOnlySpan<byte> json)
    {
        byte[]? secret = null;
        string? format = null;
        int? version = null;
        ulong? nodeId = null;
        string? tailnet = null;
        Uri? controlUrl = null;
        int listenPort = 0;
        byte[]? integrity = null;
        long covered = 0;
        bool propertyAfterIntegrity = false;
        List<IPAddress> addresses = [];
        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip, MaxDepth = 16 });
            Expect(reader.Read() && reader.TokenType == JsonTokenType.StartObject, "the file is not a JSON object");
            long valueEnd = reader.BytesConsumed;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                propertyAfterIntegrity |= integrity is not null;
                string name = reader.GetString()!;
                Expect(reader.Read(), "the file ends early");
                switch (name)
                {
                    case "format":
                        format = ReadString(ref reader, name);
                        break;
                    case "version":
                        Expect(reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out int v), "\"version\" is not an integer");
                        version = reader.GetInt32();
                        break;
                    case "privateKey":
                        Expect(secret is null, "\"privateKey\" appears twice");
                        Expect(reader.TokenType == JsonTokenType.String && reader.TryGetBytesFromBase64(out secret), "\"privateKey\" is not base64");
                        break;
                    case "nodeId":
                        Expect(reader.TokenType == JsonTokenType.Number && reader.TryGetUInt64(out _), "\"nodeId\" is not an unsigned integer");
                        nodeId = reader.GetUInt64();
                        break;
                    case "tailnet":
                        tailnet = ReadString(ref reader, name);
                        break;
                    case "controlUrl":
                        Expect(Uri.TryCreate(ReadString(ref reader, name), UriKind.Absolute, out controlUrl), "\"controlUrl\" is not an absolute URL");
                        break;
                    case "addresses":
                        Expect(reader.TokenType == JsonTokenType.StartArray, "\"addresses\" is not an array");
                        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                        {
                            Expect(reader.TokenType == JsonTokenType.String && IPAddress.TryParse(reader.GetString(), out var address),
                                "\"addresses\" holds something that is not an IP address");
                            addresses.Add(IPAddress.Parse(reader.GetString()!));
                        }
                        break;
                    case "listenPort":
                        Expect(reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out int port) && port is >= 0 and <= ushort.MaxValue,
                            "\"listenPort\" is not a port number");
                        listenPort = reader.GetInt32();
                        break;
                    case "integrity":
                        // Checked only for version 2 and later (version 1 readers ignored it).
                        integrity = reader.TokenType == JsonTokenType.String && reader.TryGetBytesFromBase64(out var tag) ? tag : [];
                        reader.Skip();
                        covered = valueEnd;
                        break;
                    default:
                        reader.Skip(); // a property of a later version
                        break;
                }
                valueEnd = reader.BytesConsumed;
            }
            Expect(reader.TokenType == JsonTokenType.EndObject, "the file is not a complete JSON object");
            Expect(!reader.Read(), "the file has content after its JSON object");
            Expect(format == FormatName, $"\"format\" is not \"{FormatName}\"");
            Expect(version is not null, "\"version\" is missing");
            if (version > Version)
            {
                throw new StateFileVersionException(version.Value);
            }
            Expect(version >= 1, "\"version\" is not a known version");
            Expect(secret is { Length: WireGuardPrivateKey.Size }, "\"privateKey\" is missing or not 32 bytes");
            if (version >= 2)
            {
                Expect(integrity is not null, "\"integrity\" is missing");
                Expect(integrity!.Length == TagSize, "\"integrity\" is not a base64 HMAC-SHA256");
                Expect(!propertyAfterIntegrity, "\"integrity\" is not the last property");
                Span<byte> expected = stackalloc byte[TagSize];
                ComputeTag(secret, json[..(int)covered], expected);
                Expect(CryptographicOperations.FixedTimeEquals(expected, integrity),
                    "the file failed its integrity check (it was edited, truncated or corrupted)");
            }
            return new MeshNodeIdentity(WireGuardPrivateKey.FromBytes(secret))
            {
                NodeId = nodeId,
                Tailnet = tailnet,
                Addresses = addresses,
                ControlUrl = controlUrl,
                ListenPort = listenPort,
            };
        }
        catch (JsonException e)
        {
            // The reader's message names a position, never the content.
            throw new StateFileCorruptException($"the file is not valid JSON (line {e.LineNumber + 1})", e);
        }
        finally
        {
            if (secret is not null)
            {
                CryptographicOperations.ZeroMemory(secret);
            }
        }
    }

    /// <summary>The integrity tag of <paramref name="document"/>, keyed from the node's private key <paramref name="secret"/>.</summary>
    private static void ComputeTag(ReadOnlySpan<byte> secret, ReadOnlySpan<byte> document, Span<byte> tag)
    {
        Span<byte> key = stackalloc byte[32];
        try
        {
            HKDF.DeriveKey(HashAlgorithmName.SHA256, secret, key, salt: [], IntegrityKeyInfo);
            HMACSHA256.HashData(key, document, tag);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    private static string ReadString(ref Utf8JsonReader reader, string name)
    {
        Expect(reader.TokenType == JsonTokenType.String, $"\"{name}\" is not a string");
        return reader.GetString()!;
    }

    private static void Expect(bool condition, string problem)
    {
        if (!condition)
        {
            throw new StateFileCorruptException(problem, null);
        }
    }
}

/// <summary>A state file that cannot be parsed (the message never quotes the file).</summary>
internal sealed class StateFileCorruptException(string problem, Exception? inner) : Exception(problem, inner);

/// <summary>A state file written by a newer version of MeshNet.</summary>
internal sealed class StateFileVersionException(int version)
    : Exception($"the file has format version {version}; this version of MeshNet reads version {StateFileFormat.Version}")
{
    public int FileVersion { get; } = version;
}
