using MeshNet.Userspace.Stack;
using MeshNet.Userspace.Stack.Tcp;
using Xunit.Abstractions;

namespace MeshNet.Userspace.Tests.Tcp;

/// <summary>Bulk transfers between two real stacks over a simulated link, verified by SHA-256, under impairments.</summary>
[Trait("Category", "Unit")]
public sealed class TcpTransferTests(ITestOutputHelper output)
{
    private void Report(string name, TcpPair pair, TcpLayer sender)
    {
        foreach (var cb in sender.Connections)
        {
            output.WriteLine($"{name}: {cb.Statistics}");
        }
        var counters = sender.Context.Counters;
        output.WriteLine($"{name}: simulated {pair.Time.GetUtcNow():HH:mm:ss.fff}, link dropped {pair.Dropped} ({pair.DataDropped} data), " +
            $"retransmissions {counters.TcpRetransmissions} (ground truth {pair.Retransmissions}, spurious {pair.SpuriousRetransmissions}), " +
            $"stack-detected spurious {counters.TcpSpuriousRetransmissions}; receiver discarded {pair.ReceiverDiscarded}: {pair.B.Context.Counters}");
    }

    [Theory]
    [InlineData("clean", 0.0, 0.0, 0.0)]
    [InlineData("loss 1%", 0.01, 0.0, 0.0)]
    [InlineData("loss 5%", 0.05, 0.0, 0.0)]
    [InlineData("reorder 5%", 0.0, 0.05, 0.0)]
    [InlineData("duplicate 5%", 0.0, 0.0, 0.05)]
    [InlineData("loss 2% + reorder 2% + duplicate 1%", 0.02, 0.02, 0.01)]
    public void EightMegabytesArriveIntact(string name, double loss, double reorder, double duplicate)
    {
        var impairment = new LinkImpairment { Loss = loss, Reorder = reorder, Duplicate = duplicate, Delay = TimeSpan.FromMilliseconds(10) };
        using var pair = new TcpPair(impairment, impairment with { Loss = loss / 2 });
        var (client, server) = pair.Connect();
        var (sent, received, completed) = pair.Transfer(client, server, 8 << 20, TimeSpan.FromMinutes(10));
        Report(name, pair, pair.A);
        output.WriteLine(client.Statistics.ToString());
        completed.Should().BeTrue();
        received.Should().Equal(sent);
        if (pair.Retransmissions > 20)
        {
            pair.SpuriousRetransmissions.Should().BeLessThan(pair.Retransmissions / 10 + 1, "spurious retransmissions stay under 10%");
        }
    }

    [Theory]
    [InlineData(TcpCongestionControl.Cubic)]
    [InlineData(TcpCongestionControl.NewReno)]
    public void ABottleneckIsFilledWithoutCollapse(TcpCongestionControl algorithm)
    {
        // 100 Mbit/s, 40 ms RTT (BDP 500 kB), a 128 kB queue: losses come from congestion only.
        var forward = new LinkImpairment { Delay = TimeSpan.FromMilliseconds(20), RateBytesPerSecond = 12_500_000, QueueBytes = 128 * 1024 };
        var backward = new LinkImpairment { Delay = TimeSpan.FromMilliseconds(20) };
        using var pair = new TcpPair(forward, backward, o => o.CongestionControl = algorithm);
        var (client, server) = pair.Connect();
        var start = pair.Time.GetUtcNow();
        var (sent, received, completed) = pair.Transfer(client, server, 32 << 20, TimeSpan.FromMinutes(5));
        var elapsed = pair.Time.GetUtcNow() - start;
        Report($"bottleneck {algorithm}", pair, pair.A);
        completed.Should().BeTrue();
        received.Should().Equal(sent);
        double utilization = (32 << 20) / elapsed.TotalSeconds / 12_500_000;
        output.WriteLine($"utilization {utilization:P0} over {elapsed.TotalSeconds:F1} s; {client.Statistics}");
        // A queue below the BDP costs Reno-style halving some utilization; CUBIC's 0.7 back-off and fast regrowth less.
        utilization.Should().BeGreaterThan(algorithm == TcpCongestionControl.Cubic ? 0.8 : 0.6, "the sender keeps the bottleneck busy despite congestion losses");
        client.Statistics.Timeouts.Should().BeLessThan(3, "losses are repaired by fast recovery, not timeouts");
        pair.SpuriousRetransmissions.Should().BeLessThan(pair.Retransmissions / 10 + 1);
    }

