using System.Net;

namespace MeshNet.Coordination.Policy;

/// <summary>
/// Parses and validates a tailnet policy (HuJSON). Unknown keys, wrong types, undefined
/// groups, hosts or tags, nested groups, bad ports, prefixes and protocols are errors: a
/// <see cref="PolicyException"/> at the offending value, never another exception. Tests are
/// parsed but not run (<see cref="PolicyDocument.RunTests"/>). Pure; thread-safe.
/// </summary>
internal static class PolicyParser
{
    public const int MaxRules = 10_000;

    private static readonly string[] TopLevelKeys = ["groups", "hosts", "tagOwners", "acls", "tests", "netmapCache"];
    private static readonly string[] NetmapCacheKeys = ["forbid"];
    private static readonly string[] RuleKeys = ["action", "src", "dst", "proto"];
    private static readonly string[] TestKeys = ["src", "proto", "accept", "deny"];

    public static PolicyDocument Parse(string text)
    {
        var root = HuJsonReader.Parse(text);
        Expect(root, PolicyValueKind.Object, "the policy");
        var sections = Members(root, TopLevelKeys, "the policy");
        var groups = ParseGroups(sections.GetValueOrDefault("groups"));
        var hosts = ParseHosts(sections.GetValueOrDefault("hosts"));
        var tagOwners = ParseTagOwners(sections.GetValueOrDefault("tagOwners"), groups);
        var context = new Context(groups, hosts, tagOwners);
        var rules = ParseRules(sections.GetValueOrDefault("acls"), context);
        var tests = ParseTests(sections.GetValueOrDefault("tests"), context);
        var cacheForbidden = ParseNetmapCache(sections.GetValueOrDefault("netmapCache"), context);
        return new PolicyDocument(groups, hosts, tagOwners, rules, tests, cacheForbidden);
    }

    /// <summary><c>"netmapCache": { "forbid": [selectors] }</c>: the nodes that must not keep their netmap on disk (<c>*</c>: the whole tailnet).</summary>
    private static List<Selector> ParseNetmapCache(PolicyValue? section, Context context)
    {
        if (section is null)
        {
            return [];
        }
        Expect(section, PolicyValueKind.Object, "\"netmapCache\"");
        var fields = Members(section, NetmapCacheKeys, "\"netmapCache\"");
        return fields.TryGetValue("forbid", out var forbid)
            ? [.. Strings(forbid, "\"forbid\"").Select(value => context.Selector(value, value.Text))]
            : [];
    }

