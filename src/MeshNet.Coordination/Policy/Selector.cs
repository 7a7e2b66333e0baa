using System.Net;

namespace MeshNet.Coordination.Policy;

/// <summary>What a selector names.</summary>
internal enum SelectorKind
{
    /// <summary><c>*</c>: every node, any address.</summary>
    All,

    /// <summary>A user: the untagged nodes of that user.</summary>
    User,

    /// <summary><c>group:name</c>: the untagged nodes of the group's users.</summary>
    Group,

    /// <summary><c>tag:name</c>: the nodes with that tag.</summary>
    Tag,

    /// <summary>An address, a prefix or a hosts alias: the nodes with an address inside.</summary>
    Prefix,
}

/// <summary>
/// A validated selector of a policy rule or test: which nodes (and for address selectors,
/// which addresses) it names. Immutable; thread-safe.
/// </summary>
internal sealed class Selector
{
    private readonly IReadOnlySet<string>? _groupUsers;

    private Selector(SelectorKind kind, string text, string name, IPNetwork prefix, IReadOnlySet<string>? groupUsers)
    {
        Kind = kind;
        Text = text;
        Name = name;
        Prefix = prefix;
        _groupUsers = groupUsers;
    }

    public SelectorKind Kind { get; }

    /// <summary>The selector as written in the policy.</summary>
    public string Text { get; }

    /// <summary>The user, group or tag named (empty otherwise).</summary>
    public string Name { get; }

    /// <summary>The prefix of an address selector (a host alias resolved).</summary>
    public IPNetwork Prefix { get; }

    /// <summary>True when matched nodes contribute their own addresses (user, group, tag).</summary>
    public bool NamesNodes => Kind is SelectorKind.User or SelectorKind.Group or SelectorKind.Tag;

    public static Selector All { get; } = new(SelectorKind.All, "*", "", default, null);

    public static Selector User(string user) => new(SelectorKind.User, user, user, default, null);

    public static Selector Group(string name, IReadOnlySet<string> users) => new(SelectorKind.Group, name, name, default, users);

    public static Selector Tag(string tag) => new(SelectorKind.Tag, tag, tag, default, null);

    public static Selector Address(string text, IPNetwork prefix) => new(SelectorKind.Prefix, text, "", prefix, null);

    /// <summary>Whether the node (or hypothetical node of a policy test) is named by this selector.</summary>
    public bool Matches(PolicySubject subject)
    {
        switch (Kind)
        {
            case SelectorKind.All:
                return true;
            case SelectorKind.User:
                return subject.Tags.Count == 0 && subject.User.Length > 0 && string.Equals(subject.User, Name, StringComparison.Ordinal);
            case SelectorKind.Group:
                return subject.Tags.Count == 0 && subject.User.Length > 0 && _groupUsers!.Contains(subject.User);
            case SelectorKind.Tag:
                return subject.HasTag(Name);
            default:
                foreach (var address in subject.Addresses)
                {
                    if (Contains(Prefix, address))
                    {
                        return true;
                    }
                }
                return false;
        }
    }

    /// <summary>True when <paramref name="inner"/> lies entirely inside <paramref name="outer"/>.</summary>
    public static bool Contains(IPNetwork outer, IPNetwork inner) =>
        outer.BaseAddress.AddressFamily == inner.BaseAddress.AddressFamily && inner.PrefixLength >= outer.PrefixLength &&
        outer.Contains(inner.BaseAddress);

    public override string ToString() => Text;
}
