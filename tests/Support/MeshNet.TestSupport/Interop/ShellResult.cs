namespace MeshNet.TestSupport.Interop;

/// <summary>The outcome of a command that ran to completion.</summary>
/// <param name="CommandLine">The command line, quoted for display only (it was never given to a shell).</param>
/// <param name="ExitCode">The process exit code.</param>
/// <param name="StandardOutput">Everything the command wrote to standard output.</param>
/// <param name="StandardError">Everything the command wrote to standard error.</param>
public sealed record ShellResult(string CommandLine, int ExitCode, string StandardOutput, string StandardError)
{
    /// <summary>True when the exit code is zero.</summary>
    public bool Succeeded => ExitCode == 0;
}
