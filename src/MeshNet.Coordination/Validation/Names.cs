using System.Text;

namespace MeshNet.Coordination.Validation;

/// <summary>
/// Name rules: tailnet names, DNS labels derived from host names, DNS domains and tags.
/// Pure functions; thread-safe.
/// </summary>
internal static class Names
{
    /// <summary>The longest DNS label.</summary>
    public const int MaxLabelLength = 63;

    /// <summary>The label of a node whose host name yields nothing usable.</summary>
    public const string DefaultLabel = "node";

    /// <summary>Tags look like <c>tag:name</c>, the name being a DNS label.</summary>
    public const string TagPrefix = "tag:";

    /// <summary>
    /// True for a DNS label in canonical form: 1-63 characters of [a-z0-9-], not starting or
    /// ending with '-'. Tailnet names follow the same rule.
    /// </summary>
    public static bool IsLabel(string? value)
    {
        if (string.IsNullOrEmpty(value) || value.Length > MaxLabelLength || value[0] == '-' || value[^1] == '-')
        {
            return false;
        }
        foreach (char c in value)
        {
            if (!IsLabelChar(c))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>True for a lowercase DNS name of labels separated by dots, at most 253 characters.</summary>
    public static bool IsDnsName(string? value)
    {
        if (string.IsNullOrEmpty(value) || value.Length > 253)
        {
            return false;
        }
        foreach (var label in value.Split('.'))
        {
            if (!IsLabel(label))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>True for <c>tag:</c> followed by a DNS label.</summary>
    public static bool IsTag(string? value) =>
        value is not null && value.StartsWith(TagPrefix, StringComparison.Ordinal) && IsLabel(value[TagPrefix.Length..]);

    /// <summary>
    /// The DNS label of a host name: its first dot-separated part, lowercased, with every
    /// character outside [a-z0-9] turned into '-', runs of '-' collapsed, no leading or
    /// trailing '-', at most 63 characters; "node" when nothing is left.
    /// </summary>
    public static string LabelFromHostname(string? hostname)
    {
        if (string.IsNullOrEmpty(hostname))
        {
            return DefaultLabel;
        }
        int dot = hostname.IndexOf('.', StringComparison.Ordinal);
        var first = dot < 0 ? hostname : hostname[..dot];
        var builder = new StringBuilder(Math.Min(first.Length, MaxLabelLength));
        foreach (char raw in first)
        {
            char c = raw is >= 'A' and <= 'Z' ? (char)(raw + ('a' - 'A')) : raw;
            if (!IsLabelChar(c) || c == '-')
            {
                c = '-';
                if (builder.Length == 0 || builder[^1] == '-')
                {
                    continue;
                }
            }
            builder.Append(c);
            if (builder.Length == MaxLabelLength)
            {
                break;
            }
        }
        var label = builder.ToString().Trim('-');
        return label.Length == 0 ? DefaultLabel : label;
    }

    /// <summary>
    /// The <paramref name="n"/>-th candidate for <paramref name="label"/>: the label itself for
    /// 1, else <c>label-n</c>, the label shortened so the result stays within 63 characters.
    /// </summary>
    public static string Candidate(string label, int n)
    {
        if (n <= 1)
        {
            return label;
        }
        var suffix = "-" + n.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var stem = label.Length + suffix.Length > MaxLabelLength ? label[..(MaxLabelLength - suffix.Length)].TrimEnd('-') : label;
        return stem + suffix;
    }

    /// <summary>
    /// A prefix shared by every candidate of <paramref name="label"/> up to n = 10^9 (labels
    /// have no runs of '-', so shortening trims at most one character).
    /// </summary>
    public static string CandidatePrefix(string label) => label.Length <= 50 ? label : label[..50];

    private static bool IsLabelChar(char c) => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-';
}
