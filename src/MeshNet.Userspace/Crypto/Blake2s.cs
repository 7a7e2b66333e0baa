using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace MeshNet.Userspace.Crypto;

/// <summary>
/// BLAKE2s (RFC 7693): the hash and keyed MAC behind WireGuard's HASH, MAC and HMAC.
/// Incremental (<see cref="Update"/> any number of times, then <see cref="Finish"/> once),
/// keyed (0..32-byte key) or unkeyed, digest size 1..32 bytes. No sequential-mode parameters
/// (salt, personalisation, tree hashing) because WireGuard uses none.
/// </summary>
/// <remarks>
/// <para>Zero heap allocations: the whole state (chaining value, one pending block, byte
/// counter) lives inside this struct, in fixed-size inline buffers.</para>
/// <para>Ownership: the state holds the key block and message bytes, so treat an instance as
/// a secret. Keep it in a local and pass it by <c>ref</c>; every copy of the struct is a
/// second copy of that secret (and a forked hash state). <see cref="Finish"/> zeroes the whole
/// state, after which the instance is spent and every member except the constructor
/// throws <see cref="InvalidOperationException"/>. An instance that is abandoned before
/// <see cref="Finish"/> is not zeroed.</para>
/// <para>Not thread-safe: one instance, one thread at a time. The static helpers are
/// thread-safe. Outputs may alias inputs: the digest is written only after all input has
/// been absorbed.</para>
/// </remarks>
internal struct Blake2s
{
    /// <summary>Size of a BLAKE2s block in bytes.</summary>
    public const int BlockSize = 64;

    /// <summary>Largest digest size in bytes (BLAKE2s-256).</summary>
    public const int MaxOutputSize = 32;

    /// <summary>Largest key size in bytes.</summary>
    public const int MaxKeySize = 32;

    // Initialisation vector: the SHA-256 IV (RFC 7693 section 2.6).
    private const uint IV0 = 0x6A09E667;
    private const uint IV1 = 0xBB67AE85;
    private const uint IV2 = 0x3C6EF372;
    private const uint IV3 = 0xA54FF53A;
    private const uint IV4 = 0x510E527F;
    private const uint IV5 = 0x9B05688C;
    private const uint IV6 = 0x1F83D9AB;
    private const uint IV7 = 0x5BE0CD19;

    private StateWords _h;        // chaining value h[0..7]
    private Block _buffer;        // pending input: 0..64 bytes, never compressed until more input (or Finish) shows it is not the last block
    private ulong _counter;       // t: bytes compressed so far (RFC 7693 keeps it as two 32-bit words t0, t1)
    private int _bufferLength;    // bytes used in _buffer
    private int _outputSize;      // nn, 1..32; 0 marks a default or finished (spent) instance

    /// <summary>Starts a hash (empty <paramref name="key"/>) or a keyed MAC.</summary>
    /// <param name="outputSize">Digest size in bytes, 1..32.</param>
    /// <param name="key">The key, 0..32 bytes; copied into the state.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="outputSize"/> is outside 1..32.</exception>
    /// <exception cref="ArgumentException"><paramref name="key"/> is longer than 32 bytes.</exception>
    public Blake2s(int outputSize, ReadOnlySpan<byte> key = default)
    {
        if ((uint)(outputSize - 1) >= MaxOutputSize)
        {
            throw new ArgumentOutOfRangeException(nameof(outputSize), outputSize, $"A BLAKE2s digest is 1..{MaxOutputSize} bytes.");
        }
        if (key.Length > MaxKeySize)
        {
            throw new ArgumentException($"A BLAKE2s key is at most {MaxKeySize} bytes, not {key.Length}.", nameof(key));
        }

        // Parameter block word 0: digest length, key length, fanout 1, depth 1 (sequential mode).
        _h[0] = IV0 ^ 0x0101_0000u ^ ((uint)key.Length << 8) ^ (uint)outputSize;
        _h[1] = IV1;
        _h[2] = IV2;
        _h[3] = IV3;
        _h[4] = IV4;
        _h[5] = IV5;
        _h[6] = IV6;
        _h[7] = IV7;
        _outputSize = outputSize;

        if (!key.IsEmpty)
        {
            // The key, zero-padded to a full block, is the first block of input. It stays
            // pending like any other block: with no further data it is also the last one.
            Span<byte> buffer = _buffer;
            key.CopyTo(buffer);
            _bufferLength = BlockSize;
        }
    }

