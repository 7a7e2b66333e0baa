namespace MeshNet.TestSupport.Interop;

/// <summary>Options for one <see cref="Shell"/> command.</summary>
public sealed record ShellOptions
{
    /// <summary>The options used when none are given: 30 s timeout, non-zero exit code throws.</summary>
    public static ShellOptions Default { get; } = new();

    /// <summary>How long the command may run before it is killed (with its process tree).</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>When true (the default) a non-zero exit code throws <see cref="ShellCommandException"/>.</summary>
    public bool Check { get; init; } = true;

    /// <summary>Text written to the command's standard input, which is then closed. Null: empty input.</summary>
    public string? StandardInput { get; init; }

    /// <summary>Extra environment variables (added to the inherited environment).</summary>
    public IReadOnlyDictionary<string, string>? Environment { get; init; }

    /// <summary>Options identical to the defaults except that a non-zero exit code is returned, not thrown.</summary>
    public static ShellOptions Unchecked { get; } = new() { Check = false };
}
