using MeshNet.Userspace.Link;

namespace MeshNet.DataPlane;

/// <summary>
/// The device's inbound sink until the stack exists: the device must be bound (to learn its
/// port) before registration, and the stack needs the addresses registration returns. Packets
/// that arrive before <see cref="Target"/> is set are dropped (TCP and WireGuard retransmit).
/// </summary>
internal sealed class DeferredPacketSink : IPacketSink
{
    private volatile IPacketSink? _target;

    /// <summary>The sink that receives packets from now on.</summary>
    public IPacketSink? Target
    {
        get => _target;
        set => _target = value;
    }

    /// <summary>Packets dropped because no target was set yet.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    private long _dropped;

    public void WritePacket(ReadOnlySpan<byte> packet)
    {
        var target = _target;
        if (target is null)
        {
            Interlocked.Increment(ref _dropped);
            return;
        }
        target.WritePacket(packet);
    }
}
