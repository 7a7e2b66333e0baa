using MeshNet.TestSupport;
using MeshNet.Userspace.Stack.Tcp;

namespace MeshNet.Userspace.Tests.Tcp;

/// <summary>The data path allocates nothing per segment once warm.</summary>
[Trait("Category", "Unit")]
public sealed class TcpAllocationTests
{
    [Theory]
    [InlineData(1420)]
    [InlineData(65535)]
    public async Task ASteadyTransferAllocatesNothingPerSegment(int mtu)
    {
        using var link = new TcpLoopback(mtu);
        var (client, server) = await link.ConnectAsync();
        var sender = client.ControlBlock;
        var receiver = server.ControlBlock;
        var chunk = new byte[256 * 1024];
        var buffer = new byte[256 * 1024];

        // Everything runs on this thread: the synchronous link processes each packet inside the send.
        long Transfer(long bytes)
        {
            long moved = 0;
            long read = 0;
            while (read < bytes)
            {
                if (moved < bytes)
                {
                    moved += sender.TryWrite(chunk.AsSpan(0, (int)Math.Min(chunk.Length, bytes - moved)));
                }
                int n = receiver.TryRead(buffer);
                if (n > 0)
                {
                    read += n;
                }
            }
            return read;
        }

        Transfer(32 << 20); // warm up: pools, window and cwnd growth, JIT

        const long Bytes = 32 << 20;
        long segments = Bytes / (mtu - 52);
        long transferred = 0;
        long allocated = AllocationMeter.LeastOf(5, () => transferred = Transfer(Bytes));
        transferred.Should().Be(Bytes);
        allocated.Should().BeLessThan(segments, $"{allocated} bytes for about {segments} segments: less than one byte per segment");
    }
}
