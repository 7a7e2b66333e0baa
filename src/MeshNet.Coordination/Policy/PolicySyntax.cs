using System.Globalization;
using System.Net;
using System.Net.Sockets;
using MeshNet.Coordination.Validation;

namespace MeshNet.Coordination.Policy;

/// <summary>
/// The small grammars inside policy strings: users, addresses and prefixes, port lists,
/// protocols, and splitting "selector:ports". Each failure is a <see cref="PolicyException"/>
/// at the value. Pure; thread-safe.
/// </summary>
internal static class PolicySyntax
{
    public const int MaxUserLength = 256;

    /// <summary>Whether <paramref name="user"/> is a well-formed user name (contains '@', no whitespace or ':', at most 256 characters).</summary>
    public static bool IsUser(string user) =>
        user.Length is > 0 and <= MaxUserLength && user.Contains('@', StringComparison.Ordinal) &&
        !user.Any(c => char.IsWhiteSpace(c) || char.IsControl(c) || c == ':');

    public static string User(PolicyValue at, string text)
    {
        if (!IsUser(text))
        {
            throw new PolicyException(at, $"\"{text}\" is not a valid user (expected a name with '@', no whitespace or ':', at most {MaxUserLength} characters)");
        }
        return text;
    }

    public static string Tag(PolicyValue at, string text)
    {
        if (!Names.IsTag(text))
        {
            throw new PolicyException(at, $"\"{text}\" is not a valid tag (expected 'tag:' and a DNS label of [a-z0-9-], at most 63 characters)");
        }
        return text;
    }

    /// <summary>A strict address ("100.64.0.1", "fd7a::1") or prefix ("100.64.0.0/10"); false when the text is neither.</summary>
    public static bool TryPrefix(string text, out IPNetwork prefix, out string? problem)
    {
        prefix = default;
        problem = null;
        int slash = text.IndexOf('/', StringComparison.Ordinal);
        var addressText = slash < 0 ? text : text[..slash];
        if (!TryAddress(addressText, out var address))
        {
            return false;
        }
        int max = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        int length = max;
        if (slash >= 0)
        {
            var lengthText = text[(slash + 1)..];
            if (lengthText.Length is 0 or > 3 || !lengthText.All(char.IsAsciiDigit) ||
                !int.TryParse(lengthText, NumberStyles.None, CultureInfo.InvariantCulture, out length) || length > max)
            {
                problem = $"\"{text}\" has a bad prefix length (expected 0-{max})";
                return true;
            }
        }
        prefix = new IPNetwork(Masked(address, length), length);
        if (!prefix.BaseAddress.Equals(address))
        {
            problem = $"\"{text}\" has address bits set after the prefix length (did you mean {prefix}?)";
        }
        return true;
    }

    /// <summary>Dotted-quad IPv4 or IPv6 without a zone; nothing that IPAddress.TryParse merely tolerates.</summary>
    public static bool TryAddress(string text, out IPAddress address)
    {
        address = IPAddress.None;
        if (text.Length is 0 or > 45 || text.Contains('%', StringComparison.Ordinal))
        {
            return false;
        }
        if (text.Contains(':', StringComparison.Ordinal))
        {
            if (!text.All(c => char.IsAsciiHexDigit(c) || c is ':' or '.') || !IPAddress.TryParse(text, out var v6) ||
                v6.AddressFamily != AddressFamily.InterNetworkV6)
            {
                return false;
            }
            address = v6;
            return true;
        }
        var parts = text.Split('.');
        if (parts.Length != 4 || parts.Any(part => part.Length is 0 or > 3 || !part.All(char.IsAsciiDigit) || int.Parse(part, CultureInfo.InvariantCulture) > 255))
        {
            return false;
        }
        address = IPAddress.Parse(text);
        return true;
    }

    /// <summary>"*", "N", "N-M" or a comma list of those. A single port is 1-65535; a range may start at 0.</summary>
    public static IReadOnlyList<PortSpan> Ports(PolicyValue at, string text)
    {
        if (text == "*")
        {
            return [PortSpan.Any];
        }
        var spans = new List<PortSpan>();
        foreach (var item in text.Split(','))
        {
            int dash = item.IndexOf('-', StringComparison.Ordinal);
            if (dash < 0)
            {
                uint port = Port(at, item, text);
                if (port == 0)
                {
                    throw new PolicyException(at, $"port 0 in \"{text}\" is not a port (ranges may start at 0)");
                }
                spans.Add(new PortSpan(port, port));
                continue;
            }
            uint first = Port(at, item[..dash], text);
            uint last = Port(at, item[(dash + 1)..], text);
            if (first > last)
            {
                throw new PolicyException(at, $"port range \"{item}\" in \"{text}\" ends before it starts");
            }
            spans.Add(new PortSpan(first, last));
        }
        return spans;
    }

    /// <summary>A protocol name or number, as its IANA number.</summary>
    public static IReadOnlyList<uint> Protocol(PolicyValue value, out string display)
    {
        string text = value.Text;
        display = text;
        if (value.Kind is not (PolicyValueKind.String or PolicyValueKind.Number))
        {
            throw new PolicyException(value, $"\"proto\" must be a string or number, not {value.Describe()}");
        }
        switch (text)
        {
            case "tcp": return [6];
            case "udp": return [17];
            case "icmp": return [1];
            case "ipv6-icmp" or "icmpv6": return [58];
        }
        if (text.Length is > 0 and <= 3 && text.All(char.IsAsciiDigit) && uint.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var number) && number <= 255)
        {
            return [number];
        }
        throw new PolicyException(value, $"unknown protocol \"{text}\" (expected tcp, udp, icmp, ipv6-icmp, icmpv6 or a number 0-255)");
    }

    /// <summary>Splits "selector:ports" at the last ':' ("[v6]:ports" unbracketed).</summary>
    public static (string Selector, string Ports) SplitPorts(PolicyValue at, string text)
    {
        int colon = text.LastIndexOf(':');
        if (colon <= 0 || colon == text.Length - 1)
        {
            throw new PolicyException(at, $"\"{text}\" needs ports after the last ':' (e.g. \"{(text.Length == 0 ? "*" : text.TrimEnd(':'))}:*\")");
        }
        var selector = text[..colon];
        if (selector.StartsWith('[') && selector.EndsWith(']'))
        {
            selector = selector[1..^1];
        }
        return (selector, text[(colon + 1)..]);
    }

    private static uint Port(PolicyValue at, string text, string whole)
    {
        if (text.Length is 0 or > 5 || !text.All(char.IsAsciiDigit) || !uint.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port > 65535)
        {
            throw new PolicyException(at, $"bad port \"{text}\" in \"{whole}\" (expected *, N, N-M or a comma list of those, ports 0-65535)");
        }
        return port;
    }

    private static IPAddress Masked(IPAddress address, int length)
    {
        var bytes = address.GetAddressBytes();
        for (int i = 0; i < bytes.Length; i++)
        {
            int keep = Math.Clamp(length - i * 8, 0, 8);
            bytes[i] &= (byte)(0xFF << (8 - keep));
        }
        return new IPAddress(bytes);
    }
}