    /// <summary>Absorbs <paramref name="data"/>.</summary>
    /// <exception cref="InvalidOperationException">The instance is default or already finished.</exception>
    public void Update(ReadOnlySpan<byte> data)
    {
        ThrowIfSpent();
        if (data.IsEmpty)
        {
            return;
        }

        Span<byte> buffer = _buffer;
        int free = BlockSize - _bufferLength;
        if (data.Length > free)
        {
            // More input follows whatever is pending, so the pending block is not the last:
            // complete and compress it, then compress whole blocks straight from the input,
            // always keeping at least one byte back for Finish.
            if (_bufferLength != 0)
            {
                data[..free].CopyTo(buffer[_bufferLength..]);
                data = data[free..];
                _counter += BlockSize;
                Compress(ref _h, buffer, _counter, 0);
                _bufferLength = 0;
            }
            while (data.Length > BlockSize)
            {
                _counter += BlockSize;
                Compress(ref _h, data, _counter, 0);
                data = data[BlockSize..];
            }
        }

        data.CopyTo(buffer[_bufferLength..]);
        _bufferLength += data.Length;
    }

    /// <summary>
    /// Compresses the final block, writes the digest and zeroes the state. The instance is
    /// spent afterwards.
    /// </summary>
    /// <param name="output">Receives the digest; its length must equal the output size given to the constructor.</param>
    /// <exception cref="ArgumentException"><paramref name="output"/> has the wrong length.</exception>
    /// <exception cref="InvalidOperationException">The instance is default or already finished.</exception>
    public void Finish(Span<byte> output)
    {
        ThrowIfSpent();
        if (output.Length != _outputSize)
        {
            throw new ArgumentException($"This BLAKE2s instance produces {_outputSize} bytes, not {output.Length}.", nameof(output));
        }

        Span<byte> buffer = _buffer;
        buffer[_bufferLength..].Clear();
        _counter += (uint)_bufferLength;
        Compress(ref _h, buffer, _counter, uint.MaxValue);

        ReadOnlySpan<uint> h = _h;
        int fullWords = output.Length >> 2;
        for (int i = 0; i < fullWords; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(output[(i << 2)..], h[i]);
        }
        for (int i = fullWords << 2; i < output.Length; i++)
        {
            output[i] = (byte)(h[i >> 2] >> ((i & 3) << 3));
        }

        // ZeroMemory is opaque to the optimiser, so this is not elided as a dead store even
        // when the caller's instance is a local that is never read again.
        CryptographicOperations.ZeroMemory(MemoryMarshal.AsBytes(MemoryMarshal.CreateSpan(ref this, 1)));
    }

    /// <summary>Unkeyed BLAKE2s of <paramref name="data"/>; the digest size is <c>output.Length</c> (1..32).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="output"/> is not 1..32 bytes.</exception>
    public static void Hash(ReadOnlySpan<byte> data, Span<byte> output)
    {
        var state = new Blake2s(output.Length);
        state.Update(data);
        state.Finish(output);
    }

    /// <summary>Keyed BLAKE2s (MAC) of <paramref name="data"/>; the digest size is <c>output.Length</c> (1..32).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="output"/> is not 1..32 bytes.</exception>
    /// <exception cref="ArgumentException"><paramref name="key"/> is longer than 32 bytes.</exception>
    public static void KeyedHash(ReadOnlySpan<byte> key, ReadOnlySpan<byte> data, Span<byte> output)
    {
        var state = new Blake2s(output.Length, key);
        state.Update(data);
        state.Finish(output);
    }

    private readonly void ThrowIfSpent()
    {
        if (_outputSize == 0)
        {
            ThrowSpent();
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowSpent() =>
        throw new InvalidOperationException("This BLAKE2s instance is finished or was never initialised; create a new one.");

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Load(ref byte block, int offset)
    {
        uint value = Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref block, offset));
        return BitConverter.IsLittleEndian ? value : BinaryPrimitives.ReverseEndianness(value);
    }

    // The mixing function G (RFC 7693 section 3.1) with BLAKE2s rotations 16, 12, 8, 7.
    // Inlined into Compress so that the working vector stays in locals (registers).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void G(ref uint a, ref uint b, ref uint c, ref uint d, uint x, uint y)
    {
        a += b + x;
        d = BitOperations.RotateRight(d ^ a, 16);
        c += d;
        b = BitOperations.RotateRight(b ^ c, 12);
        a += b + y;
        d = BitOperations.RotateRight(d ^ a, 8);
        c += d;
        b = BitOperations.RotateRight(b ^ c, 7);
    }

