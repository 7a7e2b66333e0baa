using MeshNet.Userspace.Stack;
using MeshNet.Userspace.Stack.Tcp;

namespace MeshNet.Userspace.Tests.Tcp;

/// <summary>
/// The scripted peer of one connection: tracks its own sequence numbers and timestamp clock
/// and what it has seen of ours, and builds segments with the right ports and options.
/// </summary>
internal sealed class TcpTestConnection(TcpHarness harness, ushort localPort, ushort remotePort, PeerOptions peer)
{
    public TcpHarness H { get; } = harness;

    public PeerOptions Peer { get; } = peer;

    public TcpControlBlock Cb { get; set; } = null!;

    public TcpListener? Listener { get; init; }

    public ushort LocalPort { get; } = localPort;

    public ushort RemotePort { get; } = remotePort;

    public TcpFlowKey Key => new(TcpHarness.LocalAddress, LocalPort, TcpHarness.RemoteAddress, RemotePort);

    /// <summary>The peer's next sequence number.</summary>
    public uint PeerSeq { get; set; }

    /// <summary>Our ISS as seen in our SYN or SYN-ACK.</summary>
    public uint OurIss { get; set; }

    /// <summary>The highest sequence number the stack has sent + 1 (what the peer acknowledges when it has everything).</summary>
    public uint OurNext { get; set; }

    /// <summary>The peer's timestamp clock.</summary>
    public uint PeerTs { get; set; } = 100;

    /// <summary>The last TSval the stack sent (echoed by the peer).</summary>
    public uint EchoTs { get; set; }

    public ushort Window { get; set; } = 65535;

    public TcpTestSegment SynSegment()
    {
        PeerSeq = Peer.Iss;
        var syn = new TcpTestSegment
        {
            SourcePort = RemotePort,
            DestinationPort = LocalPort,
            Seq = PeerSeq,
            Flags = TcpFlags.Syn,
            Window = Peer.Window,
            Mss = Peer.Mss,
            WindowScale = Peer.WindowScale,
            SackPermitted = Peer.Sack,
            Timestamps = Peer.Timestamps ? (PeerTs, 0u) : null,
        };
        PeerSeq++;
        return syn;
    }

    public TcpTestSegment SynAckFor(TcpTestSegment syn)
    {
        PeerSeq = Peer.Iss;
        var synAck = new TcpTestSegment
        {
            SourcePort = RemotePort,
            DestinationPort = LocalPort,
            Seq = PeerSeq,
            Ack = syn.Seq + 1,
            Flags = TcpFlags.Syn | TcpFlags.Ack,
            Window = Peer.Window,
            Mss = Peer.Mss,
            WindowScale = Peer.WindowScale,
            SackPermitted = Peer.Sack,
            Timestamps = Peer.Timestamps ? (PeerTs, syn.Timestamps?.Val ?? 0) : null,
        };
        PeerSeq++;
        return synAck;
    }

    public void OnSynAck(TcpTestSegment synAck)
    {
        OurIss = synAck.Seq;
        OurNext = synAck.Seq + 1;
        synAck.Ack.Should().Be(PeerSeq);
        Observe(synAck);
    }

    /// <summary>Notes what a segment from the stack tells the peer (its timestamp, how far it has sent).</summary>
    public void Observe(TcpTestSegment segment)
    {
        if (segment.Timestamps is { } ts)
        {
            EchoTs = ts.Val;
        }
        if (TcpSeq.Gt(segment.SeqEnd, OurNext))
        {
            OurNext = segment.SeqEnd;
        }
    }

    /// <summary>A segment from the peer with the current numbers (override any field with <c>with</c>).</summary>
    public TcpTestSegment Seg(TcpFlags flags, byte[]? payload = null, uint? seq = null, uint? ack = null, ushort? window = null, params (uint, uint)[] sacks) =>
        new()
        {
            SourcePort = RemotePort,
            DestinationPort = LocalPort,
            Seq = seq ?? PeerSeq,
            Ack = ack ?? OurNext,
            Flags = flags,
            Window = window ?? Window,
            Timestamps = Peer.Timestamps ? (PeerTs, EchoTs) : null,
            Sacks = sacks,
            Payload = payload ?? [],
        };

    public void Inject(TcpTestSegment segment) => H.Inject(segment);

    /// <summary>The peer sends data (advancing its sequence number).</summary>
    public void SendData(byte[] data, TcpFlags flags = TcpFlags.Ack | TcpFlags.Psh)
    {
        Inject(Seg(flags, data));
        PeerSeq += (uint)data.Length + ((flags & TcpFlags.Fin) != 0 ? 1u : 0);
    }

    /// <summary>The peer sends its FIN.</summary>
    public void SendFin()
    {
        Inject(Seg(TcpFlags.Fin | TcpFlags.Ack));
        PeerSeq++;
    }

    /// <summary>The peer acknowledges up to <paramref name="ack"/> (default: everything seen).</summary>
    public void AckUpTo(uint? ack = null, ushort? window = null, params (uint, uint)[] sacks) =>
        Inject(Seg(TcpFlags.Ack, ack: ack ?? OurNext, window: window, sacks: sacks));

    /// <summary>What the stack emitted (observed by the peer).</summary>
    public List<TcpTestSegment> Sent()
    {
        var sent = H.Sent();
        foreach (var segment in sent)
        {
            Observe(segment);
        }
        return sent;
    }

    public TcpTestSegment Single()
    {
        var sent = Sent();
        sent.Should().ContainSingle("exactly one segment was expected, got: {0}", string.Join(" | ", sent));
        return sent[0];
    }

    /// <summary>The application writes (through the control block, without waiting).</summary>
    public int Write(byte[] data) => Cb.TryWrite(data);

    /// <summary>The application reads what is available.</summary>
    public byte[] Read(int max = 1 << 20)
    {
        var buffer = new byte[max];
        int read = Cb.TryRead(buffer);
        return read <= 0 ? [] : buffer[..read];
    }

    public TcpControlBlockSnapshot Snapshot => Cb.Snapshot();

    public static byte[] Bytes(int count, int seed = 0)
    {
        var data = new byte[count];
        for (int i = 0; i < count; i++)
        {
            data[i] = (byte)(seed + (i * 7));
        }
        return data;
    }
}