    private static Dictionary<string, IReadOnlySet<string>> ParseGroups(PolicyValue? section)
    {
        var groups = new Dictionary<string, IReadOnlySet<string>>(StringComparer.Ordinal);
        if (section is null)
        {
            return groups;
        }
        Expect(section, PolicyValueKind.Object, "\"groups\"");
        foreach (var member in section.Members)
        {
            if (!member.Name.StartsWith("group:", StringComparison.Ordinal) || member.Name.Length == "group:".Length ||
                member.Name.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)))
            {
                throw new PolicyException(member.Line, member.Column, $"group name \"{member.Name}\" must start with \"group:\" and have no whitespace");
            }
            var users = new HashSet<string>(StringComparer.Ordinal);
            foreach (var item in Strings(member.Value, $"group \"{member.Name}\""))
            {
                if (item.Text.StartsWith("group:", StringComparison.Ordinal))
                {
                    throw new PolicyException(item, $"groups cannot contain groups (\"{item.Text}\" in \"{member.Name}\")");
                }
                users.Add(PolicySyntax.User(item, item.Text));
            }
            groups[member.Name] = users;
        }
        return groups;
    }

    private static Dictionary<string, IPNetwork> ParseHosts(PolicyValue? section)
    {
        var hosts = new Dictionary<string, IPNetwork>(StringComparer.Ordinal);
        if (section is null)
        {
            return hosts;
        }
        Expect(section, PolicyValueKind.Object, "\"hosts\"");
        foreach (var member in section.Members)
        {
            var name = member.Name;
            if (name.Length is 0 or > 63 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.') ||
                PolicySyntax.TryAddress(name, out _))
            {
                throw new PolicyException(member.Line, member.Column,
                    $"host alias \"{name}\" must be 1-63 characters of letters, digits, '-', '_' or '.', and not an address");
            }
            Expect(member.Value, PolicyValueKind.String, $"host \"{name}\"");
            hosts[name] = Prefix(member.Value, member.Value.Text);
        }
        return hosts;
    }

    private static Dictionary<string, IReadOnlyList<string>> ParseTagOwners(PolicyValue? section, Dictionary<string, IReadOnlySet<string>> groups)
    {
        var owners = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        if (section is null)
        {
            return owners;
        }
        Expect(section, PolicyValueKind.Object, "\"tagOwners\"");
        var declared = new HashSet<string>(section.Members.Select(member => member.Name), StringComparer.Ordinal);
        foreach (var member in section.Members)
        {
            if (!Validation.Names.IsTag(member.Name))
            {
                throw new PolicyException(member.Line, member.Column,
                    $"\"{member.Name}\" is not a valid tag (expected 'tag:' and a DNS label of [a-z0-9-], at most 63 characters)");
            }
            var list = new List<string>();
            foreach (var item in Strings(member.Value, $"tag owners of \"{member.Name}\""))
            {
                var owner = item.Text;
                if (owner.StartsWith("group:", StringComparison.Ordinal))
                {
                    if (!groups.ContainsKey(owner))
                    {
                        throw new PolicyException(item, $"undefined group \"{owner}\"");
                    }
                }
                else if (owner.StartsWith("tag:", StringComparison.Ordinal))
                {
                    if (!declared.Contains(PolicySyntax.Tag(item, owner)))
                    {
                        throw new PolicyException(item, $"tag \"{owner}\" is not declared in \"tagOwners\"");
                    }
                }
                else
                {
                    PolicySyntax.User(item, owner);
                }
                list.Add(owner);
            }
            owners[member.Name] = list;
        }
        return owners;
    }

    private static List<PolicyRule> ParseRules(PolicyValue? section, Context context)
    {
        var rules = new List<PolicyRule>();
        if (section is null)
        {
            return rules;
        }
        Expect(section, PolicyValueKind.Array, "\"acls\"");
        if (section.Items.Count > MaxRules)
        {
            throw new PolicyException(section, $"\"acls\" has {section.Items.Count} rules; the limit is {MaxRules}");
        }
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var item in section.Items)
        {
            Expect(item, PolicyValueKind.Object, "a rule");
            var fields = Members(item, RuleKeys, "a rule");
            var action = Required(fields, "action", item, "a rule");
            Expect(action, PolicyValueKind.String, "\"action\"");
            if (action.Text != "accept")
            {
                throw new PolicyException(action, $"action \"{action.Text}\" is not supported (only \"accept\")");
            }
            IReadOnlyList<uint> protocols = [];
            if (fields.TryGetValue("proto", out var proto))
            {
                protocols = PolicySyntax.Protocol(proto, out _);
            }
            bool portless = protocols.Count == 1 && protocols[0] is 1 or 58;
            var sources = Strings(Required(fields, "src", item, "a rule"), "\"src\"").Select(value => context.Selector(value, value.Text)).ToList();
            var destinations = new List<PolicyDestination>();
            foreach (var value in Strings(Required(fields, "dst", item, "a rule"), "\"dst\""))
            {
                var (selectorText, portsText) = PolicySyntax.SplitPorts(value, value.Text);
                var ports = PolicySyntax.Ports(value, portsText);
                var selector = context.Selector(value, selectorText);
                if (portless && portsText != "*")
                {
                    throw new PolicyException(value, $"ICMP has no ports: use \"{selectorText}:*\" with proto \"{proto!.Text}\"");
                }
                destinations.Add(new PolicyDestination(selector, ports));
            }
            var rule = new PolicyRule(sources, destinations, protocols, item.Line, item.Column);
            if (seen.Add(rule.Canonical))
            {
                rules.Add(rule);
            }
        }
        return rules;
    }

    private static List<PolicyTest> ParseTests(PolicyValue? section, Context context)
    {
        var tests = new List<PolicyTest>();
        if (section is null)
        {
            return tests;
        }
        Expect(section, PolicyValueKind.Array, "\"tests\"");
        foreach (var item in section.Items)
        {
            Expect(item, PolicyValueKind.Object, "a test");
            var fields = Members(item, TestKeys, "a test");
            var source = Required(fields, "src", item, "a test");
            Expect(source, PolicyValueKind.String, "\"src\"");
            var subject = context.Principal(source, source.Text);
            uint protocol = 6;
            string protocolText = "tcp";
            if (fields.TryGetValue("proto", out var proto))
            {
                var numbers = PolicySyntax.Protocol(proto, out protocolText);
                protocol = numbers[0];
            }
            var accept = Expectations(fields.GetValueOrDefault("accept"), "\"accept\"", context);
            var deny = Expectations(fields.GetValueOrDefault("deny"), "\"deny\"", context);
            tests.Add(new PolicyTest(source.Text, subject, protocol, protocolText, accept, deny));
        }
        return tests;
    }

    private static List<PolicyExpectation> Expectations(PolicyValue? list, string what, Context context)
    {
        var result = new List<PolicyExpectation>();
        if (list is null)
        {
            return result;
        }
        foreach (var value in Strings(list, what))
        {
            var (target, portText) = PolicySyntax.SplitPorts(value, value.Text);
            var ports = PolicySyntax.Ports(value, portText);
            if (ports.Count != 1 || ports[0].First != ports[0].Last)
            {
                throw new PolicyException(value, $"a test names one port (\"{value.Text}\")");
            }
            result.Add(new PolicyExpectation(value.Text, context.Principal(value, target), ports[0].First, value.Line, value.Column));
        }
        return result;
    }

    private static IPNetwork Prefix(PolicyValue at, string text)
    {
        if (!PolicySyntax.TryPrefix(text, out var prefix, out var problem))
        {
            throw new PolicyException(at, $"\"{text}\" is not an address or prefix");
        }
        if (problem is not null)
        {
            throw new PolicyException(at, problem);
        }
        return prefix;
    }

    private static void Expect(PolicyValue value, PolicyValueKind kind, string what)
    {
        if (value.Kind != kind)
        {
            var expected = kind switch
            {
                PolicyValueKind.Object => "an object",
                PolicyValueKind.Array => "an array",
                _ => "a string",
            };
            throw new PolicyException(value, $"{what} must be {expected}, not {value.Describe()}");
        }
    }

    private static List<PolicyValue> Strings(PolicyValue value, string what)
    {
        if (value.Kind != PolicyValueKind.Array)
        {
            throw new PolicyException(value, $"{what} must be an array of strings, not {value.Describe()}");
        }
        foreach (var item in value.Items)
        {
            if (item.Kind != PolicyValueKind.String)
            {
                throw new PolicyException(item, $"{what} must be an array of strings; this item is {item.Describe()}");
            }
        }
        return value.Items;
    }

    private static Dictionary<string, PolicyValue> Members(PolicyValue obj, string[] known, string what)
    {
        var result = new Dictionary<string, PolicyValue>(StringComparer.Ordinal);
        foreach (var member in obj.Members)
        {
            if (!known.Contains(member.Name, StringComparer.Ordinal))
            {
                throw new PolicyException(member.Line, member.Column,
                    $"unknown key \"{member.Name}\" in {what} (expected {string.Join(", ", known.Select(k => $"\"{k}\""))})");
            }
            result[member.Name] = member.Value;
        }
        return result;
    }

    private static PolicyValue Required(Dictionary<string, PolicyValue> fields, string key, PolicyValue at, string what) =>
        fields.TryGetValue(key, out var value) ? value : throw new PolicyException(at, $"{what} needs \"{key}\"");

    /// <summary>The declarations selectors resolve against.</summary>
    private sealed class Context(Dictionary<string, IReadOnlySet<string>> groups, Dictionary<string, IPNetwork> hosts,
        Dictionary<string, IReadOnlyList<string>> tagOwners)
    {
        public Selector Selector(PolicyValue at, string text)
        {
            if (text == "*")
            {
                return Policy.Selector.All;
            }
            if (text.StartsWith("group:", StringComparison.Ordinal))
            {
                return groups.TryGetValue(text, out var users)
                    ? Policy.Selector.Group(text, users)
                    : throw new PolicyException(at, $"undefined group \"{text}\"");
            }
            if (text.StartsWith("tag:", StringComparison.Ordinal))
            {
                return Policy.Selector.Tag(DeclaredTag(at, text));
            }
            if (text.Contains('@', StringComparison.Ordinal))
            {
                return Policy.Selector.User(PolicySyntax.User(at, text));
            }
            if (hosts.TryGetValue(text, out var host))
            {
                return Policy.Selector.Address(text, host);
            }
            if (PolicySyntax.TryPrefix(text, out var prefix, out var problem))
            {
                return problem is null ? Policy.Selector.Address(text, prefix) : throw new PolicyException(at, problem);
            }
            throw new PolicyException(at, $"unknown selector \"{text}\" (expected *, a user with '@', group:name, tag:name, a hosts alias, an address or a prefix)");
        }

        /// <summary>A test's principal: a user, a tag, a hosts alias or an address, as a hypothetical node.</summary>
        public PolicySubject Principal(PolicyValue at, string text)
        {
            if (text.StartsWith("tag:", StringComparison.Ordinal))
            {
                return new PolicySubject("", [DeclaredTag(at, text)], []);
            }
            if (text.StartsWith("group:", StringComparison.Ordinal) || text == "*")
            {
                throw new PolicyException(at, $"a test names one principal (a user, tag, host alias or address), not \"{text}\"");
            }
            if (text.Contains('@', StringComparison.Ordinal))
            {
                return new PolicySubject(PolicySyntax.User(at, text), [], []);
            }
            if (hosts.TryGetValue(text, out var host))
            {
                return new PolicySubject("", [], [host]);
            }
            if (PolicySyntax.TryAddress(text, out var address))
            {
                return new PolicySubject("", [], [new IPNetwork(address, address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128)]);
            }
            throw new PolicyException(at, $"unknown principal \"{text}\" (expected a user with '@', tag:name, a hosts alias or an address)");
        }

        private string DeclaredTag(PolicyValue at, string text)
        {
            PolicySyntax.Tag(at, text);
            return tagOwners.ContainsKey(text) ? text : throw new PolicyException(at, $"tag \"{text}\" is not declared in \"tagOwners\"");
        }
    }
}
