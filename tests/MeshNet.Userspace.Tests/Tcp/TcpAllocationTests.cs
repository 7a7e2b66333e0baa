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

        // The JIT recompiles hot methods in the background (tiered compilation); until a method's
        // optimized code is in, its first-tier code may allocate where the optimized code does not
        // (boxes and closures that escape analysis removes). On a busy machine that can outlast the
        // warm-up, so measure a few rounds: an allocation on the data path shows in every one.
        var rounds = new List<string>();
        for (int round = 0; round < 5; round++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            long transferred = Transfer(32 << 20);
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            long segments = transferred / (mtu - 52);
            transferred.Should().Be(32 << 20);
            if (allocated < segments)
            {
                return;
            }
            rounds.Add($"{allocated} bytes for about {segments} segments");
        }
        Assert.Fail($"Every round allocated at least one byte per segment: {string.Join("; ", rounds)}.");
    }
}
