using MeshNet.Userspace.Net;
using MeshNet.Userspace.Stack.Ip;
using Microsoft.Extensions.Logging;

namespace MeshNet.Userspace.Stack;

/// <summary>
/// What the layers of one stack share: options, clock, logger, counters, memory budget, the
/// stack's addresses and the IP output. One per <see cref="IpStack"/>; no static state, so any
/// number of stacks live in one process. Members are thread-safe (immutable or atomic).
/// </summary>
internal sealed class StackContext
{
    public StackContext(IpStackOptions options, ILogger logger)
    {
        Options = options;
        Time = options.TimeProvider;
        Logger = logger;
        Budget = new MemoryBudget(options.MemoryBudget);
        _addresses = options.Addresses.Select(NetAddress.FromIPAddress).Distinct().ToArray();
    }

    // The array behind Addresses: the per-packet checks loop over it without an enumerator.
    private readonly NetAddress[] _addresses;

    public IpStackOptions Options { get; }

    public TcpStackOptions Tcp => Options.Tcp;

    public TimeProvider Time { get; }

    public ILogger Logger { get; }

    public IpStackCounters Counters { get; } = new();

    public MemoryBudget Budget { get; }

    /// <summary>The stack's own addresses.</summary>
    public IReadOnlyList<NetAddress> Addresses => _addresses;

    /// <summary>The IP send path; set once while the stack is built.</summary>
    public IIpOutput Output { get; set; } = null!;

    public int Mtu => Options.Mtu;

    /// <summary>The inbound packet filter, or null.</summary>
    public IInboundPacketFilter? Filter => Options.InboundFilter;

    /// <summary>True when <paramref name="address"/> is one of the stack's own. Allocation-free.</summary>
    public bool IsLocal(NetAddress address)
    {
        foreach (var local in _addresses)
        {
            if (local == address)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>The stack's first address of <paramref name="remote"/>'s family (default when it has none). Allocation-free.</summary>
    public NetAddress SourceFor(NetAddress remote)
    {
        foreach (var local in _addresses)
        {
            if (local.IsIPv4 == remote.IsIPv4)
            {
                return local;
            }
        }
        return default;
    }
}
