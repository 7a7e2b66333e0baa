using System.Threading.Channels;
using MeshNet.Userspace.Link;

namespace MeshNet.Interop.Tests.WireGuard;

/// <summary>
/// The packet sink behind the MeshNet device in interop tests: keeps every delivered packet
/// and lets a test wait for one that matches. Optionally answers packets (for example ICMP
/// echo requests) through a responder callback, so the namespace's own tools get replies.
/// </summary>
internal sealed class TunnelInbox : IPacketSink
{
    private readonly Channel<byte[]> _packets = Channel.CreateUnbounded<byte[]>();
    private long _count;

    /// <summary>Called for each packet on the device's receive thread, before it is queued.</summary>
    public Action<byte[]>? Responder { get; set; }

    /// <summary>Packets delivered so far.</summary>
    public long Count => Interlocked.Read(ref _count);

    public void WritePacket(ReadOnlySpan<byte> packet)
    {
        var copy = packet.ToArray();
        Interlocked.Increment(ref _count);
        Responder?.Invoke(copy);
        _packets.Writer.TryWrite(copy);
    }

    /// <summary>Waits for the next packet matching <paramref name="match"/>, skipping others.</summary>
    public async Task<byte[]> WaitForAsync(Func<byte[], bool> match, TimeSpan timeout, string what)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            while (true)
            {
                var packet = await _packets.Reader.ReadAsync(cts.Token);
                if (match(packet))
                {
                    return packet;
                }
            }
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"No {what} arrived through the tunnel within {timeout.TotalSeconds:0} s.");
        }
    }

    /// <summary>Takes every packet received so far.</summary>
    public List<byte[]> Drain()
    {
        var list = new List<byte[]>();
        while (_packets.Reader.TryRead(out var packet))
        {
            list.Add(packet);
        }
        return list;
    }

    /// <summary>Reads packets as they arrive until cancelled.</summary>
    public IAsyncEnumerable<byte[]> ReadAllAsync(CancellationToken cancellationToken) => _packets.Reader.ReadAllAsync(cancellationToken);
}
