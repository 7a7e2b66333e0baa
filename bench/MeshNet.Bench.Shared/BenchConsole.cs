using System.Runtime.InteropServices;

namespace MeshNet.Bench;

/// <summary>What every end-to-end benchmark program prints first and how it stops on Ctrl+C (referenced by every benchmark program).</summary>
public static class BenchConsole
{
    /// <summary>Prints "<paramref name="title"/>: cores, runtime, OS", and a warning in a Debug build.</summary>
    public static void PrintMachine(string title)
    {
        Console.WriteLine($"{title}: {Environment.ProcessorCount} cores, {RuntimeInformation.FrameworkDescription}, {RuntimeInformation.OSDescription}");
#if DEBUG
        Console.WriteLine("WARNING: a Debug build; run with -c Release for meaningful figures.");
#endif
    }

    /// <summary>A token source that Ctrl+C cancels (instead of killing the process); the caller disposes it.</summary>
    public static CancellationTokenSource CancelOnCtrlC()
    {
        var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            cancel.Cancel();
        };
        return cancel;
    }
}
