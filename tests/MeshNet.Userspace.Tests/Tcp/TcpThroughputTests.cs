using System.Diagnostics;
using Xunit.Abstractions;

namespace MeshNet.Userspace.Tests.Tcp;

/// <summary>
/// Throughput between two stacks in memory on the real clock (a quick measurement, not a
/// benchmark): a writer and a reader on dedicated threads (synchronous Stream calls) or as
/// async tasks, over a synchronous link or a queued one with a delivery thread per direction.
/// Prints Gbit/s; asserts only a floor far below the expected rate (shared CI machines).
/// </summary>
[Trait("Category", "Unit")]
public sealed class TcpThroughputTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(65535, false, false, 256)]
    [InlineData(65535, true, false, 256)]
    [InlineData(1420, false, false, 64)]
    [InlineData(1420, true, false, 64)]
    [InlineData(1420, true, true, 64)]
    public async Task TransferRate(int mtu, bool queued, bool asyncApi, int megabytes)
    {
        using var link = new TcpLoopback(mtu, queued: queued);
        var (client, server) = await link.ConnectAsync();
        long total = (long)megabytes << 20;
        var chunk = new byte[1 << 20];
        Random.Shared.NextBytes(chunk);
        long received = 0;
        var stopwatch = Stopwatch.StartNew();
        if (asyncApi)
        {
            var writer = Task.Run(async () =>
            {
                for (long sent = 0; sent < total; sent += chunk.Length)
                {
                    await client.WriteAsync(chunk);
                }
                await client.ShutdownWriteAsync();
            });
            received = await Task.Run(async () =>
            {
                var buffer = new byte[1 << 20];
                long count = 0;
                int n;
                while ((n = await server.ReadAsync(buffer)) > 0)
                {
                    count += n;
                }
                return count;
            }).WaitAsync(TimeSpan.FromMinutes(2));
            await writer;
        }
        else
        {
            var writer = new Thread(() =>
            {
                for (long sent = 0; sent < total; sent += chunk.Length)
                {
                    client.Write(chunk);
                }
                client.ShutdownWriteAsync().AsTask().GetAwaiter().GetResult();
            });
            var reader = new Thread(() =>
            {
                var buffer = new byte[1 << 20];
                int n;
                while ((n = server.Read(buffer)) > 0)
                {
                    received += n;
                }
            });
            writer.Start();
            reader.Start();
            writer.Join();
            reader.Join();
        }
        stopwatch.Stop();
        double gbps = received * 8 / stopwatch.Elapsed.TotalSeconds / 1e9;
        output.WriteLine($"MTU {mtu}, {(queued ? "queued" : "synchronous")} link, {(asyncApi ? "async tasks" : "threads")}: " +
            $"{megabytes} MiB in {stopwatch.Elapsed.TotalMilliseconds:F0} ms = {gbps:F2} Gbit/s; {link.LinkStatistics}; " +
            $"retransmissions {link.A.Context.Counters.TcpRetransmissions}");
        received.Should().Be(total);
        gbps.Should().BeGreaterThan(0.2, "even a debug build on a loaded machine moves data in memory faster than this");
        await client.DisposeAsync();
        await server.DisposeAsync();
    }
}
