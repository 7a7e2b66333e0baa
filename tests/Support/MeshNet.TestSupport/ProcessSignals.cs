using System.Runtime.InteropServices;

namespace MeshNet.TestSupport;

/// <summary>
/// Signals processes by pid. .NET can only send SIGKILL (<c>Process.Kill</c>); a graceful stop
/// needs SIGTERM (wireguard-go then removes its UAPI socket and TUN device itself), and pausing a
/// process SIGSTOP and SIGCONT.
/// </summary>
public static partial class ProcessSignals
{
    /// <summary>SIGKILL.</summary>
    public const int Kill = 9;

    /// <summary>SIGTERM.</summary>
    public const int Terminate = 15;

    /// <summary>SIGCONT (x86-64 and arm64 Linux).</summary>
    public const int Continue = 18;

    /// <summary>SIGSTOP (x86-64 and arm64 Linux).</summary>
    public const int Stop = 19;

    /// <summary>Sends <paramref name="signal"/> to <paramref name="pid"/>; false when the process does not exist (or the signal was refused).</summary>
    public static bool Send(int pid, int signal)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(pid);
        return SysKill(pid, signal) == 0;
    }

    /// <summary>True while a process with this pid exists (in this pid namespace), zombies included.</summary>
    public static bool IsAlive(int pid) => pid > 0 && Directory.Exists($"/proc/{pid}");

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SysKill(int pid, int signal);
}
