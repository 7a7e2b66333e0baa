using System.Globalization;
using MeshNet.Interop.Tests.Infrastructure;
using MeshNet.Tests.Shared;

namespace MeshNet.Interop.Tests.Tcp;

/// <summary>The impairments the TCP interop tests run through, in turn (issue: TcpInterop item 3).</summary>
public enum InteropImpairment
{
    /// <summary>None.</summary>
    Clean,

    /// <summary>1% random loss each way, by iptables' statistic match in the namespace (the kernel has no netem).</summary>
    RandomLoss,

    /// <summary>20 ms ± 5 ms one-way delay each way (order kept), by the relay.</summary>
    Delay,

    /// <summary>5% of datagrams each way overtaken by the next 3, by the relay.</summary>
    Reordering,

    /// <summary>1% of datagrams each way sent twice, by the relay.</summary>
    Duplication,

    /// <summary>Bursty loss each way (<see cref="GilbertElliottLoss.Bursty"/>: ~0.8% in bursts of 4), by the relay.</summary>
    BurstyLoss,
}

/// <summary>What each <see cref="InteropImpairment"/> means in relay profiles and iptables rules.</summary>
internal static class InteropImpairments
{
    /// <summary>The probability of <see cref="InteropImpairment.RandomLoss"/>.</summary>
    public const double RandomLossProbability = 0.01;

    /// <summary>Every impairment but <see cref="InteropImpairment.Clean"/>, for theories.</summary>
    public static TheoryData<InteropImpairment> All => new()
    {
        InteropImpairment.RandomLoss,
        InteropImpairment.Delay,
        InteropImpairment.Reordering,
        InteropImpairment.Duplication,
        InteropImpairment.BurstyLoss,
    };

    /// <summary>True when the impairment needs the relay on the path (all but clean and iptables loss).</summary>
    public static bool NeedsRelay(InteropImpairment impairment) => impairment is not (InteropImpairment.Clean or InteropImpairment.RandomLoss);

    /// <summary>True when the impairment drops datagrams.</summary>
    public static bool Drops(InteropImpairment impairment) => impairment is InteropImpairment.RandomLoss or InteropImpairment.BurstyLoss;

    /// <summary>The relay profile of one direction (the same both ways).</summary>
    public static ImpairmentProfile Profile(InteropImpairment impairment) => impairment switch
    {
        InteropImpairment.Clean or InteropImpairment.RandomLoss => ImpairmentProfile.None,
        InteropImpairment.Delay => ImpairmentProfile.Delayed(TimeSpan.FromMilliseconds(20), TimeSpan.FromMilliseconds(5), keepOrder: true),
        InteropImpairment.Reordering => ImpairmentProfile.Reordered(0.05, gap: 3),
        InteropImpairment.Duplication => ImpairmentProfile.Duplicated(0.01),
        InteropImpairment.BurstyLoss => ImpairmentProfile.Bursty(),
        _ => throw new ArgumentOutOfRangeException(nameof(impairment), impairment, null),
    };
}

/// <summary>
/// Random loss of a WireGuard peer's UDP datagrams by iptables in its namespace: one rule on
/// INPUT (datagrams to <c>port</c>) and one on OUTPUT (datagrams from it), each
/// <c>-m statistic --mode random --probability P -j DROP</c>, tagged with a unique comment so
/// their packet counters (what was actually dropped) can be read back. Disposal removes both.
/// </summary>
internal sealed class StatisticLoss : IAsyncDisposable
{
    private readonly IptablesRule _input;
    private readonly IptablesRule _output;
    private readonly string _comment;

    private StatisticLoss(NetworkNamespace ns, IptablesRule input, IptablesRule output, string comment)
    {
        Namespace = ns;
        _input = input;
        _output = output;
        _comment = comment;
    }

    public NetworkNamespace Namespace { get; }

    /// <summary>Drops <paramref name="probability"/> of the UDP datagrams to and from <paramref name="port"/> in <paramref name="ns"/>.</summary>
    public static async Task<StatisticLoss> AddAsync(NetworkNamespace ns, int port, double probability, CancellationToken cancellationToken = default)
    {
        var comment = RunId.NextName('l');
        var p = probability.ToString("0.######", CultureInfo.InvariantCulture);
        var portText = port.ToString(CultureInfo.InvariantCulture);
        var input = await IptablesRule.AddAsync(ns, "INPUT",
            ["-p", "udp", "--dport", portText, "-m", "comment", "--comment", comment + "-in", "-m", "statistic", "--mode", "random", "--probability", p, "-j", "DROP"],
            cancellationToken: cancellationToken).ConfigureAwait(false);
        try
        {
            var output = await IptablesRule.AddAsync(ns, "OUTPUT",
                ["-p", "udp", "--sport", portText, "-m", "comment", "--comment", comment + "-out", "-m", "statistic", "--mode", "random", "--probability", p, "-j", "DROP"],
                cancellationToken: cancellationToken).ConfigureAwait(false);
            return new StatisticLoss(ns, input, output, comment);
        }
        catch
        {
            await input.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Datagrams dropped so far on the way in (to the port) and out (from it).</summary>
    public async Task<(long Inbound, long Outbound)> ReadDroppedAsync(CancellationToken cancellationToken = default) =>
        (await ReadAsync("INPUT", _comment + "-in", cancellationToken).ConfigureAwait(false),
         await ReadAsync("OUTPUT", _comment + "-out", cancellationToken).ConfigureAwait(false));

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _output.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            await _input.DisposeAsync().ConfigureAwait(false);
        }
    }

    // `iptables -L CHAIN -v -x -n` rows start with the packet count; ours carry the comment.
    private async Task<long> ReadAsync(string chain, string comment, CancellationToken cancellationToken)
    {
        var listing = await Namespace.ExecAsync("iptables", ["-w", "10", "-t", "filter", "-L", chain, "-v", "-x", "-n"], cancellationToken: cancellationToken).ConfigureAwait(false);
        var row = listing.StandardOutput.Split('\n').SingleOrDefault(line => line.Contains($"/* {comment} */", StringComparison.Ordinal))
            ?? throw new InvalidOperationException($"No iptables rule with comment {comment} in {chain} of {Namespace}:\n{listing.StandardOutput}");
        return long.Parse(row.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0], NumberStyles.None, CultureInfo.InvariantCulture);
    }
}
