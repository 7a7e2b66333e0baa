using MeshNet.TestSupport.Interop;

namespace MeshNet.Interop.Tests.Infrastructure;

/// <summary>
/// A fact that needs root, network namespaces and the <see cref="Prerequisites.DefaultCommands"/>
/// (plus any commands passed to the constructor, e.g. <c>[InteropFact("iperf3")]</c>).
/// </summary>
/// <remarks>
/// When something is missing the test is skipped with the reason, unless the environment
/// variable <c>CI</c> is <c>true</c>: then it runs and fails, because its fixtures call
/// <see cref="Prerequisites.Require"/>, with a message naming what is missing. CI must never
/// pass by skipping the interop suite.
/// </remarks>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class InteropFactAttribute : FactAttribute
{
    /// <summary>Creates the attribute; <paramref name="additionalCommands"/> are required besides the defaults.</summary>
    public InteropFactAttribute(params string[] additionalCommands)
    {
        AdditionalCommands = additionalCommands;
        if (Prerequisites.SkipReason(additionalCommands) is { } reason)
        {
            Skip = reason;
        }
    }

    /// <summary>The commands required besides <see cref="Prerequisites.DefaultCommands"/>.</summary>
    public IReadOnlyList<string> AdditionalCommands { get; }
}

/// <summary>The theory counterpart of <see cref="InteropFactAttribute"/>, with the same skip policy.</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class InteropTheoryAttribute : TheoryAttribute
{
    /// <summary>Creates the attribute; <paramref name="additionalCommands"/> are required besides the defaults.</summary>
    public InteropTheoryAttribute(params string[] additionalCommands)
    {
        AdditionalCommands = additionalCommands;
        if (Prerequisites.SkipReason(additionalCommands) is { } reason)
        {
            Skip = reason;
        }
    }

    /// <summary>The commands required besides <see cref="Prerequisites.DefaultCommands"/>.</summary>
    public IReadOnlyList<string> AdditionalCommands { get; }
}
