using System.Buffers.Binary;
using System.Security.Cryptography;

namespace MeshNet.Interop.Tests.WireGuard;

/// <summary>
/// Self-checking datagram payloads: a sequence number, a length that varies with it, bytes
/// derived from it and a SHA-256 prefix over all of that, so loss, duplication and any
/// alteration are detected.
/// </summary>
internal static class UdpPayload
{
    private const int HashSize = 8;

    public static byte[] Create(int sequence)
    {
        int length = 16 + (sequence * 131 % 1300);
        var payload = new byte[length];
        BinaryPrimitives.WriteInt32LittleEndian(payload, sequence);
        BinaryPrimitives.WriteInt32LittleEndian(payload.AsSpan(4), length);
        for (int i = 8 + HashSize; i < length; i++)
        {
            payload[i] = (byte)(sequence * 31 + i);
        }
        SHA256.HashData(Body(payload)).AsSpan(0, HashSize).CopyTo(payload.AsSpan(8));
        return payload;
    }

    /// <summary>Returns the sequence number, or throws when the payload was altered.</summary>
    public static int Verify(ReadOnlySpan<byte> payload)
    {
        if (payload.Length < 16 || BinaryPrimitives.ReadInt32LittleEndian(payload[4..]) != payload.Length)
        {
            throw new InvalidDataException($"A datagram of {payload.Length} bytes has the wrong length.");
        }
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Body(payload), hash);
        if (!hash[..HashSize].SequenceEqual(payload.Slice(8, HashSize)))
        {
            throw new InvalidDataException("A datagram's content was altered.");
        }
        return BinaryPrimitives.ReadInt32LittleEndian(payload);
    }

    private static byte[] Body(ReadOnlySpan<byte> payload)
    {
        var body = new byte[payload.Length - HashSize];
        payload[..8].CopyTo(body);
        payload[(8 + HashSize)..].CopyTo(body.AsSpan(8));
        return body;
    }
}
