using System.Net;

namespace MeshNet.Coordination.Policy;

/// <summary>
/// A node as policies see it: its user (empty for tagged nodes and unknown users), its tags,
/// and its addresses as host prefixes (a policy test's hypothetical node may have a wider
/// prefix, from a hosts alias). Immutable.
/// </summary>
internal sealed class PolicySubject
{
    public PolicySubject(string user, IReadOnlyList<string> tags, IReadOnlyList<IPNetwork> addresses)
    {
        User = user;
        Tags = tags;
        Addresses = addresses;
    }

    public string User { get; }

    public IReadOnlyList<string> Tags { get; }

    public IReadOnlyList<IPNetwork> Addresses { get; }

    public bool HasTag(string tag)
    {
        foreach (var own in Tags)
        {
            if (string.Equals(own, tag, StringComparison.Ordinal))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>A tailnet node with its two addresses.</summary>
    public static PolicySubject ForNode(string user, IReadOnlyList<string> tags, IEnumerable<string> addresses)
    {
        var prefixes = new List<IPNetwork>(2);
        foreach (var text in addresses)
        {
            if (IPAddress.TryParse(text, out var address))
            {
                prefixes.Add(new IPNetwork(address, address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128));
            }
        }
        return new PolicySubject(tags.Count > 0 ? "" : user, tags, prefixes);
    }
}
