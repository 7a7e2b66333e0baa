namespace MeshNet.Coordination.Policy;

/// <summary>The kinds of value in a parsed policy document.</summary>
internal enum PolicyValueKind
{
    Object,
    Array,
    String,
    Number,
    Boolean,
    Null,
}

/// <summary>
/// One value of a parsed HuJSON document with its 1-based position (the first character of
/// its token). Immutable after parsing.
/// </summary>
internal sealed class PolicyValue
{
    public PolicyValue(PolicyValueKind kind, int line, int column, string text = "")
    {
        Kind = kind;
        Line = line;
        Column = column;
        Text = text;
    }

    public PolicyValueKind Kind { get; }

    public int Line { get; }

    public int Column { get; }

    /// <summary>The string's value, a number's raw text, or "true"/"false"/"null".</summary>
    public string Text { get; }

    /// <summary>The object's members in document order (empty for other kinds).</summary>
    public List<PolicyMember> Members { get; } = [];

    /// <summary>The array's items (empty for other kinds).</summary>
    public List<PolicyValue> Items { get; } = [];

    public string Describe() => Kind switch
    {
        PolicyValueKind.Object => "an object",
        PolicyValueKind.Array => "an array",
        PolicyValueKind.String => "a string",
        PolicyValueKind.Number => "a number",
        PolicyValueKind.Boolean => "a boolean",
        _ => "null",
    };
}

/// <summary>An object member: its key (with the key's position) and value.</summary>
internal sealed record PolicyMember(string Name, int Line, int Column, PolicyValue Value);
