namespace MeshNet.Userspace.Crypto;

// STUB: to be implemented (helper "crypto").
internal static class Tai64N
{
    public const int Size = 12;

    public static void Write(DateTimeOffset time, Span<byte> destination) => throw new NotImplementedException();

    public static bool IsAfter(ReadOnlySpan<byte> candidate, ReadOnlySpan<byte> previous) => throw new NotImplementedException();
}
