using MeshNet.Control.V1;
using MeshNet.Userspace.Stack;

namespace MeshNet.Filter;

/// <summary>
/// The filter rules of a netmap compiled for the data path: prefixes parsed into
/// <see cref="PrefixSet"/>s, port ranges and protocol sets as plain values. A datagram is
/// admitted when some rule's protocols contain its protocol, its sources contain the source
/// address, and one of its destinations contains the destination address and port (ports are
/// ignored for ICMP and ICMPv6). Immutable and thread-safe; <see cref="Admits"/> never
/// allocates. Built off the packet path (<see cref="Compile"/>) and swapped in whole.
/// </summary>
internal sealed class CompiledFilter
{
    private const byte Icmp = 1;
    private const byte Tcp = 6;
    private const byte Udp = 17;
    private const byte IcmpV6 = 58;

    private readonly Rule[] _rules;

    private CompiledFilter(Rule[] rules, int invalidEntries)
    {
        _rules = rules;
        InvalidEntries = invalidEntries;
    }

    /// <summary>A filter with no rules: admits nothing.</summary>
    public static CompiledFilter Empty { get; } = new([], 0);

    /// <summary>The number of rules that can match something.</summary>
    public int RuleCount => _rules.Length;

    /// <summary>Prefixes, port ranges and protocols that could not be used (skipped; a rule left with none of a kind matches nothing).</summary>
    public int InvalidEntries { get; }

    /// <summary>Compiles every rule of every chunk.</summary>
    public static CompiledFilter Compile(IEnumerable<FilterChunk> chunks)
    {
        ArgumentNullException.ThrowIfNull(chunks);
        var rules = new List<Rule>();
        int invalid = 0;
        foreach (var chunk in chunks)
        {
            foreach (var rule in chunk.Rules)
            {
                if (CompileRule(rule, ref invalid) is { } compiled)
                {
                    rules.Add(compiled);
                }
            }
        }
        return new CompiledFilter([.. rules], invalid);
    }

    /// <summary>True when some rule admits a datagram of <paramref name="flow"/> (inbound: destination is ours).</summary>
    public bool Admits(in FlowTuple flow)
    {
        byte protocol = flow.Protocol;
        bool portless = protocol is not (Tcp or Udp); // ICMP, ICMPv6 and protocols without ports
        foreach (var rule in _rules)
        {
            if (!rule.Protocols.Contains(protocol) || !rule.Sources.Contains(flow.Source))
            {
                continue;
            }
            foreach (var destination in rule.Destinations)
            {
                if (destination.Addresses.Contains(flow.Destination)
                    && (portless || (flow.DestinationPort >= destination.FirstPort && flow.DestinationPort <= destination.LastPort)))
                {
                    return true;
                }
            }
        }
        return false;
    }

    private static Rule? CompileRule(FilterRule rule, ref int invalid)
    {
        var sources = CompilePrefixes(rule.Sources, ref invalid);
        var destinations = new List<Destination>();
        foreach (var range in rule.Destinations)
        {
            if (range.FirstPort > ushort.MaxValue || range.FirstPort > range.LastPort)
            {
                invalid++;
                continue;
            }
            var addresses = CompilePrefixes([range.Prefix], ref invalid);
            if (!addresses.IsEmpty)
            {
                destinations.Add(new Destination(addresses, (ushort)range.FirstPort, (ushort)Math.Min(range.LastPort, ushort.MaxValue)));
            }
        }
        var protocols = ProtocolSet.Default;
        if (rule.Protocols.Count > 0)
        {
            protocols = default;
            foreach (uint protocol in rule.Protocols)
            {
                if (protocol > byte.MaxValue)
                {
                    invalid++;
                    continue;
                }
                protocols = protocols.With((byte)protocol);
            }
        }
        if (sources.IsEmpty || destinations.Count == 0 || protocols.IsEmpty)
        {
            return null;
        }
        return new Rule(sources, [.. destinations], protocols);
    }

    private static PrefixSet CompilePrefixes(IEnumerable<string> texts, ref int invalid)
    {
        var prefixes = new List<NetPrefix>();
        bool all = false;
        foreach (var text in texts)
        {
            if (text.Trim() == "*")
            {
                all = true;
            }
            else if (NetPrefix.TryParse(text, out var prefix))
            {
                prefixes.Add(prefix);
            }
            else
            {
                invalid++;
            }
        }
        return PrefixSet.Create(prefixes, all);
    }

    private sealed record Rule(PrefixSet Sources, Destination[] Destinations, ProtocolSet Protocols);

    private sealed record Destination(PrefixSet Addresses, ushort FirstPort, ushort LastPort);

    /// <summary>A set of IANA protocol numbers as a 256-bit mask.</summary>
    private readonly record struct ProtocolSet(UInt128 Low, UInt128 High)
    {
        /// <summary>TCP, UDP, ICMP and ICMPv6: what an empty protocol list means.</summary>
        public static ProtocolSet Default { get; } = default(ProtocolSet).With(Tcp).With(Udp).With(Icmp).With(IcmpV6);

        public bool IsEmpty => Low == UInt128.Zero && High == UInt128.Zero;

        public ProtocolSet With(byte protocol) => protocol < 128
            ? this with { Low = Low | (UInt128.One << protocol) }
            : this with { High = High | (UInt128.One << (protocol - 128)) };

        public bool Contains(byte protocol) => protocol < 128
            ? (Low & (UInt128.One << protocol)) != UInt128.Zero
            : (High & (UInt128.One << (protocol - 128))) != UInt128.Zero;
    }
}