    /// <summary>
    /// The compression function F (RFC 7693 section 3.2), fully unrolled: ten rounds with the
    /// message schedule sigma applied at compile time. <paramref name="finalFlag"/> is
    /// 0xFFFFFFFF for the last block, else 0.
    /// </summary>
    /// <remarks>
    /// The message words and working vector are locals; managed code cannot reliably scrub
    /// registers or spill slots, so (like other managed and Go implementations) they are not
    /// zeroed.
    /// </remarks>
    private static void Compress(ref StateWords h, ReadOnlySpan<byte> block, ulong counter, uint finalFlag)
    {
        if (block.Length < BlockSize)
        {
            ThrowShortBlock();
        }
        ref byte p = ref MemoryMarshal.GetReference(block);
        uint m0 = Load(ref p, 0), m1 = Load(ref p, 4), m2 = Load(ref p, 8), m3 = Load(ref p, 12);
        uint m4 = Load(ref p, 16), m5 = Load(ref p, 20), m6 = Load(ref p, 24), m7 = Load(ref p, 28);
        uint m8 = Load(ref p, 32), m9 = Load(ref p, 36), m10 = Load(ref p, 40), m11 = Load(ref p, 44);
        uint m12 = Load(ref p, 48), m13 = Load(ref p, 52), m14 = Load(ref p, 56), m15 = Load(ref p, 60);

        uint h0 = h[0], h1 = h[1], h2 = h[2], h3 = h[3], h4 = h[4], h5 = h[5], h6 = h[6], h7 = h[7];
        uint v0 = h0, v1 = h1, v2 = h2, v3 = h3, v4 = h4, v5 = h5, v6 = h6, v7 = h7;
        uint v8 = IV0, v9 = IV1, v10 = IV2, v11 = IV3;
        uint v12 = IV4 ^ (uint)counter;
        uint v13 = IV5 ^ (uint)(counter >> 32);
        uint v14 = IV6 ^ finalFlag;
        uint v15 = IV7;

        // Round 0: columns, then diagonals.
        G(ref v0, ref v4, ref v8, ref v12, m0, m1);
        G(ref v1, ref v5, ref v9, ref v13, m2, m3);
        G(ref v2, ref v6, ref v10, ref v14, m4, m5);
        G(ref v3, ref v7, ref v11, ref v15, m6, m7);
        G(ref v0, ref v5, ref v10, ref v15, m8, m9);
        G(ref v1, ref v6, ref v11, ref v12, m10, m11);
        G(ref v2, ref v7, ref v8, ref v13, m12, m13);
        G(ref v3, ref v4, ref v9, ref v14, m14, m15);
        // Round 1: columns, then diagonals.
        G(ref v0, ref v4, ref v8, ref v12, m14, m10);
        G(ref v1, ref v5, ref v9, ref v13, m4, m8);
        G(ref v2, ref v6, ref v10, ref v14, m9, m15);
        G(ref v3, ref v7, ref v11, ref v15, m13, m6);
        G(ref v0, ref v5, ref v10, ref v15, m1, m12);
        G(ref v1, ref v6, ref v11, ref v12, m0, m2);
        G(ref v2, ref v7, ref v8, ref v13, m11, m7);
        G(ref v3, ref v4, ref v9, ref v14, m5, m3);
        // Round 2: columns, then diagonals.
        G(ref v0, ref v4, ref v8, ref v12, m11, m8);
        G(ref v1, ref v5, ref v9, ref v13, m12, m0);
        G(ref v2, ref v6, ref v10, ref v14, m5, m2);
        G(ref v3, ref v7, ref v11, ref v15, m15, m13);
        G(ref v0, ref v5, ref v10, ref v15, m10, m14);
        G(ref v1, ref v6, ref v11, ref v12, m3, m6);
        G(ref v2, ref v7, ref v8, ref v13, m7, m1);
        G(ref v3, ref v4, ref v9, ref v14, m9, m4);
        // Round 3: columns, then diagonals.
        G(ref v0, ref v4, ref v8, ref v12, m7, m9);
        G(ref v1, ref v5, ref v9, ref v13, m3, m1);
        G(ref v2, ref v6, ref v10, ref v14, m13, m12);
        G(ref v3, ref v7, ref v11, ref v15, m11, m14);
        G(ref v0, ref v5, ref v10, ref v15, m2, m6);
        G(ref v1, ref v6, ref v11, ref v12, m5, m10);
        G(ref v2, ref v7, ref v8, ref v13, m4, m0);
        G(ref v3, ref v4, ref v9, ref v14, m15, m8);
        // Round 4: columns, then diagonals.
        G(ref v0, ref v4, ref v8, ref v12, m9, m0);
        G(ref v1, ref v5, ref v9, ref v13, m5, m7);
        G(ref v2, ref v6, ref v10, ref v14, m2, m4);
        G(ref v3, ref v7, ref v11, ref v15, m10, m15);
        G(ref v0, ref v5, ref v10, ref v15, m14, m1);
        G(ref v1, ref v6, ref v11, ref v12, m11, m12);
        G(ref v2, ref v7, ref v8, ref v13, m6, m8);
        G(ref v3, ref v4, ref v9, ref v14, m3, m13);
        // Round 5: columns, then diagonals.
        G(ref v0, ref v4, ref v8, ref v12, m2, m12);
        G(ref v1, ref v5, ref v9, ref v13, m6, m10);
        G(ref v2, ref v6, ref v10, ref v14, m0, m11);
        G(ref v3, ref v7, ref v11, ref v15, m8, m3);
        G(ref v0, ref v5, ref v10, ref v15, m4, m13);
        G(ref v1, ref v6, ref v11, ref v12, m7, m5);
        G(ref v2, ref v7, ref v8, ref v13, m15, m14);
        G(ref v3, ref v4, ref v9, ref v14, m1, m9);
        // Round 6: columns, then diagonals.
        G(ref v0, ref v4, ref v8, ref v12, m12, m5);
        G(ref v1, ref v5, ref v9, ref v13, m1, m15);
        G(ref v2, ref v6, ref v10, ref v14, m14, m13);
        G(ref v3, ref v7, ref v11, ref v15, m4, m10);
        G(ref v0, ref v5, ref v10, ref v15, m0, m7);
        G(ref v1, ref v6, ref v11, ref v12, m6, m3);
        G(ref v2, ref v7, ref v8, ref v13, m9, m2);
        G(ref v3, ref v4, ref v9, ref v14, m8, m11);
        // Round 7: columns, then diagonals.
        G(ref v0, ref v4, ref v8, ref v12, m13, m11);
        G(ref v1, ref v5, ref v9, ref v13, m7, m14);
        G(ref v2, ref v6, ref v10, ref v14, m12, m1);
        G(ref v3, ref v7, ref v11, ref v15, m3, m9);
        G(ref v0, ref v5, ref v10, ref v15, m5, m0);
        G(ref v1, ref v6, ref v11, ref v12, m15, m4);
        G(ref v2, ref v7, ref v8, ref v13, m8, m6);
        G(ref v3, ref v4, ref v9, ref v14, m2, m10);
        // Round 8: columns, then diagonals.
        G(ref v0, ref v4, ref v8, ref v12, m6, m15);
        G(ref v1, ref v5, ref v9, ref v13, m14, m9);
        G(ref v2, ref v6, ref v10, ref v14, m11, m3);
        G(ref v3, ref v7, ref v11, ref v15, m0, m8);
        G(ref v0, ref v5, ref v10, ref v15, m12, m2);
        G(ref v1, ref v6, ref v11, ref v12, m13, m7);
        G(ref v2, ref v7, ref v8, ref v13, m1, m4);
        G(ref v3, ref v4, ref v9, ref v14, m10, m5);
        // Round 9: columns, then diagonals.
        G(ref v0, ref v4, ref v8, ref v12, m10, m2);
        G(ref v1, ref v5, ref v9, ref v13, m8, m4);
        G(ref v2, ref v6, ref v10, ref v14, m7, m6);
        G(ref v3, ref v7, ref v11, ref v15, m1, m5);
        G(ref v0, ref v5, ref v10, ref v15, m15, m11);
        G(ref v1, ref v6, ref v11, ref v12, m9, m14);
        G(ref v2, ref v7, ref v8, ref v13, m3, m12);
        G(ref v3, ref v4, ref v9, ref v14, m13, m0);

        h[0] = h0 ^ v0 ^ v8;
        h[1] = h1 ^ v1 ^ v9;
        h[2] = h2 ^ v2 ^ v10;
        h[3] = h3 ^ v3 ^ v11;
        h[4] = h4 ^ v4 ^ v12;
        h[5] = h5 ^ v5 ^ v13;
        h[6] = h6 ^ v6 ^ v14;
        h[7] = h7 ^ v7 ^ v15;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowShortBlock() => throw new ArgumentException("A BLAKE2s block is 64 bytes.");

    [InlineArray(8)]
    private struct StateWords
    {
        private uint _element0;
    }

    [InlineArray(BlockSize)]
    private struct Block
    {
        private byte _element0;
    }
}
