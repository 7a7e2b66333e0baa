using System.Security.Cryptography;
using System.Text;

namespace MeshNet.Coordination.Policy;

/// <summary>An inclusive port range (0-65535 for all ports).</summary>
internal readonly record struct PortSpan(uint First, uint Last)
{
    public static PortSpan Any { get; } = new(0, 65535);

    public bool Contains(uint port) => port >= First && port <= Last;

    public override string ToString() => First == Last ? $"{First}" : First == 0 && Last == 65535 ? "*" : $"{First}-{Last}";
}

/// <summary>A destination of a rule: which nodes and which of their ports.</summary>
internal sealed record PolicyDestination(Selector Selector, IReadOnlyList<PortSpan> Ports);

/// <summary>
/// One accept rule of a policy, validated. Its chunk name is derived from its content only,
/// so reordering rules or editing another rule keeps it. Immutable; thread-safe.
/// </summary>
internal sealed class PolicyRule
{
    public PolicyRule(IReadOnlyList<Selector> sources, IReadOnlyList<PolicyDestination> destinations, IReadOnlyList<uint> protocols, int line, int column)
    {
        Sources = sources;
        Destinations = destinations;
        Protocols = protocols;
        Line = line;
        Column = column;
        Canonical = $"accept src={string.Join(' ', sources.Select(s => s.Text))} " +
            $"dst={string.Join(' ', destinations.Select(d => $"{d.Selector.Text}:{string.Join(',', d.Ports)}"))} " +
            $"proto={string.Join(',', protocols)}";
        ChunkName = "acl-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Canonical)), 0, 8);
    }

    public IReadOnlyList<Selector> Sources { get; }

    public IReadOnlyList<PolicyDestination> Destinations { get; }

    /// <summary>IANA protocol numbers; empty means TCP, UDP, ICMP and ICMPv6.</summary>
    public IReadOnlyList<uint> Protocols { get; }

    public int Line { get; }

    public int Column { get; }

    /// <summary>The rule as text, normalized (what its chunk name hashes).</summary>
    public string Canonical { get; }

    public string ChunkName { get; }

    public bool AllowsProtocol(uint protocol) => Protocols.Count == 0 ? protocol is 6 or 17 or 1 or 58 : Protocols.Contains(protocol);
}
