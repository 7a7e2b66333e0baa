using System.Net;
using System.Net.Sockets;

namespace MeshNet.Netmap;

/// <summary>
/// Resolves the host names a node dials against its netmap, with no DNS: a peer's DNS label
/// (<c>web</c>), its fully qualified name (<c>web.acme.meshnet.internal</c>), both
/// case-insensitive with an optional trailing dot, or one of its addresses as an IPv4 or IPv6
/// literal (brackets allowed). Anything else does not resolve.
/// </summary>
internal static class NameResolver
{
    /// <summary>The node <paramref name="host"/> names, or null.</summary>
    /// <param name="map">The current netmap.</param>
    /// <param name="host">A name or an address literal.</param>
    /// <param name="literal">The address when <paramref name="host"/> is an address literal, else null.</param>
    public static NetmapNode? Resolve(NetmapSnapshot map, string host, out IPAddress? literal)
    {
        ArgumentNullException.ThrowIfNull(map);
        ArgumentNullException.ThrowIfNull(host);
        literal = null;
        var text = host.AsSpan().Trim();
        if (text.Length > 2 && text[0] == '[' && text[^1] == ']')
        {
            text = text[1..^1];
        }
        if (IPAddress.TryParse(text, out var address) && address.AddressFamily is AddressFamily.InterNetwork or AddressFamily.InterNetworkV6)
        {
            if (address.IsIPv4MappedToIPv6)
            {
                address = address.MapToIPv4();
            }
            literal = address;
            return map.FindByAddress(address);
        }

        if (text.EndsWith('.'))
        {
            text = text[..^1];
        }
        if (text.IsEmpty)
        {
            return null;
        }
        string domain = map.Domain;
        if (domain.Length > 0 && text.Length > domain.Length + 1
            && text[^(domain.Length + 1)] == '.'
            && text[^domain.Length..].Equals(domain, StringComparison.OrdinalIgnoreCase))
        {
            text = text[..^(domain.Length + 1)];
        }
        if (text.Contains('.'))
        {
            return null; // only `name` and `name.<domain>` resolve
        }
        return map.FindByName(text.ToString());
    }

    /// <summary>
    /// The address to dial: the literal when one was given, otherwise the node's IPv4 address
    /// when it has one, otherwise its IPv6 address.
    /// </summary>
    public static IPAddress? SelectAddress(NetmapNode node, IPAddress? literal) =>
        literal ?? node.AddressOf(AddressFamily.InterNetwork) ?? node.AddressOf(AddressFamily.InterNetworkV6);

    /// <summary>The node's addresses, IPv4 first.</summary>
    public static IReadOnlyList<IPAddress> OrderedAddresses(NetmapNode node) =>
        [.. node.Addresses.Where(a => a.AddressFamily == AddressFamily.InterNetwork),
         .. node.Addresses.Where(a => a.AddressFamily == AddressFamily.InterNetworkV6)];
}
