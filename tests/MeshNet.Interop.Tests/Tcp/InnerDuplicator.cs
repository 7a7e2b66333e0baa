using MeshNet.Userspace.Link;

namespace MeshNet.Interop.Tests.Tcp;

/// <summary>
/// Duplicates inner IP packets between MeshNet's WireGuard device and its stack: with
/// <see cref="Probability"/> a packet is handed to <see cref="Target"/> twice. Duplicating the
/// encrypted datagrams (as the relay does) never reaches TCP, because WireGuard's replay filter
/// drops the copy (same counter) on either side; a copy made here is encrypted afresh by the
/// device, so Linux's TCP really receives it twice (and MeshNet's, in the other direction).
/// Decisions come from a seeded <see cref="Random"/> under a lock (callers are several threads).
/// </summary>
internal sealed class InnerDuplicator(int seed) : IPacketSink
{
    private readonly Lock _lock = new();
    private readonly Random _random = new(seed); // guarded by _lock
    private volatile IPacketSink? _target;
    private double _probability; // guarded by _lock
    private long _packets;
    private long _duplicated;

    /// <summary>Where packets go; packets written while it is null are dropped.</summary>
    public IPacketSink? Target
    {
        get => _target;
        set => _target = value;
    }

    /// <summary>The share of packets sent twice (0 by default).</summary>
    public double Probability
    {
        get
        {
            lock (_lock)
            {
                return _probability;
            }
        }
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 0);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, 1);
            lock (_lock)
            {
                _probability = value;
            }
        }
    }

    /// <summary>Packets written.</summary>
    public long Packets => Interlocked.Read(ref _packets);

    /// <summary>Packets written twice.</summary>
    public long Duplicated => Interlocked.Read(ref _duplicated);

    public void WritePacket(ReadOnlySpan<byte> packet)
    {
        var target = _target;
        if (target is null)
        {
            return;
        }
        Interlocked.Increment(ref _packets);
        bool twice;
        lock (_lock)
        {
            twice = _probability > 0 && _random.NextDouble() < _probability;
        }
        target.WritePacket(packet);
        if (twice)
        {
            Interlocked.Increment(ref _duplicated);
            target.WritePacket(packet);
        }
    }
}
