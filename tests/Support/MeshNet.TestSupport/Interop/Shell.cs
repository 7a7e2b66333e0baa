using System.ComponentModel;
using System.Diagnostics;
using System.Text;

namespace MeshNet.TestSupport.Interop;

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
