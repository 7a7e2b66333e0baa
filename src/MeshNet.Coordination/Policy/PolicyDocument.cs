using System.Net;

namespace MeshNet.Coordination.Policy;

/// <summary>
/// A parsed and validated tailnet policy: groups, hosts, tag owners, accept rules (identical
/// rules once) and tests. Immutable; thread-safe. Build it with <see cref="PolicyParser.Parse"/>.
/// </summary>
internal sealed class PolicyDocument
{
    public PolicyDocument(IReadOnlyDictionary<string, IReadOnlySet<string>> groups, IReadOnlyDictionary<string, IPNetwork> hosts,
        IReadOnlyDictionary<string, IReadOnlyList<string>> tagOwners, IReadOnlyList<PolicyRule> rules, IReadOnlyList<PolicyTest> tests,
        IReadOnlyList<Selector>? netmapCacheForbidden = null)
    {
        NetmapCacheForbidden = netmapCacheForbidden ?? [];
        Groups = groups;
        Hosts = hosts;
        TagOwners = tagOwners;
        Rules = rules;
        Tests = tests;
    }

    /// <summary>group:name → its users.</summary>
    public IReadOnlyDictionary<string, IReadOnlySet<string>> Groups { get; }

    /// <summary>alias → address prefix.</summary>
    public IReadOnlyDictionary<string, IPNetwork> Hosts { get; }

    /// <summary>tag:name → owners (users, groups, tags). Every tag the policy knows is a key.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> TagOwners { get; }

    public IReadOnlyList<PolicyRule> Rules { get; }

    public IReadOnlyList<PolicyTest> Tests { get; }

    /// <summary>The selectors of <c>netmapCache.forbid</c>: nodes that must not keep their netmap on disk.</summary>
    public IReadOnlyList<Selector> NetmapCacheForbidden { get; }

    /// <summary>True when the policy forbids <paramref name="subject"/> to cache its netmap.</summary>
    public bool ForbidsNetmapCache(PolicySubject subject)
    {
        foreach (var selector in NetmapCacheForbidden)
        {
            if (selector.Matches(subject))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// Whether a node of <paramref name="user"/> holding <paramref name="keyTags"/> may get
    /// <paramref name="tag"/>: the tag is declared and its owners list the user, a group with
    /// the user, or one of <paramref name="keyTags"/>.
    /// </summary>
    public bool Owns(string user, IReadOnlyCollection<string> keyTags, string tag)
    {
        if (!TagOwners.TryGetValue(tag, out var owners))
        {
            return false;
        }
        foreach (var owner in owners)
        {
            if (owner.StartsWith("tag:", StringComparison.Ordinal))
            {
                if (keyTags.Contains(owner, StringComparer.Ordinal))
                {
                    return true;
                }
            }
            else if (owner.StartsWith("group:", StringComparison.Ordinal))
            {
                if (user.Length > 0 && Groups.TryGetValue(owner, out var members) && members.Contains(user))
                {
                    return true;
                }
            }
            else if (user.Length > 0 && string.Equals(owner, user, StringComparison.Ordinal))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Whether any rule lets <paramref name="source"/> reach <paramref name="destination"/> on the port and protocol.</summary>
    public bool Allows(PolicySubject source, PolicySubject destination, uint protocol, uint port)
    {
        bool portless = protocol is 1 or 58;
        foreach (var rule in Rules)
        {
            if (!rule.AllowsProtocol(protocol) || !rule.Sources.Any(selector => selector.Matches(source)))
            {
                continue;
            }
            foreach (var target in rule.Destinations)
            {
                if (target.Selector.Matches(destination) && (portless || target.Ports.Any(span => span.Contains(port))))
                {
                    return true;
                }
            }
        }
        return false;
    }

    /// <summary>Runs the policy's tests.</summary>
    /// <exception cref="PolicyException">A test failed (<see cref="PolicyException.IsTestFailure"/>), at the failing entry.</exception>
    public void RunTests()
    {
        foreach (var test in Tests)
        {
            foreach (var expectation in test.Accept)
            {
                if (!Allows(test.Source, expectation.Destination, test.Protocol, expectation.Port))
                {
                    throw Failure(test, expectation, "accept", "no rule allows it");
                }
            }
            foreach (var expectation in test.Deny)
            {
                if (Allows(test.Source, expectation.Destination, test.Protocol, expectation.Port))
                {
                    throw Failure(test, expectation, "deny", "a rule allows it");
                }
            }
        }
    }

    private static PolicyException Failure(PolicyTest test, PolicyExpectation expectation, string expected, string actual) =>
        new(expectation.Line, expectation.Column,
            $"test failed: \"{test.SourceText}\" to \"{expectation.Text}\" ({test.ProtocolText}) is expected to {expected}, but {actual}")
        {
            IsTestFailure = true,
        };
}
