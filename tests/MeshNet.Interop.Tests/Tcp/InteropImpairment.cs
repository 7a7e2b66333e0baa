using System.Globalization;
using MeshNet.TestSupport.Impairment;
using MeshNet.TestSupport.Interop;

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

    /// <summary>
    /// 1% of datagrams each way sent twice, by the relay. WireGuard's replay filter drops such
    /// copies before TCP sees them, so where MeshNet is one end (<see cref="TcpTunnel"/>) inner
    /// packets are also duplicated, 1% each way, between the device and the stack.
    /// </summary>
    Duplication,

    /// <summary>Bursty loss each way (<see cref="GilbertElliottLoss.Bursty"/>: ~0.8% in bursts of 4), by the relay.</summary>
    BurstyLoss,
}

/// <summary>What each <see cref="InteropImpairment"/> means in relay profiles and iptables rules.</summary>
internal static class InteropImpairments
{
    /// <summary>The probability of <see cref="InteropImpairment.RandomLoss"/>.</summary>
    public const double RandomLossProbability = 0.01;

    /// <summary>The probability of <see cref="InteropImpairment.Duplication"/>.</summary>
    public const double DuplicateProbability = 0.01;

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
        InteropImpairment.Duplication => ImpairmentProfile.Duplicated(DuplicateProbability),
        InteropImpairment.BurstyLoss => ImpairmentProfile.Bursty(),
        _ => throw new ArgumentOutOfRangeException(nameof(impairment), impairment, null),
    };
}

/// <summary>Datagrams dropped by a <see cref="StatisticLoss"/>, by direction, and those of at least <see cref="StatisticLoss.LargeDatagram"/> bytes.</summary>
internal readonly record struct StatisticDrops(long Inbound, long InboundLarge, long Outbound, long OutboundLarge);

/// <summary>
/// Random loss of a WireGuard peer's UDP datagrams by iptables in its namespace: rules on INPUT
/// (datagrams to <c>port</c>) and on OUTPUT (datagrams from it), each
/// <c>-m statistic --mode random --probability P -j DROP</c>. Each direction has two rules, for
/// datagrams below and from <see cref="LargeDatagram"/> bytes (IP length), which together drop
/// P of all datagrams and separately count how many data-carrying datagrams were dropped. Rules
/// carry unique comments so their packet counters (what was actually dropped) can be read
/// back. Disposal removes them.
/// </summary>
internal sealed class StatisticLoss : IAsyncDisposable
{
    /// <summary>The IP length from which a dropped datagram counts as large (<see cref="ImpairmentCounters.LargeDatagram"/> of UDP payload plus headers).</summary>
    public const int LargeDatagram = ImpairmentCounters.LargeDatagram + 28;

    private readonly List<IptablesRule> _rules;
    private readonly string _comment;

    private StatisticLoss(NetworkNamespace ns, List<IptablesRule> rules, string comment)
    {
        Namespace = ns;
        _rules = rules;
        _comment = comment;
    }

    public NetworkNamespace Namespace { get; }

    /// <summary>Drops <paramref name="probability"/> of the UDP datagrams to and from <paramref name="port"/> in <paramref name="ns"/>.</summary>
    public static async Task<StatisticLoss> AddAsync(NetworkNamespace ns, int port, double probability, CancellationToken cancellationToken = default)
    {
        var comment = RunId.NextName('l');
        var p = probability.ToString("0.######", CultureInfo.InvariantCulture);
        var portText = port.ToString(CultureInfo.InvariantCulture);
        var rules = new List<IptablesRule>();
        var loss = new StatisticLoss(ns, rules, comment);
        try
        {
            foreach (var (chain, portMatch, direction) in new[] { ("INPUT", "--dport", "in"), ("OUTPUT", "--sport", "out") })
            {
                foreach (var (lengths, size) in new[] { ($"0:{LargeDatagram - 1}", "small"), ($"{LargeDatagram}:65535", "large") })
                {
                    rules.Add(await IptablesRule.AddAsync(ns, chain,
                        ["-p", "udp", portMatch, portText, "-m", "length", "--length", lengths, "-m", "comment", "--comment", $"{comment}-{direction}-{size}",
                         "-m", "statistic", "--mode", "random", "--probability", p, "-j", "DROP"],
                        cancellationToken: cancellationToken).ConfigureAwait(false));
                }
            }
            return loss;
        }
        catch
        {
            await loss.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Datagrams dropped so far on the way in (to the port) and out (from it).</summary>
    public async Task<StatisticDrops> ReadDroppedAsync(CancellationToken cancellationToken = default)
    {
        var input = await ListAsync("INPUT", cancellationToken).ConfigureAwait(false);
        var output = await ListAsync("OUTPUT", cancellationToken).ConfigureAwait(false);
        long inLarge = Count(input, "in-large"), outLarge = Count(output, "out-large");
        return new StatisticDrops(Count(input, "in-small") + inLarge, inLarge, Count(output, "out-small") + outLarge, outLarge);
    }

    public async ValueTask DisposeAsync()
    {
        List<Exception>? errors = null;
        for (int i = _rules.Count - 1; i >= 0; i--)
        {
            try
            {
                await _rules[i].DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is ShellCommandException or InvalidOperationException)
            {
                (errors ??= []).Add(e);
            }
        }
        _rules.Clear();
        if (errors is not null)
        {
            throw new AggregateException("Removing iptables rules failed.", errors);
        }
    }

    private Task<ShellResult> ListAsync(string chain, CancellationToken cancellationToken) =>
        Namespace.ExecAsync("iptables", ["-w", "10", "-t", "filter", "-L", chain, "-v", "-x", "-n"], cancellationToken: cancellationToken);

    // `iptables -L CHAIN -v -x -n` rows start with the packet count; ours carry the comment.
    private long Count(ShellResult listing, string suffix)
    {
        var comment = $"{_comment}-{suffix}";
        var row = listing.StandardOutput.Split('\n').SingleOrDefault(line => line.Contains($"/* {comment} */", StringComparison.Ordinal))
            ?? throw new InvalidOperationException($"No iptables rule with comment {comment} in {Namespace}:\n{listing.StandardOutput}");
        return long.Parse(row.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0], NumberStyles.None, CultureInfo.InvariantCulture);
    }
}
