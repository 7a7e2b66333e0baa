using System.Net;

namespace MeshNet.TestSupport.Interop;

/// <summary>One end of a <see cref="VethPair"/>.</summary>
/// <param name="Namespace">The namespace holding this end; null for the root namespace.</param>
/// <param name="InterfaceName">The interface name (at most 15 characters).</param>
/// <param name="IPv4">The IPv4 address of this end (in a /30).</param>
/// <param name="IPv6">The IPv6 address of this end (in a /64, added with <c>nodad</c> so it is usable at once).</param>
public sealed record VethEnd(NetworkNamespace? Namespace, string InterfaceName, IPAddress IPv4, IPAddress IPv6)
{
    /// <summary>Where this end lives, for messages.</summary>
    public string Location => Namespace?.Name ?? "the root namespace";

    internal IReadOnlyList<string> Ip(params string[] arguments)
        => Namespace is null ? arguments : ["-n", Namespace.Name, .. arguments];
}
