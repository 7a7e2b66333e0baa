using System.Net;
using MeshNet.Userspace.Conn;
using MeshNet.Userspace.Net;

namespace MeshNet.Userspace.Tests.Conn;

/// <summary>
/// Runs alone: <see cref="GC.GetTotalAllocatedBytes"/> counts every thread of the process, so
/// other tests running in parallel would spoil the measurement.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class AllocationMeasurementCollection
{
    public const string Name = "Allocation measurements";
}

/// <summary>
/// Steady-state sending and receiving allocate nothing per datagram: a ping-pong between two
/// binds, driven entirely from their receivers, is measured after a warm-up. Two measurements:
/// the allocations of the threads that run the data path (exact, tight budget), and those of the
/// whole process (catches work pushed to other threads; the test host allocates now and then,
/// so the best of up to three rounds counts).
/// </summary>
[Trait("Category", "Unit")]
[Collection(AllocationMeasurementCollection.Name)]
public sealed class BindAllocationTests
{
    private const int WarmUpRoundTrips = 2_000;
    private const int MeasuredRoundTrips = 20_000;
    private const long ThreadBudget = 4 * 1024;
    private const long ProcessBudget = 64 * 1024;
    private const int Rounds = 3;

    /// <summary>
    /// Bounces one datagram between two binds: each receiver sends it back, until the pinger has
    /// seen <see cref="Target"/> replies. Records its thread's allocation counter at every call.
    /// </summary>
    private sealed class PingPong(ManualResetEventSlim done) : IDatagramReceiver
    {
        private int _count;
        private long _threadAllocatedBytes;

        public IUdpBind? Self { get; set; }

        public int Target { get; set; }

        public bool Echo { get; init; }

        /// <summary>The receiving thread's allocation counter as of the latest datagram.</summary>
        public long ThreadAllocatedBytes => Volatile.Read(ref _threadAllocatedBytes);

        public void OnDatagram(Span<byte> datagram, in NetEndpoint source)
        {
            Volatile.Write(ref _threadAllocatedBytes, GC.GetAllocatedBytesForCurrentThread());
            if (!Echo && ++_count >= Target)
            {
                done.Set();
                return;
            }
            Self!.Send(datagram, source);
        }

        public void Reset(int target)
        {
            _count = 0;
            Target = target;
            done.Reset();
        }
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("::1")]
    public void UdpSocketBind_send_and_receive_do_not_allocate_per_datagram(string addressText)
    {
        IPAddress address = IPAddress.Parse(addressText);
        using var done = new ManualResetEventSlim();
        using var pinger = new UdpSocketBind(new UdpSocketBindOptions { BindAddress = address });
        using var echoer = new UdpSocketBind(new UdpSocketBindOptions { BindAddress = address });
        var ping = new PingPong(done) { Self = pinger };
        var echo = new PingPong(done) { Self = echoer, Echo = true };
        pinger.Open(0, ping);
        ushort echoPort = echoer.Open(0, echo);
        NetEndpoint echoEndpoint = NetEndpoint.FromIPEndPoint(new IPEndPoint(address, echoPort));
        byte[] payload = new byte[1200];

        AssertNoPerDatagramAllocation(done, ping, echo, () => Check(pinger.Send(payload, echoEndpoint)));
    }

    [Theory]
    [InlineData(MemoryDeliveryMode.Background)]
    [InlineData(MemoryDeliveryMode.Manual)]
    public void MemoryBind_send_and_receive_do_not_allocate_per_datagram(MemoryDeliveryMode mode)
    {
        using var network = new MemoryNetwork(new MemoryNetworkOptions { Delivery = mode });
        using var done = new ManualResetEventSlim();
        using MemoryBind pinger = network.CreateBind(IPAddress.Parse("10.0.0.1"));
        using MemoryBind echoer = network.CreateBind(IPAddress.Parse("10.0.0.2"));
        var ping = new PingPong(done) { Self = pinger };
        var echo = new PingPong(done) { Self = echoer, Echo = true };
        pinger.Open(0, ping);
        echoer.Open(0, echo);
        byte[] payload = new byte[1200];

        AssertNoPerDatagramAllocation(done, ping, echo, () =>
        {
            Check(pinger.Send(payload, echoer.LocalEndpoint));
            if (mode == MemoryDeliveryMode.Manual)
            {
                network.DeliverPending(int.MaxValue);
            }
        });
        network.Dropped.Should().Be(0);
    }

    // Not an assertion library call: those allocate inside the measurement.
    private static void Check(bool sent)
    {
        if (!sent)
        {
            throw new InvalidOperationException("The first ping was not sent.");
        }
    }

    private static void AssertNoPerDatagramAllocation(ManualResetEventSlim done, PingPong ping, PingPong echo, Action start)
    {
        Run(done, ping, WarmUpRoundTrips, start);

        long bestProcess = long.MaxValue;
        for (int round = 0; round < Rounds && bestProcess >= ProcessBudget; round++)
        {
            long pingBefore = ping.ThreadAllocatedBytes;
            long echoBefore = echo.ThreadAllocatedBytes;
            long processBefore = GC.GetTotalAllocatedBytes(precise: true);
            Run(done, ping, MeasuredRoundTrips, start);
            long process = GC.GetTotalAllocatedBytes(precise: true) - processBefore;
            long threads = ping.ThreadAllocatedBytes - pingBefore + (echo.ThreadAllocatedBytes - echoBefore);

            threads.Should().BeLessThan(ThreadBudget, "the data-path threads should not allocate per datagram over {0} round trips", MeasuredRoundTrips);
            bestProcess = Math.Min(bestProcess, process);
        }
        bestProcess.Should().BeLessThan(ProcessBudget, "the process should not allocate per datagram over {0} round trips", MeasuredRoundTrips);
    }

    private static void Run(ManualResetEventSlim done, PingPong ping, int roundTrips, Action start)
    {
        ping.Reset(roundTrips);
        start();
        done.Wait(TimeSpan.FromSeconds(60)).Should().BeTrue("the ping-pong of {0} round trips completes", roundTrips);
    }
}
