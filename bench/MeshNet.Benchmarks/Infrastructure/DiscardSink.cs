using MeshNet.Userspace.Link;

namespace MeshNet.Benchmarks.Infrastructure;

/// <summary>An inbound sink that only counts packets (so benchmarks can check delivery). Single-threaded.</summary>
internal sealed class DiscardSink : IPacketSink
{
    public long Count { get; private set; }

    public long Bytes { get; private set; }

    public void WritePacket(ReadOnlySpan<byte> packet)
    {
        Count++;
        Bytes += packet.Length;
    }
}
