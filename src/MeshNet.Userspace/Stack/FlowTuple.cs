using MeshNet.Userspace.Net;

namespace MeshNet.Userspace.Stack;

/// <summary>
/// The flow an IP datagram belongs to, as a packet filter sees it: protocol, addresses and
/// ports, in the direction the datagram travels. For ICMP and ICMPv6 echo requests and replies
/// both ports hold the echo identifier (so a request and its reply name the same flow once
/// reversed); for other ICMP messages and for protocols without ports both ports are zero.
/// A plain value: copying, comparing and hashing it never allocates.
/// </summary>
public readonly struct FlowTuple : IEquatable<FlowTuple>
{
    /// <summary>Creates a flow.</summary>
    public FlowTuple(byte protocol, NetAddress source, ushort sourcePort, NetAddress destination, ushort destinationPort)
    {
        Protocol = protocol;
        Source = source;
        SourcePort = sourcePort;
        Destination = destination;
        DestinationPort = destinationPort;
    }

    /// <summary>IANA protocol number: 1 ICMP, 6 TCP, 17 UDP, 58 ICMPv6.</summary>
    public byte Protocol { get; }

    /// <summary>The sender's address.</summary>
    public NetAddress Source { get; }

    /// <summary>The sender's port (TCP, UDP), the echo identifier (ICMP echo), else 0.</summary>
    public ushort SourcePort { get; }

    /// <summary>The receiver's address.</summary>
    public NetAddress Destination { get; }

    /// <summary>The receiver's port (TCP, UDP), the echo identifier (ICMP echo), else 0.</summary>
    public ushort DestinationPort { get; }

    /// <summary>True for <c>default</c>: no flow.</summary>
    public bool IsEmpty => Source.IsEmpty;

    /// <summary>The same flow seen from the other end (source and destination swapped).</summary>
    public FlowTuple Reversed() => new(Protocol, Destination, DestinationPort, Source, SourcePort);

    /// <inheritdoc/>
    public bool Equals(FlowTuple other) =>
        Protocol == other.Protocol && SourcePort == other.SourcePort && DestinationPort == other.DestinationPort &&
        Source == other.Source && Destination == other.Destination;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is FlowTuple other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Protocol, Source, SourcePort, Destination, DestinationPort);

    /// <summary>Equality.</summary>
    public static bool operator ==(FlowTuple left, FlowTuple right) => left.Equals(right);

    /// <summary>Inequality.</summary>
    public static bool operator !=(FlowTuple left, FlowTuple right) => !left.Equals(right);

    /// <summary><c>proto source:port -> destination:port</c> (allocates; for logs).</summary>
    public override string ToString() => $"{Protocol} {Source}:{SourcePort} -> {Destination}:{DestinationPort}";
}