    [Theory]
    [InlineData(5)]
    [InlineData(6)]
    public void OriginalsOvertakenByTheirRetransmissionsAreRecognisedAndUndone(int seed)
    {
        // 5% of segments held back 4 ms on a 1 ms path: the retransmission overtakes the original,
        // which then fails PAWS at the receiver. Only its D-SACK tells the sender the retransmission
        // was spurious; without it every event is a real congestion response and the window
        // collapses.
        var forward = new LinkImpairment
        {
            Delay = TimeSpan.FromMilliseconds(0.5), Reorder = 0.05, ReorderDelay = TimeSpan.FromMilliseconds(4),
            RateBytesPerSecond = 12_500_000, QueueBytes = 8 << 20,
        };
        using var pair = new TcpPair(forward, new LinkImpairment { Delay = TimeSpan.FromMilliseconds(0.5) }, seed: seed);
        var (client, server) = pair.Connect();
        var start = pair.Time.GetUtcNow();
        var (sent, received, completed) = pair.Transfer(client, server, 8 << 20, TimeSpan.FromMinutes(5));
        var elapsed = pair.Time.GetUtcNow() - start;
        Report($"reorder 4 ms, seed {seed}", pair, pair.A);
        double utilization = (8 << 20) / elapsed.TotalSeconds / 12_500_000;
        output.WriteLine($"reordered {pair.Reordered}; utilization {utilization:P0}; {client.Snapshot()}");
        completed.Should().BeTrue();
        received.Should().Equal(sent);
        pair.Oversized.Should().Be(0);
        pair.A.Context.Counters.TcpSpuriousRetransmissions.Should().BeGreaterThanOrEqualTo(pair.SpuriousRetransmissions * 9 / 10,
            "the stack recognises its spurious retransmissions (D-SACKs of the PAWS-rejected originals)");
        utilization.Should().BeGreaterThan(0.75, "spurious reductions are undone: reordering does not throttle the sender");
    }

    [Fact]
    public void ReorderingByOvertakingLikeTheInteropRelayCostsFewRetransmissions()
    {
        // The interop relay's reordering: 5% of segments held back until the next three have passed
        // (10 ms at most), on a 1 ms path behind a deep queue.
        var forward = new LinkImpairment
        {
            Delay = TimeSpan.FromMilliseconds(0.5), Reorder = 0.05, ReorderGap = 3, ReorderDelay = TimeSpan.FromMilliseconds(10),
            RateBytesPerSecond = 12_500_000, QueueBytes = 8 << 20,
        };
        using var pair = new TcpPair(forward, new LinkImpairment { Delay = TimeSpan.FromMilliseconds(0.5) }, seed: 7);
        var (client, server) = pair.Connect();
        var (sent, received, completed) = pair.Transfer(client, server, 8 << 20, TimeSpan.FromMinutes(5));
        Report("reorder gap 3", pair, pair.A);
        output.WriteLine($"reordered {pair.Reordered}; {client.Snapshot()}");
        completed.Should().BeTrue();
        received.Should().Equal(sent);
        pair.Oversized.Should().Be(0);
        pair.SpuriousRetransmissions.Should().BeLessThan(pair.Reordered / 20);
    }

    [Fact]
    public void AReaderThatStopsForTenSecondsResumesTheTransfer()
    {
        using var pair = new TcpPair();
        var (client, server) = pair.Connect();
        var pauseStart = pair.Time.GetUtcNow() + TimeSpan.FromMilliseconds(60);
        var pauseEnd = pauseStart + TimeSpan.FromSeconds(10);
        var (sent, received, completed) = pair.Transfer(client, server, 16 << 20, TimeSpan.FromMinutes(2),
            readerPaused: () => pair.Time.GetUtcNow() >= pauseStart && pair.Time.GetUtcNow() < pauseEnd);
        Report("reader pause", pair, pair.A);
        completed.Should().BeTrue();
        received.Should().Equal(sent);
        (pair.Time.GetUtcNow() - pauseEnd).Should().BeLessThan(TimeSpan.FromSeconds(5), "the transfer resumes promptly when the window opens");
        client.Statistics.Timeouts.Should().Be(0, "a closed window is probed, not timed out");
    }

    [Fact]
    public void BothDirectionsAtOnceOverALossyLink()
    {
        var impairment = new LinkImpairment { Loss = 0.01, Reorder = 0.01, Delay = TimeSpan.FromMilliseconds(5) };
        using var pair = new TcpPair(impairment, impairment, seed: 7);
        var (client, server) = pair.Connect();
        long length = 4 << 20;
        var data = TcpTestConnection.Bytes(64 * 1024, 3);
        long upWritten = 0, downWritten = 0, upRead = 0, downRead = 0;
        var buffer = new byte[128 * 1024];
        bool done = pair.RunUntil(() => upRead == length && downRead == length, TimeSpan.FromMinutes(5), () =>
        {
            if (upWritten < length)
            {
                upWritten += client.TryWrite(data.AsSpan(0, (int)Math.Min(data.Length, length - upWritten)));
            }
            if (downWritten < length)
            {
                downWritten += server.TryWrite(data.AsSpan(0, (int)Math.Min(data.Length, length - downWritten)));
            }
            int n;
            while ((n = server.TryRead(buffer)) > 0)
            {
                upRead += n;
            }
            while ((n = client.TryRead(buffer)) > 0)
            {
                downRead += n;
            }
        });
        done.Should().BeTrue();
        Report("bidirectional", pair, pair.A);
    }

    [Fact]
    public void SixtyFourMegabytesOverALossyReorderingLink()
    {
        var impairment = new LinkImpairment { Loss = 0.005, Reorder = 0.005, Duplicate = 0.002, Delay = TimeSpan.FromMilliseconds(5) };
        using var pair = new TcpPair(impairment, impairment with { Loss = 0.002 }, seed: 11);
        var (client, server) = pair.Connect();
        var (sent, received, completed) = pair.Transfer(client, server, 64 << 20, TimeSpan.FromMinutes(10));
        Report("64 MiB lossy", pair, pair.A);
        completed.Should().BeTrue();
        received.Should().Equal(sent);
        pair.SpuriousRetransmissions.Should().BeLessThan(pair.Retransmissions / 10 + 1);
    }
}
