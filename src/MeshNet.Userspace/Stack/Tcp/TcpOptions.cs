using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>
/// The TCP options of one segment (RFC 9293 §3.2 MSS, RFC 7323 window scale and timestamps,
/// RFC 2018 SACK-permitted and SACK blocks), parsed without allocation, and the writers for
/// the option layouts the stack sends (the same layouts as Linux, 4-byte aligned with NOPs).
/// </summary>
internal struct TcpOptions
{
    public const byte KindEnd = 0;
    public const byte KindNop = 1;
    public const byte KindMss = 2;
    public const byte KindWindowScale = 3;
    public const byte KindSackPermitted = 4;
    public const byte KindSack = 5;
    public const byte KindTimestamps = 8;

    /// <summary>Largest window scale shift (RFC 7323 §2.3).</summary>
    public const int MaxWindowScale = 14;

    /// <summary>Bytes of the timestamps option as sent (NOP, NOP, kind, length, TSval, TSecr).</summary>
    public const int TimestampsLength = 12;

    public bool HasMss;
    public ushort Mss;
    public bool HasWindowScale;
    public byte WindowScale;
    public bool SackPermitted;
    public bool HasTimestamps;
    public uint TsVal;
    public uint TsEcr;
    public int SackCount;
    public SackBlocks Sacks;

    /// <summary>Up to four SACK blocks: start/end pairs in wire order.</summary>
    [InlineArray(8)]
    public struct SackBlocks
    {
        private uint _element;
    }

    public readonly uint SackStart(int index) => Sacks[index * 2];

    public readonly uint SackEnd(int index) => Sacks[(index * 2) + 1];

    /// <summary>
    /// Parses the options area. Returns false for a malformed area: an option running past
    /// the end, a length below 2, or a known option with the wrong length. Unknown options are
    /// skipped; a window scale above 14 is taken as 14 (RFC 7323 §2.3).
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> area, out TcpOptions options)
    {
        options = default;
        int i = 0;
        while (i < area.Length)
        {
            byte kind = area[i];
            if (kind == KindEnd)
            {
                break;
            }
            if (kind == KindNop)
            {
                i++;
                continue;
            }
            if (i + 1 >= area.Length)
            {
                return false;
            }
            int length = area[i + 1];
            if (length < 2 || i + length > area.Length)
            {
                return false;
            }
            var body = area.Slice(i + 2, length - 2);
            switch (kind)
            {
                case KindMss:
                    if (length != 4)
                    {
                        return false;
                    }
                    options.HasMss = true;
                    options.Mss = BinaryPrimitives.ReadUInt16BigEndian(body);
                    break;
                case KindWindowScale:
                    if (length != 3)
                    {
                        return false;
                    }
                    options.HasWindowScale = true;
                    options.WindowScale = Math.Min(body[0], (byte)MaxWindowScale);
                    break;
                case KindSackPermitted:
                    if (length != 2)
                    {
                        return false;
                    }
                    options.SackPermitted = true;
                    break;
                case KindSack:
                    if ((length - 2) % 8 != 0 || length == 2)
                    {
                        return false;
                    }
                    int count = (length - 2) / 8; // at most 4 fit in 40 bytes
                    for (int b = 0; b < count; b++)
                    {
                        options.Sacks[b * 2] = BinaryPrimitives.ReadUInt32BigEndian(body[(b * 8)..]);
                        options.Sacks[(b * 2) + 1] = BinaryPrimitives.ReadUInt32BigEndian(body[((b * 8) + 4)..]);
                    }
                    options.SackCount = count;
                    break;
                case KindTimestamps:
                    if (length != 10)
                    {
                        return false;
                    }
                    options.HasTimestamps = true;
                    options.TsVal = BinaryPrimitives.ReadUInt32BigEndian(body);
                    options.TsEcr = BinaryPrimitives.ReadUInt32BigEndian(body[4..]);
                    break;
                default:
                    break; // unknown options are ignored (RFC 9293 §3.2)
            }
            i += length;
        }
        return true;
    }

    /// <summary>Length of the options of a SYN or SYN-ACK with these choices.</summary>
    public static int SynLength(bool windowScale, bool sackPermitted, bool timestamps) =>
        4 + (timestamps ? 12 : sackPermitted ? 4 : 0) + (windowScale ? 4 : 0);

    /// <summary>Writes the options of a SYN or SYN-ACK; returns the length (a multiple of 4).</summary>
    public static int WriteSyn(Span<byte> destination, ushort mss, int windowScale, bool sackPermitted, bool timestamps, uint tsVal, uint tsEcr)
    {
        int i = 0;
        destination[i++] = KindMss;
        destination[i++] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(destination[i..], mss);
        i += 2;
        if (timestamps)
        {
            if (sackPermitted)
            {
                destination[i++] = KindSackPermitted;
                destination[i++] = 2;
            }
            else
            {
                destination[i++] = KindNop;
                destination[i++] = KindNop;
            }
            destination[i++] = KindTimestamps;
            destination[i++] = 10;
            BinaryPrimitives.WriteUInt32BigEndian(destination[i..], tsVal);
            BinaryPrimitives.WriteUInt32BigEndian(destination[(i + 4)..], tsEcr);
            i += 8;
        }
        else if (sackPermitted)
        {
            destination[i++] = KindNop;
            destination[i++] = KindNop;
            destination[i++] = KindSackPermitted;
            destination[i++] = 2;
        }
        if (windowScale >= 0)
        {
            destination[i++] = KindNop;
            destination[i++] = KindWindowScale;
            destination[i++] = 3;
            destination[i++] = (byte)windowScale;
        }
        return i;
    }

    /// <summary>Writes NOP, NOP, timestamps; returns 12.</summary>
    public static int WriteTimestamps(Span<byte> destination, uint tsVal, uint tsEcr)
    {
        destination[0] = KindNop;
        destination[1] = KindNop;
        destination[2] = KindTimestamps;
        destination[3] = 10;
        BinaryPrimitives.WriteUInt32BigEndian(destination[4..], tsVal);
        BinaryPrimitives.WriteUInt32BigEndian(destination[8..], tsEcr);
        return TimestampsLength;
    }

    /// <summary>Length of a SACK option carrying <paramref name="blocks"/> blocks (with its two NOPs).</summary>
    public static int SackLength(int blocks) => blocks == 0 ? 0 : 4 + (8 * blocks);

    /// <summary>Writes NOP, NOP, SACK with the given start/end pairs; returns the length.</summary>
    public static int WriteSack(Span<byte> destination, ReadOnlySpan<uint> pairs)
    {
        int blocks = pairs.Length / 2;
        if (blocks == 0)
        {
            return 0;
        }
        destination[0] = KindNop;
        destination[1] = KindNop;
        destination[2] = KindSack;
        destination[3] = (byte)(2 + (8 * blocks));
        for (int b = 0; b < pairs.Length; b++)
        {
            BinaryPrimitives.WriteUInt32BigEndian(destination[(4 + (4 * b))..], pairs[b]);
        }
        return 4 + (8 * blocks);
    }
}
