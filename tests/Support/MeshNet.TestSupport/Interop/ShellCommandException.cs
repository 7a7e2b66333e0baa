using System.Text;

namespace MeshNet.TestSupport.Interop;

/// <summary>A command failed to start, exited non-zero or timed out.</summary>
public sealed class ShellCommandException : Exception
{
    /// <summary>Creates the exception; the message names the command line, exit code and output.</summary>
    public ShellCommandException(string commandLine, int? exitCode, string standardOutput, string standardError, string problem, Exception? innerException = null)
        : base(FormatMessage(commandLine, problem, standardOutput, standardError), innerException)
    {
        CommandLine = commandLine;
        ExitCode = exitCode;
        StandardOutput = standardOutput;
        StandardError = standardError;
    }

    /// <summary>The command line, quoted for display.</summary>
    public string CommandLine { get; }

    /// <summary>The exit code, or null when the command did not start or was killed on timeout.</summary>
    public int? ExitCode { get; }

    /// <summary>Standard output captured so far.</summary>
    public string StandardOutput { get; }

    /// <summary>Standard error captured so far.</summary>
    public string StandardError { get; }

    private static string FormatMessage(string commandLine, string problem, string stdout, string stderr)
    {
        var message = new StringBuilder();
        message.Append("Command `").Append(commandLine).Append("` ").Append(problem).Append('.');
        if (stderr.Length > 0)
        {
            message.Append("\nstderr: ").Append(Shell.Truncate(stderr.TrimEnd()));
        }

        if (stdout.Length > 0)
        {
            message.Append("\nstdout: ").Append(Shell.Truncate(stdout.TrimEnd()));
        }

        return message.ToString();
    }
}
