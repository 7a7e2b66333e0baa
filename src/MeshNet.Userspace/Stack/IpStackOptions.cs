using System.Net;
using MeshNet.Userspace.Link;
using Microsoft.Extensions.Logging;

namespace MeshNet.Userspace.Stack;

/// <summary>
/// Options for <see cref="IpStack.Create"/>. Validated when the stack is created; an invalid
/// value throws an <see cref="ArgumentException"/> naming the property.
/// </summary>
public sealed class IpStackOptions
{
    /// <summary>Where the stack sends the IP packets it produces (required): typically a WireGuard device.</summary>
    public IPacketSink? Link { get; set; }

    /// <summary>The stack's own addresses (required, at least one; IPv4 and/or IPv6).</summary>
    public IReadOnlyList<IPAddress> Addresses { get; set; } = [];

    /// <summary>The link MTU: the largest IP packet the stack sends. Default 1420 (the WireGuard tunnel MTU).</summary>
    public int Mtu { get; set; } = 1420;

    /// <summary>The clock for every timer; default <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>Logging; default none.</summary>
    public ILoggerFactory? LoggerFactory { get; set; }

    /// <summary>
    /// The most memory the stack's buffers may hold at once (TCP send and receive buffers,
    /// out-of-order data, UDP receive queues, fragments). Default 256 MiB.
    /// </summary>
    public long MemoryBudget { get; set; } = 256L << 20;

    /// <summary>Bytes of IP fragments held for reassembly at most. Default 4 MiB.</summary>
    public int MaxReassemblyBytes { get; set; } = 4 << 20;

    /// <summary>How long an incomplete fragmented datagram is kept. Default 30 s.</summary>
    public TimeSpan ReassemblyTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>ICMP error messages (port unreachable...) the stack sends per second at most. Default 100.</summary>
    public int IcmpErrorsPerSecond { get; set; } = 100;

    /// <summary>TCP settings.</summary>
    public TcpStackOptions Tcp { get; set; } = new();

    /// <summary>
    /// A packet filter that judges every inbound datagram (after reassembly, before transports)
    /// and is told about every datagram sent; default none (everything addressed to the stack is
    /// processed). Denied datagrams count as <see cref="StackDropReason.FilterDenied"/>.
    /// </summary>
    public IInboundPacketFilter? InboundFilter { get; set; }

    internal void Validate()
    {
        if (Link is null)
        {
            throw new ArgumentException("IpStackOptions.Link is required.", nameof(Link));
        }
        if (Addresses is null || Addresses.Count == 0)
        {
            throw new ArgumentException("IpStackOptions.Addresses needs at least one address.", nameof(Addresses));
        }
        if (Mtu is < 1280 or > 65535)
        {
            throw new ArgumentException($"IpStackOptions.Mtu must be between 1280 and 65535, not {Mtu}.", nameof(Mtu));
        }
        if (TimeProvider is null)
        {
            throw new ArgumentException("IpStackOptions.TimeProvider must not be null.", nameof(TimeProvider));
        }
        if (MemoryBudget < 1 << 20)
        {
            throw new ArgumentException("IpStackOptions.MemoryBudget must be at least 1 MiB.", nameof(MemoryBudget));
        }
        if (MaxReassemblyBytes < 65535)
        {
            throw new ArgumentException("IpStackOptions.MaxReassemblyBytes must hold at least one 64 KiB datagram.", nameof(MaxReassemblyBytes));
        }
        if (ReassemblyTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("IpStackOptions.ReassemblyTimeout must be positive.", nameof(ReassemblyTimeout));
        }
        if (IcmpErrorsPerSecond < 0)
        {
            throw new ArgumentException("IpStackOptions.IcmpErrorsPerSecond must not be negative.", nameof(IcmpErrorsPerSecond));
        }
        ArgumentNullException.ThrowIfNull(Tcp, nameof(Tcp));
        Tcp.Validate();
    }
}
