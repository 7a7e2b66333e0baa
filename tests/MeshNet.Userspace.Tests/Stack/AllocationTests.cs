using System.Net;
using MeshNet.Userspace.Link;
using MeshNet.Userspace.Stack;

namespace MeshNet.Userspace.Tests.Stack;

/// <summary>Tests that measure allocations run alone: other tests would share the thread pool and the array pools.</summary>
[CollectionDefinition(nameof(AllocationTests), DisableParallelization = true)]
public sealed class AllocationTestsCollection;

/// <summary>The UDP data path allocates nothing per datagram in steady state.</summary>
[Trait("Category", "Unit")]
[Collection(nameof(AllocationTests))]
public sealed class AllocationTests
{
    /// <summary>The result of an operation that must have completed synchronously (no assertion library: it allocates).</summary>
    private static T Now<T>(ValueTask<T> operation)
    {
        if (!operation.IsCompletedSuccessfully)
        {
            throw new InvalidOperationException("The operation should have completed synchronously.");
        }
        return operation.Result;
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public async Task A_UDP_ping_pong_over_a_manual_link_allocates_nothing_per_datagram(bool v6, bool filtered)
    {
        await Task.Yield();
        var filter = new CountingFilter();
        using var pair = new StackPair(MemoryLinkDeliveryMode.Manual, filtered ? options => options.InboundFilter = filter : null);
        using var server = pair.B.BindUdp(new IPEndPoint(StackPair.BAddress(v6), 7000));
        using var client = pair.A.BindUdp(new IPEndPoint(StackPair.AAddress(v6), 5000));
        var serverEndPoint = new IPEndPoint(StackPair.BAddress(v6), 7000);
        var payload = new byte[1000];
        var buffer = new byte[2000];

        void RoundTrip()
        {
            client.SendTo(payload, serverEndPoint);
            pair.Deliver();
            var request = Now(server.ReceiveFromAsync(buffer));
            server.SendTo(buffer.AsSpan(0, request.ReceivedBytes), (IPEndPoint)request.RemoteEndPoint);
            pair.Deliver();
            if (Now(client.ReceiveAsync(buffer)) != 1000)
            {
                throw new InvalidOperationException("Wrong reply length.");
            }
        }

        for (int i = 0; i < 100; i++)
        {
            RoundTrip(); // warm up pools and queues
        }
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            RoundTrip();
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        // Any allocation per datagram (24 bytes at least) would exceed this; the margin absorbs a
        // few pool misses (ArrayPool trims itself on GC).
        allocated.Should().BeLessThan(2000 * 16, "2,000 datagrams sent and received on this thread should allocate nothing each");
        if (filtered)
        {
            filter.Inspected.Should().Be(2200, "the filter judged every datagram (and parsing its headers allocated nothing)");
            filter.Sent.Should().Be(2200);
        }
    }

    /// <summary>Admits everything and counts.</summary>
    private sealed class CountingFilter : IInboundPacketFilter
    {
        private long _inspected;
        private long _sent;

        public long Inspected => Interlocked.Read(ref _inspected);

        public long Sent => Interlocked.Read(ref _sent);

        public FilterVerdict Inspect(in DatagramHeaders datagram)
        {
            Interlocked.Increment(ref _inspected);
            return datagram.IsTruncated ? FilterVerdict.Drop : FilterVerdict.Accept;
        }

        public void OnSent(in DatagramHeaders datagram) => Interlocked.Increment(ref _sent);
    }
}
