using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using MeshNet.Userspace.Crypto;

namespace MeshNet;

/// <summary>
/// The JSON form of a <see cref="MeshNodeIdentity"/> written by <see cref="FileStateStore"/>:
/// <code>
/// { "format": "meshnet-node-state", "version": 1, "privateKey": "&lt;base64&gt;", "nodeId": 7,
///   "tailnet": "acme", "addresses": ["100.64.0.7", "fd7a:115c:a1e0::7"], "controlUrl": "https://..." }
/// </code>
/// Readers ignore properties they do not know, so a later version can add some (a netmap cache,
/// an integrity tag) without breaking this one; a file of a higher <c>version</c> is refused.
/// The key is written and read as bytes, never as a .NET string, and every buffer that held it
/// is zeroed by the caller.
/// </summary>
internal static class StateFileFormat
{
    public const string FormatName = "meshnet-node-state";
    public const int Version = 1;
    public const int MaxFileSize = 1 << 20;

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
        List<IPAddress> addresses = [];
        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip, MaxDepth = 16 });
            Expect(reader.Read() && reader.TokenType == JsonTokenType.StartObject, "the file is not a JSON object");
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
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
                    default:
                        reader.Skip(); // a property of a later version
                        break;
                }
            }
            Expect(reader.TokenType == JsonTokenType.EndObject, "the file is not a complete JSON object");
            Expect(format == FormatName, $"\"format\" is not \"{FormatName}\"");
            Expect(version is not null, "\"version\" is missing");
            if (version > Version)
            {
                throw new StateFileVersionException(version.Value);
            }
            Expect(version >= 1, "\"version\" is not a known version");
            Expect(secret is { Length: WireGuardPrivateKey.Size }, "\"privateKey\" is missing or not 32 bytes");
            return new MeshNodeIdentity(WireGuardPrivateKey.FromBytes(secret))
            {
                NodeId = nodeId,
                Tailnet = tailnet,
                Addresses = addresses,
                ControlUrl = controlUrl,
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
