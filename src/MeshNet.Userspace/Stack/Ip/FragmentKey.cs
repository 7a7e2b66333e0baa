using MeshNet.Userspace.Net;

namespace MeshNet.Userspace.Stack.Ip;

/// <summary>
/// Identifies the datagram a fragment belongs to: source, destination, identification and, for
/// IPv4, protocol (RFC 791). IPv6 fragments are identified by source, destination and
/// identification only (RFC 8200 4.5: the next header of non-first fragments may differ), so
/// their protocol is 0. IPv4 and IPv6 keys never compare
/// equal (their addresses differ in family). The hash is seeded per process
/// (<see cref="HashCode"/>), so a sender cannot aim fragments at one hash bucket.
/// </summary>
internal readonly struct FragmentKey(NetAddress source, NetAddress destination, uint id, byte protocol) : IEquatable<FragmentKey>
{
    public NetAddress Source { get; } = source;

    public NetAddress Destination { get; } = destination;

    public uint Id { get; } = id;

    public byte Protocol { get; } = protocol;

    public bool IsIPv6 => Source.IsIPv6;

    public bool Equals(FragmentKey other) =>
        Id == other.Id && Protocol == other.Protocol && Source == other.Source && Destination == other.Destination;

    public override bool Equals(object? obj) => obj is FragmentKey other && Equals(other);

    public override int GetHashCode() => HashCode.Combine(Source, Destination, Id, Protocol);
}
