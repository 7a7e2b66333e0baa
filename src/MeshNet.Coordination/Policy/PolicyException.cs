namespace MeshNet.Coordination.Policy;

/// <summary>
/// A policy that does not parse, does not validate, or whose own tests fail. The message is
/// exactly <c>line L, column C: problem</c>; <see cref="Line"/> and <see cref="Column"/> are
/// 1-based (columns count UTF-16 characters, not bytes).
/// </summary>
internal sealed class PolicyException : Exception
{
    public PolicyException(int line, int column, string problem)
        : base($"line {line}, column {column}: {problem}")
    {
        Line = line;
        Column = column;
        Problem = problem;
    }

    public PolicyException(PolicyValue at, string problem)
        : this(at.Line, at.Column, problem)
    {
    }

    public int Line { get; }

    public int Column { get; }

    public string Problem { get; }

    /// <summary>True when the policy parsed and validated but one of its tests failed.</summary>
    public bool IsTestFailure { get; init; }
}
