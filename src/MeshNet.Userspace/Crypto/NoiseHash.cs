using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace MeshNet.Userspace.Crypto;

/// <summary>
/// The hash functions of WireGuard's <c>Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s</c>: HASH
/// (BLAKE2s-256), MAC (keyed BLAKE2s-128), HMAC (RFC 2104 over BLAKE2s-256) and the
/// HKDF-style KDF1/KDF2/KDF3, plus the protocol's fixed strings and precomputed initial
/// chaining key and hash.
/// </summary>
/// <remarks>
/// <para>Stateless and thread-safe; nothing allocates. Every intermediate secret lives in a
/// stack buffer that is zeroed before returning, including when an exception is thrown.</para>
/// <para>Aliasing: outputs may alias inputs (for example <c>Kdf2(ck, x, ck, key)</c> updates
/// the chaining key in place, and <c>Hash(h, x, h)</c> mixes into the hash in place): every
/// input is fully read before any output byte is written. Distinct outputs of one KDF call
/// must not overlap each other.</para>
/// <para>Sizes are checked exactly: HASH/HMAC/KDF outputs are 32 bytes, MAC outputs 16.
/// A wrong size is a programming error and throws <see cref="ArgumentException"/>.</para>
/// </remarks>
internal static class NoiseHash
{
    /// <summary>Size of HASH, HMAC and KDF outputs (BLAKE2s-256) in bytes.</summary>
    public const int HashSize = 32;

    /// <summary>Size of a MAC (BLAKE2s-128) in bytes.</summary>
    public const int MacSize = 16;

    /// <summary>The HMAC block size: BLAKE2s's 64-byte block.</summary>
    public const int HmacBlockSize = Blake2s.BlockSize;

    private const byte InnerPad = 0x36;
    private const byte OuterPad = 0x5C;

    /// <summary>The Noise protocol name, <c>Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s</c>.</summary>
    public static ReadOnlySpan<byte> Construction => "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"u8;

    /// <summary>The WireGuard identifier (the Noise prologue), <c>WireGuard v1 zx2c4 Jason@zx2c4.com</c>.</summary>
    public static ReadOnlySpan<byte> Identifier => "WireGuard v1 zx2c4 Jason@zx2c4.com"u8;

    /// <summary>Label for the mac1 key: mac1 key = HASH(<c>"mac1----"</c> || receiver static public key).</summary>
    public static ReadOnlySpan<byte> LabelMac1 => "mac1----"u8;

    /// <summary>Label for the cookie key: cookie key = HASH(<c>"cookie--"</c> || responder static public key).</summary>
    public static ReadOnlySpan<byte> LabelCookie => "cookie--"u8;

    /// <summary>Ci = HASH(<see cref="Construction"/>), the initial chaining key.</summary>
    public static ReadOnlySpan<byte> InitialChainingKey =>
    [
        0x60, 0xe2, 0x6d, 0xae, 0xf3, 0x27, 0xef, 0xc0, 0x2e, 0xc3, 0x35, 0xe2, 0xa0, 0x25, 0xd2, 0xd0,
        0x16, 0xeb, 0x42, 0x06, 0xf8, 0x72, 0x77, 0xf5, 0x2d, 0x38, 0xd1, 0x98, 0x8b, 0x78, 0xcd, 0x36,
    ];

    /// <summary>Hi = HASH(Ci || <see cref="Identifier"/>), the initial handshake hash.</summary>
    public static ReadOnlySpan<byte> InitialHash =>
    [
        0x22, 0x11, 0xb3, 0x61, 0x08, 0x1a, 0xc5, 0x66, 0x69, 0x12, 0x43, 0xdb, 0x45, 0x8a, 0xd5, 0x32,
        0x2d, 0x9c, 0x6c, 0x66, 0x22, 0x93, 0xe8, 0xb7, 0x0e, 0xe1, 0x9c, 0x65, 0xba, 0x07, 0x9e, 0xf3,
    ];

    /// <summary>HASH(a) = BLAKE2s-256(a). <paramref name="output"/> may alias <paramref name="a"/>.</summary>
    /// <exception cref="ArgumentException"><paramref name="output"/> is not 32 bytes.</exception>
    public static void Hash(ReadOnlySpan<byte> a, Span<byte> output)
    {
        CheckSize(output, HashSize, nameof(output));
        Blake2s.Hash(a, output);
    }

    /// <summary>HASH(a || b) = BLAKE2s-256 of the concatenation. <paramref name="output"/> may alias either input.</summary>
    /// <exception cref="ArgumentException"><paramref name="output"/> is not 32 bytes.</exception>
    public static void Hash(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, Span<byte> output)
    {
        CheckSize(output, HashSize, nameof(output));
        var state = new Blake2s(HashSize);
        state.Update(a);
        state.Update(b);
        state.Finish(output);
    }

    /// <summary>MAC(key, data) = BLAKE2s-128 keyed with <paramref name="key"/> (1..32 bytes in WireGuard: 32 for mac1, 16 for mac2).</summary>
    /// <exception cref="ArgumentException"><paramref name="output16"/> is not 16 bytes, or the key is longer than 32 bytes.</exception>
    public static void Mac(ReadOnlySpan<byte> key, ReadOnlySpan<byte> data, Span<byte> output16)
    {
        CheckSize(output16, MacSize, nameof(output16));
        Blake2s.KeyedHash(key, data, output16);
    }

    /// <summary>
    /// HMAC(key, data) per RFC 2104 with BLAKE2s-256 and a 64-byte block (keys longer than the
    /// block are hashed first). This is not keyed BLAKE2s.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="output32"/> is not 32 bytes.</exception>
    public static void Hmac(ReadOnlySpan<byte> key, ReadOnlySpan<byte> data, Span<byte> output32)
    {
        CheckSize(output32, HashSize, nameof(output32));
        HmacCore(key, data, default, output32);
    }

