using System.Runtime.CompilerServices;

namespace MeshNet.Userspace.WireGuard;

/// <summary>
/// Sliding-window replay protection for transport-data counters (RFC 6479), with the geometry
/// of wireguard-go: a ring of 128 blocks of 64 bits, of which one block is "redundant" so that
/// advancing the window only ever clears whole blocks. Any counter within
/// <see cref="WindowSize"/> (8128) of the highest counter seen so far is accepted exactly once.
/// </summary>
/// <remarks>
/// <para>Thread safety: none. The caller serializes all calls (the receiving keypair holds a
/// lock around <see cref="ValidateCounter"/> and <see cref="Reset"/>).</para>
/// <para>The filter must only be consulted after the packet has been authenticated: it records
/// every counter it accepts, so an unauthenticated counter would poison the window.</para>
/// <para>Allocation: the bitmap is inline; nothing is allocated after construction.</para>
/// </remarks>
internal sealed class ReplayFilter
{
    /// <summary>The number of counters behind the highest one seen that are still accepted.</summary>
    public const int WindowSize = (BlockCount - 1) * BitsPerBlock;

    private const int BitsPerBlock = 64;
    private const int BlockShift = 6; // log2(BitsPerBlock)
    private const int BlockCount = 128; // must be a power of two; 8192 bits in all

    // Highest counter accepted so far (0 before the first packet, which is indistinguishable
    // from "counter 0 seen" only in the bitmap, never in this field).
    private ulong _highest;

    // Bit (c mod 64) of block ((c / 64) mod 128) is set when counter c has been accepted.
    private Bitmap _bitmap;

    /// <summary>Forgets every counter seen: the filter is as new.</summary>
    public void Reset()
    {
        _highest = 0;
        ((Span<ulong>)_bitmap).Clear();
    }

    /// <summary>
    /// Decides whether a received counter is fresh, and if so records it as seen.
    /// </summary>
    /// <param name="counter">The counter of an authenticated transport-data message.</param>
    /// <param name="limit">Exclusive upper bound for acceptable counters (RejectAfterMessages).</param>
    /// <returns>
    /// False when <paramref name="counter"/> is at or beyond <paramref name="limit"/>, more than
    /// <see cref="WindowSize"/> behind the highest counter seen, or already seen; otherwise true
    /// (and the counter is now seen).
    /// </returns>
    public bool ValidateCounter(ulong counter, ulong limit)
    {
        if (counter >= limit)
        {
            return false;
        }

        ulong block = counter >> BlockShift;
        if (counter > _highest)
        {
            // Slide the window forward: every block strictly after the current head up to and
            // including the new head starts empty. Capped at the ring size (a long jump clears all).
            ulong head = _highest >> BlockShift;
            ulong advance = Math.Min(block - head, BlockCount);
            for (ulong i = 1; i <= advance; i++)
            {
                _bitmap[(int)((head + i) & (BlockCount - 1))] = 0;
            }
            _highest = counter;
        }
        else if (_highest - counter > WindowSize)
        {
            return false; // behind the window
        }

        ref ulong word = ref _bitmap[(int)(block & (BlockCount - 1))];
        ulong bit = 1UL << (int)(counter & (BitsPerBlock - 1));
        if ((word & bit) != 0)
        {
            return false; // replayed
        }
        word |= bit;
        return true;
    }

    [InlineArray(BlockCount)]
    private struct Bitmap
    {
        private ulong _element0;
    }
}
