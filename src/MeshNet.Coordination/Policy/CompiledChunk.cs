using System.Security.Cryptography;
using Google.Protobuf;
using MeshNet.Control.V1;

namespace MeshNet.Coordination.Policy;

/// <summary>
/// A filter chunk as sent on the wire, shared by every node it applies to (never mutated), with
/// a hash of its content so views compare chunks without walking their rules.
/// </summary>
internal sealed class CompiledChunk
{
    public CompiledChunk(FilterChunk wire)
    {
        Wire = wire;
        Hash = Convert.ToHexString(SHA256.HashData(wire.ToByteArray()), 0, 16);
    }

    public FilterChunk Wire { get; }

    public string Name => Wire.Name;

    public string Hash { get; }
}
