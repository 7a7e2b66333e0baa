using System.Buffers.Binary;
using System.Numerics;
using System.Security.Cryptography;

namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>
/// SipHash-2-4 (Aumasson and Bernstein), the keyed hash Linux uses for ISNs, SYN cookies and
/// port selection: fast on short inputs and unpredictable without the 128-bit key. An instance
/// holds one random key; immutable and thread-safe.
/// </summary>
internal sealed class SipHash
{
    private readonly ulong _k0;
    private readonly ulong _k1;

    /// <summary>A hash with a fresh random key.</summary>
    public SipHash()
    {
        Span<byte> key = stackalloc byte[16];
        RandomNumberGenerator.Fill(key);
        _k0 = BinaryPrimitives.ReadUInt64LittleEndian(key);
        _k1 = BinaryPrimitives.ReadUInt64LittleEndian(key[8..]);
    }

    /// <summary>A hash with a given key (tests).</summary>
    public SipHash(ulong k0, ulong k1)
    {
        _k0 = k0;
        _k1 = k1;
    }

    /// <summary>SipHash-2-4 of <paramref name="data"/>.</summary>
    public ulong Hash(ReadOnlySpan<byte> data)
    {
        ulong v0 = 0x736f6d6570736575UL ^ _k0;
        ulong v1 = 0x646f72616e646f6dUL ^ _k1;
        ulong v2 = 0x6c7967656e657261UL ^ _k0;
        ulong v3 = 0x7465646279746573UL ^ _k1;
        int blocks = data.Length / 8;
        for (int i = 0; i < blocks; i++)
        {
            ulong m = BinaryPrimitives.ReadUInt64LittleEndian(data[(i * 8)..]);
            v3 ^= m;
            Round(ref v0, ref v1, ref v2, ref v3);
            Round(ref v0, ref v1, ref v2, ref v3);
            v0 ^= m;
        }
        ulong last = (ulong)data.Length << 56;
        var tail = data[(blocks * 8)..];
        for (int i = 0; i < tail.Length; i++)
        {
            last |= (ulong)tail[i] << (8 * i);
        }
        v3 ^= last;
        Round(ref v0, ref v1, ref v2, ref v3);
        Round(ref v0, ref v1, ref v2, ref v3);
        v0 ^= last;
        v2 ^= 0xff;
        Round(ref v0, ref v1, ref v2, ref v3);
        Round(ref v0, ref v1, ref v2, ref v3);
        Round(ref v0, ref v1, ref v2, ref v3);
        Round(ref v0, ref v1, ref v2, ref v3);
        return v0 ^ v1 ^ v2 ^ v3;
    }

    /// <summary>Hashes a 4-tuple (canonical 16-byte addresses and ports) and an extra 32-bit value.</summary>
    public ulong HashFlow(in TcpFlowKey key, uint extra)
    {
        Span<byte> input = stackalloc byte[40];
        BinaryPrimitives.WriteUInt128BigEndian(input, key.LocalAddress.Bits);
        BinaryPrimitives.WriteUInt128BigEndian(input[16..], key.RemoteAddress.Bits);
        BinaryPrimitives.WriteUInt16BigEndian(input[32..], key.LocalPort);
        BinaryPrimitives.WriteUInt16BigEndian(input[34..], key.RemotePort);
        BinaryPrimitives.WriteUInt32BigEndian(input[36..], extra);
        return Hash(input);
    }

    private static void Round(ref ulong v0, ref ulong v1, ref ulong v2, ref ulong v3)
    {
        v0 += v1;
        v1 = BitOperations.RotateLeft(v1, 13);
        v1 ^= v0;
        v0 = BitOperations.RotateLeft(v0, 32);
        v2 += v3;
        v3 = BitOperations.RotateLeft(v3, 16);
        v3 ^= v2;
        v0 += v3;
        v3 = BitOperations.RotateLeft(v3, 21);
        v3 ^= v0;
        v2 += v1;
        v1 = BitOperations.RotateLeft(v1, 17);
        v1 ^= v2;
        v2 = BitOperations.RotateLeft(v2, 32);
    }
}
