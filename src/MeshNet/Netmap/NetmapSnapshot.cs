using System.Collections.Frozen;
using System.Collections.Immutable;
using System.Net;
using MeshNet.Control.V1;

namespace MeshNet.Netmap;

/// <summary>
/// An immutable snapshot of what the coordination service told this node: itself, its peers
/// (by id), the tailnet's DNS domain and the packet-filter chunks, with the stream position it
/// corresponds to. Every change produces a new snapshot (<see cref="NetmapApplier"/>), so
/// readers on any thread see one consistent version without locks.
/// </summary>
internal sealed class NetmapSnapshot
{
    private FrozenDictionary<IPAddress, NetmapNode>? _byAddress;
    private FrozenDictionary<string, NetmapNode>? _byName;

    public required NetmapNode Self { get; init; }

    public required ImmutableSortedDictionary<ulong, NetmapNode> Peers { get; init; }

    /// <summary>The tailnet's DNS domain, lower case without a trailing dot ("" when the service sent none).</summary>
    public required string Domain { get; init; }

    /// <summary>Packet-filter chunks by name (none: everything inside the tailnet is allowed).</summary>
    public ImmutableSortedDictionary<string, FilterChunk> Filter { get; init; } = ImmutableSortedDictionary<string, FilterChunk>.Empty.WithComparers(StringComparer.Ordinal);

    /// <summary>True when <see cref="Filter"/> is enforced; false: everything inside the tailnet is allowed.</summary>
    public bool FilterEnforced { get; init; }

    /// <summary>The version of the tailnet policy the filter reflects (0: no policy).</summary>
    public ulong PolicyVersion { get; init; }

    /// <summary>True when the tailnet's policy forbids this node to keep its netmap on disk.</summary>
    public bool NetmapCacheForbidden { get; init; }

    /// <summary>The map-stream session this snapshot belongs to.</summary>
    public required string Session { get; init; }

    /// <summary>The sequence number of the last message applied.</summary>
    public required ulong Sequence { get; init; }

    /// <summary>The tailnet revision the netmap reflects (0: unknown, e.g. restored from a cache).</summary>
    public ulong Revision { get; init; }

    /// <summary>The epoch of the lease under which the server that sent it served the tailnet (0: unknown).</summary>
    public ulong Epoch { get; init; }

    /// <summary>The coordination servers the service listed (empty: it did not say).</summary>
    public ImmutableArray<string> ControlUrls { get; init; } = [];

    /// <summary>The fully qualified name of a node: <c>name.domain</c> (or the name when there is no domain).</summary>
    public string FqdnOf(NetmapNode node) => Domain.Length == 0 ? node.Name : $"{node.Name}.{Domain}";

    /// <summary>The peer (or this node) that owns <paramref name="address"/>, or null.</summary>
    public NetmapNode? FindByAddress(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }
        if (address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 && address.ScopeId != 0)
        {
            address = new IPAddress(address.GetAddressBytes());
        }
        var index = _byAddress ??= BuildAddressIndex();
        return index.GetValueOrDefault(address);
    }

    /// <summary>The peer (or this node) whose DNS label is <paramref name="name"/> (case-insensitive), or null.</summary>
    public NetmapNode? FindByName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var index = _byName ??= BuildNameIndex();
        return index.GetValueOrDefault(name);
    }

    private FrozenDictionary<IPAddress, NetmapNode> BuildAddressIndex()
    {
        var index = new Dictionary<IPAddress, NetmapNode>();
        foreach (var peer in Peers.Values)
        {
            foreach (var address in peer.Addresses)
            {
                index.TryAdd(address, peer);
            }
        }
        foreach (var address in Self.Addresses)
        {
            index[address] = Self; // our own addresses are ours, whatever a confused peer record says
        }
        return index.ToFrozenDictionary();
    }

    private FrozenDictionary<string, NetmapNode> BuildNameIndex()
    {
        var index = new Dictionary<string, NetmapNode>(StringComparer.OrdinalIgnoreCase);
        foreach (var peer in Peers.Values)
        {
            if (peer.Name.Length > 0)
            {
                index.TryAdd(peer.Name, peer);
            }
        }
        if (Self.Name.Length > 0)
        {
            index[Self.Name] = Self;
        }
        return index.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);
    }
}
