namespace MeshNet.Userspace.Crypto;

// STUB: to be implemented (helper "crypto").
internal struct Blake2s
{
    public const int BlockSize = 64;
    public const int MaxOutputSize = 32;
    public const int MaxKeySize = 32;

    public Blake2s(int outputSize, ReadOnlySpan<byte> key = default) => throw new NotImplementedException();

    public void Update(ReadOnlySpan<byte> data) => throw new NotImplementedException();

    public void Finish(Span<byte> output) => throw new NotImplementedException();

    public static void Hash(ReadOnlySpan<byte> data, Span<byte> output) => throw new NotImplementedException();

    public static void KeyedHash(ReadOnlySpan<byte> key, ReadOnlySpan<byte> data, Span<byte> output) => throw new NotImplementedException();
}
