using System.Runtime.InteropServices;

namespace MeshNet.Benchmarks.Infrastructure;

/// <summary>
/// Direct calls into the libsodium that NSec ships, for a baseline of the bare Curve25519
/// arithmetic: no key handles, no secure-memory allocation, no managed wrapper.
/// </summary>
internal static unsafe partial class Libsodium
{
    private const string Library = "libsodium";

    public const int ScalarSize = 32;

    /// <summary>q = n · p (variable-base X25519). Returns false for an all-zero result.</summary>
    public static bool ScalarMult(Span<byte> q, ReadOnlySpan<byte> n, ReadOnlySpan<byte> p)
    {
        fixed (byte* qp = q)
        fixed (byte* np = n)
        fixed (byte* pp = p)
        {
            return crypto_scalarmult_curve25519(qp, np, pp) == 0;
        }
    }

    /// <summary>q = n · B (fixed-base: deriving a public key).</summary>
    public static bool ScalarMultBase(Span<byte> q, ReadOnlySpan<byte> n)
    {
        fixed (byte* qp = q)
        fixed (byte* np = n)
        {
            return crypto_scalarmult_curve25519_base(qp, np) == 0;
        }
    }

    [LibraryImport(Library)]
    private static partial int crypto_scalarmult_curve25519(byte* q, byte* n, byte* p);

    [LibraryImport(Library)]
    private static partial int crypto_scalarmult_curve25519_base(byte* q, byte* n);
}
