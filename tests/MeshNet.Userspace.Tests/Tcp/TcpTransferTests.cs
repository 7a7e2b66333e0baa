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
}
