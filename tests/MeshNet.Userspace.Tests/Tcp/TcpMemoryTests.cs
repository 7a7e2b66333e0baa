using MeshNet.Userspace.Stack;
using MeshNet.Userspace.Stack.Tcp;

namespace MeshNet.Userspace.Tests.Tcp;

/// <summary>Memory bounds: idle connections, floods of out-of-order data, stalled readers, the stack budget.</summary>
/// <remarks>Runs alone: the idle-connection measurement reads the process-wide heap size.</remarks>
[Trait("Category", "Unit")]
[Collection(TcpMemoryCollection.Name)]
public sealed class TcpMemoryTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public void AnIdleEstablishedConnectionHoldsLessThan16KiB()
    {
        using var h = new TcpHarness();
        var listener = h.Listen(backlog: 1000);
        const int count = 300;
        var connections = new List<TcpTestConnection>();
        // Warm up the shared pools, then measure.
        for (int i = 0; i < 20; i++)
        {
            connections.Add(Exercise(h, (ushort)(10_000 + i)));
        }
        long before = GC.GetTotalMemory(forceFullCollection: true);
        for (int i = 0; i < count; i++)
        {
            Exercise(h, (ushort)(20_000 + i));
        }
        long after = GC.GetTotalMemory(forceFullCollection: true);
        long perConnection = (after - before) / count;
        output.WriteLine($"{perConnection} bytes per idle established connection");
        perConnection.Should().BeLessThan(16 * 1024, $"an idle connection holds no buffer arrays (measured {perConnection} bytes)");
        h.Context.Budget.Used.Should().Be(0);
        h.Layer.ConnectionCount.Should().Be(count + 20);
        GC.KeepAlive(listener);
        GC.KeepAlive(connections);
    }

    /// <summary>A connection that exchanged data both ways and is idle again.</summary>
    private static TcpTestConnection Exercise(TcpHarness h, ushort port)
    {
        var c = new TcpTestConnection(h, TcpHarness.ListenPort, port, new PeerOptions { Timestamps = true, WindowScale = 7 });
        h.Inject(c.SynSegment());
        c.OnSynAck(h.Single());
        h.Inject(c.Seg(TcpFlags.Ack));
        c.Cb = h.Layer.Find(c.Key)!;
        c.SendData(TcpTestConnection.Bytes(3000));
        c.Read().Should().HaveCount(3000);
        c.Write(TcpTestConnection.Bytes(3000));
        while (c.Sent().Count > 0)
        {
            c.AckUpTo();
        }
        c.Snapshot.SendBuffered.Should().Be(0);
        return c;
    }

    [Fact]
    public void AnOutOfOrderFloodStaysWithinTheWindowAndTheRangeLimit()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        for (int i = 0; i < 3000; i++)
        {
            uint offset = 2 + (uint)(i * 30);
            c.Inject(c.Seg(TcpFlags.Ack, [1], seq: 1001 + offset));
        }
        h.Output.Drain();
        h.Counters[StackDropReason.TcpBufferFull].Should().BeGreaterThan(0);
        h.Counters[StackDropReason.TcpOutOfWindow].Should().BeGreaterThan(0);
        h.Context.Budget.Used.Should().BeLessThanOrEqualTo(5 * BufferPage.Size, "everything held lies inside the 64 KiB window");
        c.SendData(TcpTestConnection.Bytes(2));
        c.Cb.Abort();
        h.Context.Budget.Used.Should().Be(0);
    }

    [Fact]
    public void AStalledReaderBoundsTheReceiveBufferByTheWindow()
    {
        using var h = new TcpHarness(o => o.DelayedAck = false);
        var c = h.EstablishPassive();
        for (int i = 0; i < 200; i++)
        {
            c.Inject(c.Seg(TcpFlags.Ack, TcpTestConnection.Bytes(1380), seq: c.PeerSeq));
            c.PeerSeq += 1380;
            h.Output.Drain();
        }
        c.Snapshot.ReceiveAvailable.Should().Be(65535);
        h.Context.Budget.Used.Should().BeLessThanOrEqualTo(5 * BufferPage.Size);
    }

    [Fact]
    public void TheSendBufferIsBoundedAndWritersGetBackpressure()
    {
        using var h = new TcpHarness(o => o.MaxSendBuffer = 100_000);
        var c = h.EstablishPassive();
        c.AckUpTo(window: 0);
        int written = 0;
        for (int i = 0; i < 20; i++)
        {
            written += c.Write(TcpTestConnection.Bytes(10_000));
        }
        written.Should().Be(100_000);
        c.Snapshot.SendBuffered.Should().Be(100_000);
        c.Cb.WaitWritableAsync(default).IsCompleted.Should().BeFalse("a writer waits while the buffer is full");
    }

    [Fact]
    public void TheStackBudgetCapsEveryConnectionTogether()
    {
        using var h = new TcpHarness(o => o.DelayedAck = false, memoryBudget: 1 << 20);
        h.Listen(backlog: 100);
        for (ushort port = 1; port <= 40; port++)
        {
            var c = new TcpTestConnection(h, TcpHarness.ListenPort, port, new PeerOptions());
            h.Inject(c.SynSegment());
            c.OnSynAck(h.Single());
            h.Inject(c.Seg(TcpFlags.Ack));
            for (int i = 0; i < 40; i++)
            {
                c.SendData(TcpTestConnection.Bytes(1380));
            }
            h.Output.Drain();
        }
        h.Context.Budget.Used.Should().BeLessThanOrEqualTo(1 << 20);
        h.Counters[StackDropReason.TcpBufferFull].Should().BeGreaterThan(0, "segments beyond the budget are dropped (the peers retransmit)");
    }
}

/// <summary>Tests that must not run in parallel with others (they measure the process's heap).</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TcpMemoryCollection
{
    public const string Name = "TCP memory measurements";
}
