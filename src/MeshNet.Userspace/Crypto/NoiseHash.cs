namespace MeshNet.Userspace.Crypto;

// STUB: to be implemented (helper "crypto").
internal static class NoiseHash
{
    public const int HashSize = 32;
    public const int MacSize = 16;

    public static void Hash(ReadOnlySpan<byte> a, Span<byte> output) => throw new NotImplementedException();

    public static void Hash(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, Span<byte> output) => throw new NotImplementedException();

    public static void Mac(ReadOnlySpan<byte> key, ReadOnlySpan<byte> data, Span<byte> output16) => throw new NotImplementedException();

    public static void Hmac(ReadOnlySpan<byte> key, ReadOnlySpan<byte> data, Span<byte> output32) => throw new NotImplementedException();

    public static void Kdf1(ReadOnlySpan<byte> chainingKey, ReadOnlySpan<byte> input, Span<byte> t0) => throw new NotImplementedException();

    public static void Kdf2(ReadOnlySpan<byte> chainingKey, ReadOnlySpan<byte> input, Span<byte> t0, Span<byte> t1) => throw new NotImplementedException();

    public static void Kdf3(ReadOnlySpan<byte> chainingKey, ReadOnlySpan<byte> input, Span<byte> t0, Span<byte> t1, Span<byte> t2) => throw new NotImplementedException();
}