    /// <summary>KDF1(C, input) = tau0 = HMAC(C, input); t0 = HMAC(tau0, 0x01).</summary>
    /// <exception cref="ArgumentException">An output is not 32 bytes.</exception>
    public static void Kdf1(ReadOnlySpan<byte> chainingKey, ReadOnlySpan<byte> input, Span<byte> t0)
    {
        CheckSize(t0, HashSize, nameof(t0));
        Span<byte> unused = default;
        KdfCore(chainingKey, input, 1, t0, unused, unused);
    }

    /// <summary>KDF2(C, input): t0 as in <see cref="Kdf1"/>, t1 = HMAC(tau0, t0 || 0x02).</summary>
    /// <exception cref="ArgumentException">An output is not 32 bytes, or the outputs overlap.</exception>
    public static void Kdf2(ReadOnlySpan<byte> chainingKey, ReadOnlySpan<byte> input, Span<byte> t0, Span<byte> t1)
    {
        CheckSize(t0, HashSize, nameof(t0));
        CheckSize(t1, HashSize, nameof(t1));
        CheckDisjoint(t0, t1, nameof(t1));
        Span<byte> unused = default;
        KdfCore(chainingKey, input, 2, t0, t1, unused);
    }

    /// <summary>KDF3(C, input): t0, t1 as in <see cref="Kdf2"/>, t2 = HMAC(tau0, t1 || 0x03).</summary>
    /// <exception cref="ArgumentException">An output is not 32 bytes, or the outputs overlap.</exception>
    public static void Kdf3(ReadOnlySpan<byte> chainingKey, ReadOnlySpan<byte> input, Span<byte> t0, Span<byte> t1, Span<byte> t2)
    {
        CheckSize(t0, HashSize, nameof(t0));
        CheckSize(t1, HashSize, nameof(t1));
        CheckSize(t2, HashSize, nameof(t2));
        CheckDisjoint(t0, t1, nameof(t1));
        CheckDisjoint(t0, t2, nameof(t2));
        CheckDisjoint(t1, t2, nameof(t2));
        KdfCore(chainingKey, input, 3, t0, t1, t2);
    }

    // Derives `count` outputs into a private stack buffer and copies them out only at the end,
    // which is what makes every input/output aliasing safe.
    private static void KdfCore(
        ReadOnlySpan<byte> chainingKey, ReadOnlySpan<byte> input, int count, Span<byte> t0, Span<byte> t1, Span<byte> t2)
    {
        // [tau0 | out1 | out2 | out3]
        Span<byte> work = stackalloc byte[4 * HashSize];
        Span<byte> counter = stackalloc byte[1];
        try
        {
            Span<byte> tau0 = work[..HashSize];
            Span<byte> out1 = work.Slice(HashSize, HashSize);
            Span<byte> out2 = work.Slice(2 * HashSize, HashSize);
            Span<byte> out3 = work.Slice(3 * HashSize, HashSize);

            HmacCore(chainingKey, input, default, tau0);
            counter[0] = 1;
            HmacCore(tau0, counter, default, out1);
            if (count >= 2)
            {
                counter[0] = 2;
                HmacCore(tau0, out1, counter, out2);
            }
            if (count >= 3)
            {
                counter[0] = 3;
                HmacCore(tau0, out2, counter, out3);
            }

            out1.CopyTo(t0);
            if (count >= 2)
            {
                out2.CopyTo(t1);
            }
            if (count >= 3)
            {
                out3.CopyTo(t2);
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(work);
        }
    }

    // HMAC(key, data1 || data2) into output (32 bytes). The output is written last, so it may
    // alias the key or the data.
    private static void HmacCore(ReadOnlySpan<byte> key, ReadOnlySpan<byte> data1, ReadOnlySpan<byte> data2, Span<byte> output)
    {
        Span<byte> pad = stackalloc byte[HmacBlockSize];
        Span<byte> inner = stackalloc byte[HashSize];
        try
        {
            if (key.Length > HmacBlockSize)
            {
                Blake2s.Hash(key, pad[..HashSize]);
                pad[HashSize..].Clear();
            }
            else
            {
                key.CopyTo(pad);
                pad[key.Length..].Clear();
            }

            XorPad(pad, InnerPad);
            var state = new Blake2s(HashSize);
            state.Update(pad);
            state.Update(data1);
            state.Update(data2);
            state.Finish(inner);

            XorPad(pad, InnerPad ^ OuterPad);
            state = new Blake2s(HashSize);
            state.Update(pad);
            state.Update(inner);
            state.Finish(output);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(pad);
            CryptographicOperations.ZeroMemory(inner);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void XorPad(Span<byte> pad, byte value)
    {
        ulong mask = 0x0101_0101_0101_0101UL * value;
        Span<ulong> words = MemoryMarshal.Cast<byte, ulong>(pad);
        for (int i = 0; i < words.Length; i++)
        {
            words[i] ^= mask;
        }
    }

    private static void CheckSize(ReadOnlySpan<byte> buffer, int size, string name)
    {
        if (buffer.Length != size)
        {
            ThrowBadSize(size, buffer.Length, name);
        }
    }

    private static void CheckDisjoint(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, string name)
    {
        if (a.Overlaps(b))
        {
            throw new ArgumentException("The KDF outputs must not overlap each other.", name);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowBadSize(int expected, int actual, string name) =>
        throw new ArgumentException($"Expected {expected} bytes, got {actual}.", name);
}
