using System.Buffers.Binary;
using System.Text;
using MeshNet.Userspace.Net;
using MeshNet.Userspace.Stack;
using MeshNet.Userspace.Stack.Tcp;

namespace MeshNet.Userspace.Tests.Tcp;

/// <summary>A TCP segment as a test writes or reads it: every header field and option, and the payload.</summary>
internal sealed record TcpTestSegment
{
    public ushort SourcePort { get; init; }
    public ushort DestinationPort { get; init; }
    public uint Seq { get; init; }
    public uint Ack { get; init; }
    public TcpFlags Flags { get; init; }
    public ushort Window { get; init; } = 65535;
    public ushort? Mss { get; init; }
    public int? WindowScale { get; init; }
    public bool SackPermitted { get; init; }
    public (uint Val, uint Ecr)? Timestamps { get; init; }
    public (uint Start, uint End)[] Sacks { get; init; } = [];
    public byte[] Payload { get; init; } = [];

    /// <summary>Raw option bytes to use instead of the fields above (malformed-option tests).</summary>
    public byte[]? RawOptions { get; init; }

    public bool Syn => (Flags & TcpFlags.Syn) != 0;
    public bool Fin => (Flags & TcpFlags.Fin) != 0;
    public bool Rst => (Flags & TcpFlags.Rst) != 0;
    public bool HasAck => (Flags & TcpFlags.Ack) != 0;
    public int SeqLength => Payload.Length + (Syn ? 1 : 0) + (Fin ? 1 : 0);
    public uint SeqEnd => Seq + (uint)SeqLength;
    public string Text => Encoding.ASCII.GetString(Payload);

    /// <summary>Serializes with a correct checksum for the given addresses.</summary>
    public byte[] Build(NetAddress source, NetAddress destination)
    {
        byte[] options = RawOptions ?? BuildOptions();
        int optionsLength = (options.Length + 3) & ~3;
        var packet = new byte[TcpSegment.HeaderLength + optionsLength + Payload.Length];
        TcpSegment.WriteHeader(packet, SourcePort, DestinationPort, Seq, Ack, Flags, Window, optionsLength);
        options.CopyTo(packet, TcpSegment.HeaderLength);
        Payload.CopyTo(packet, TcpSegment.HeaderLength + optionsLength);
        TcpSegment.SetChecksum(packet, source, destination);
        return packet;
    }

    private byte[] BuildOptions()
    {
        var bytes = new List<byte>();
        if (Mss is { } mss)
        {
            bytes.AddRange([2, 4, (byte)(mss >> 8), (byte)mss]);
        }
        if (WindowScale is { } ws)
        {
            bytes.AddRange([1, 3, 3, (byte)ws]);
        }
        if (SackPermitted)
        {
            bytes.AddRange([1, 1, 4, 2]);
        }
        if (Timestamps is { } ts)
        {
            var t = new byte[12];
            t[0] = 1;
            t[1] = 1;
            t[2] = 8;
            t[3] = 10;
            BinaryPrimitives.WriteUInt32BigEndian(t.AsSpan(4), ts.Val);
            BinaryPrimitives.WriteUInt32BigEndian(t.AsSpan(8), ts.Ecr);
            bytes.AddRange(t);
        }
        if (Sacks.Length > 0)
        {
            bytes.AddRange([1, 1, 5, (byte)(2 + (8 * Sacks.Length))]);
            foreach (var (start, end) in Sacks)
            {
                var b = new byte[8];
                BinaryPrimitives.WriteUInt32BigEndian(b, start);
                BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(4), end);
                bytes.AddRange(b);
            }
        }
        return [.. bytes];
    }

    /// <summary>Parses a segment the stack emitted (checksum verified).</summary>
    public static TcpTestSegment Parse(NetAddress source, NetAddress destination, byte[] packet)
    {
        var drop = TcpSegment.TryParse(source, destination, packet, out var s);
        if (drop is not null)
        {
            throw new InvalidOperationException($"The stack emitted an invalid segment: {drop}");
        }
        var sacks = new (uint, uint)[s.Options.SackCount];
        for (int i = 0; i < sacks.Length; i++)
        {
            sacks[i] = (s.Options.SackStart(i), s.Options.SackEnd(i));
        }
        return new TcpTestSegment
        {
            SourcePort = s.SourcePort,
            DestinationPort = s.DestinationPort,
            Seq = s.Seq,
            Ack = s.Ack,
            Flags = s.Flags,
            Window = s.Window,
            Mss = s.Options.HasMss ? s.Options.Mss : null,
            WindowScale = s.Options.HasWindowScale ? s.Options.WindowScale : null,
            SackPermitted = s.Options.SackPermitted,
            Timestamps = s.Options.HasTimestamps ? (s.Options.TsVal, s.Options.TsEcr) : null,
            Sacks = sacks,
            Payload = s.Payload.ToArray(),
        };
    }

    public override string ToString()
    {
        var text = new StringBuilder();
        text.Append($"{SourcePort}->{DestinationPort} [{Flags}] seq={Seq} ack={Ack} win={Window} len={Payload.Length}");
        if (Mss is not null)
        {
            text.Append($" mss={Mss}");
        }
        if (WindowScale is not null)
        {
            text.Append($" ws={WindowScale}");
        }
        if (SackPermitted)
        {
            text.Append(" sackOK");
        }
        if (Timestamps is { } ts)
        {
            text.Append($" ts={ts.Val}/{ts.Ecr}");
        }
        foreach (var (start, end) in Sacks)
        {
            text.Append($" sack={start}-{end}");
        }
        return text.ToString();
    }
}
