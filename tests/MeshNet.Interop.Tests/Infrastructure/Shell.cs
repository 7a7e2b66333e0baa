using System.ComponentModel;
using System.Diagnostics;
using System.Text;

namespace MeshNet.Interop.Tests.Infrastructure;

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

/// <summary>
/// Runs external commands with an argument list (never a shell string, so no quoting bugs),
/// a timeout, and captured output. Every command runs with <c>LC_ALL=C</c> so that the output
/// parsed by the harness does not depend on the machine's locale.
/// </summary>
public static class Shell
{
    private const int MaxMessageOutput = 4000;

    /// <summary>Runs a command to completion, blocking the calling thread.</summary>
    /// <exception cref="ShellCommandException">The command could not start, timed out, or exited non-zero while <see cref="ShellOptions.Check"/> is set.</exception>
    public static ShellResult Run(string fileName, IReadOnlyList<string> arguments, ShellOptions? options = null)
    {
        options ??= ShellOptions.Default;
        using var process = StartProcess(fileName, arguments, options, out var commandLine);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        WriteInput(process, options);
        if (!process.WaitForExit(options.Timeout))
        {
            KillTree(process);
            throw new ShellCommandException(commandLine, null, Drain(stdout), Drain(stderr), $"timed out after {options.Timeout.TotalSeconds:0.#} s and was killed");
        }

        // The process has exited; a grandchild that inherited the pipes could still hold them open.
        if (!Task.WaitAll([stdout, stderr], TimeSpan.FromSeconds(5)))
        {
            throw new ShellCommandException(commandLine, process.ExitCode, Drain(stdout), Drain(stderr), "exited but a child process kept its output open");
        }

        return Complete(commandLine, process.ExitCode, stdout.Result, stderr.Result, options);
    }

    /// <summary>Runs a command to completion asynchronously.</summary>
    /// <exception cref="ShellCommandException">The command could not start, timed out, or exited non-zero while <see cref="ShellOptions.Check"/> is set.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (the command is killed).</exception>
    public static async Task<ShellResult> RunAsync(string fileName, IReadOnlyList<string> arguments, ShellOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= ShellOptions.Default;
        using var process = StartProcess(fileName, arguments, options, out var commandLine);
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        WriteInput(process, options);

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.Timeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
            await Task.WhenAll(stdout, stderr).WaitAsync(TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            KillTree(process);
            cancellationToken.ThrowIfCancellationRequested();
            throw new ShellCommandException(commandLine, null, Drain(stdout), Drain(stderr), $"timed out after {options.Timeout.TotalSeconds:0.#} s and was killed");
        }
        catch (TimeoutException)
        {
            throw new ShellCommandException(commandLine, process.ExitCode, Drain(stdout), Drain(stderr), "exited but a child process kept its output open");
        }

        return Complete(commandLine, process.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false), options);
    }

    /// <summary>Runs a command; equivalent to <see cref="RunAsync(string, IReadOnlyList{string}, ShellOptions?, CancellationToken)"/> with default options.</summary>
    public static Task<ShellResult> RunAsync(string fileName, IReadOnlyList<string> arguments, CancellationToken cancellationToken)
        => RunAsync(fileName, arguments, null, cancellationToken);

    /// <summary>Formats a command line for messages: arguments with spaces or quotes are single-quoted.</summary>
    public static string FormatCommandLine(string fileName, IEnumerable<string> arguments)
        => string.Join(' ', new[] { fileName }.Concat(arguments).Select(Quote));

    /// <summary>Creates the start info shared by <see cref="Shell"/> and <see cref="BackgroundProcess"/>.</summary>
    internal static ProcessStartInfo CreateStartInfo(string fileName, IReadOnlyList<string> arguments, IReadOnlyDictionary<string, string>? environment)
    {
        ArgumentException.ThrowIfNullOrEmpty(fileName);
        ArgumentNullException.ThrowIfNull(arguments);
        var startInfo = new ProcessStartInfo(fileName)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument ?? throw new ArgumentException("Arguments must not be null.", nameof(arguments)));
        }

        startInfo.Environment["LC_ALL"] = "C";
        if (environment is not null)
        {
            foreach (var (key, value) in environment)
            {
                startInfo.Environment[key] = value;
            }
        }

        return startInfo;
    }

    /// <summary>Starts a process or throws <see cref="ShellCommandException"/> naming the command.</summary>
    internal static Process Start(ProcessStartInfo startInfo, string commandLine)
    {
        var process = new Process { StartInfo = startInfo };
        try
        {
            process.Start();
            return process;
        }
        catch (Win32Exception e)
        {
            process.Dispose();
            throw new ShellCommandException(commandLine, null, "", "", $"could not be started ({e.Message}); is `{startInfo.FileName}` installed and on PATH?", e);
        }
    }

    /// <summary>Kills a process and its descendants, ignoring a process that already exited.</summary>
    internal static void KillTree(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Already exited.
        }
    }

    internal static string Truncate(string text)
        => text.Length <= MaxMessageOutput ? text : string.Concat(text.AsSpan(0, MaxMessageOutput), $"... ({text.Length - MaxMessageOutput} more characters)");

    private static Process StartProcess(string fileName, IReadOnlyList<string> arguments, ShellOptions options, out string commandLine)
    {
        commandLine = FormatCommandLine(fileName, arguments);
        return Start(CreateStartInfo(fileName, arguments, options.Environment), commandLine);
    }

    private static void WriteInput(Process process, ShellOptions options)
    {
        try
        {
            if (options.StandardInput is not null)
            {
                process.StandardInput.Write(options.StandardInput);
            }

            process.StandardInput.Close();
        }
        catch (IOException)
        {
            // The command exited without reading its input; its exit code tells the story.
        }
    }

    private static ShellResult Complete(string commandLine, int exitCode, string stdout, string stderr, ShellOptions options)
    {
        if (options.Check && exitCode != 0)
        {
            throw new ShellCommandException(commandLine, exitCode, stdout, stderr, $"exited with code {exitCode}");
        }

        return new ShellResult(commandLine, exitCode, stdout, stderr);
    }

    private static string Drain(Task<string> output)
        => output.Wait(TimeSpan.FromSeconds(2)) && output.IsCompletedSuccessfully ? output.Result : "";

    private static string Quote(string argument)
        => argument.Length > 0 && !argument.Any(c => char.IsWhiteSpace(c) || c is '\'' or '"' or '\\' or '$' or '`' or ';' or '&' or '|')
            ? argument
            : "'" + argument.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
