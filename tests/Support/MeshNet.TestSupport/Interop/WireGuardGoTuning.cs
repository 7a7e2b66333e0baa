using System.ComponentModel;
using System.Globalization;
using System.Runtime.InteropServices;

namespace MeshNet.TestSupport.Interop;

/// <summary>
/// Takes the wireguard-go 0.0.20220316 that the tests run (and its TUN interface) out of the
/// way of loss measurements, as current wireguard-go does for itself:
/// <list type="bullet">
/// <item>Its UDP socket buffers stay at the kernel default of about 208 KiB, and under bulk TCP
/// the receive buffer overflows: about 11% of datagrams are dropped (<c>Udp: RcvbufErrors</c>)
/// even between two namespaces with nothing in between. Current wireguard-go forces 7 MiB;
/// <see cref="EnlargeSocketBuffers(WireGuardGoPeer, int)"/> does the same from outside.</item>
/// <item>Its TUN interface has a transmit queue of 500 packets, which the kernel's TCP overruns
/// on a path with tens of milliseconds of delay (the drops show as TX dropped on the interface,
/// one for one with the kernel's RetransSegs). <see cref="SetTransmitQueueAsync"/> raises it.</item>
/// </list>
/// Without this a "clean link" is lossy and drops cannot be attributed to an impairment.
/// </summary>
/// <remarks>
/// Socket buffers: <c>pidfd_getfd(2)</c> (Linux 5.6, root) duplicates each of the process's UDP
/// sockets into the test process, where <c>setsockopt(SO_RCVBUFFORCE/SO_SNDBUFFORCE)</c> sets
/// the sizes on the shared socket; the duplicates are closed again. The sockets are found by
/// inode in the process's <c>/proc/PID/net/udp</c> and <c>udp6</c> (the view of its namespace).
/// Call it after the listen port is set (the sockets exist from then on).
/// </remarks>
public static partial class WireGuardGoTuning
{
    /// <summary>The size current wireguard-go forces.</summary>
    public const int DefaultSize = 7 << 20;

    private const long SysPidfdOpen = 434;
    private const long SysPidfdGetfd = 438;

    /// <summary>The transmit queue length <see cref="SetTransmitQueueAsync"/> sets by default.</summary>
    public const int DefaultTransmitQueue = 10_000;

    /// <summary>Both adjustments: socket buffers and transmit queue.</summary>
    /// <exception cref="InvalidOperationException">No UDP socket of wireguard-go was found.</exception>
    public static async Task ApplyAsync(WireGuardGoPeer peer, CancellationToken cancellationToken = default)
    {
        if (EnlargeSocketBuffers(peer) == 0)
        {
            throw new InvalidOperationException($"wireguard-go {peer.InterfaceName} (pid {peer.ProcessId}) has no UDP socket to enlarge.");
        }
        await SetTransmitQueueAsync(peer, DefaultTransmitQueue, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Sets the transmit queue length (<c>txqueuelen</c>) of <paramref name="peer"/>'s TUN interface.</summary>
    public static Task SetTransmitQueueAsync(WireGuardGoPeer peer, int packets = DefaultTransmitQueue, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(peer);
        return peer.Namespace.IpAsync(["link", "set", "dev", peer.InterfaceName, "txqueuelen", packets.ToString(CultureInfo.InvariantCulture)], cancellationToken: cancellationToken);
    }

    /// <summary>Packets the TUN interface of <paramref name="peer"/> dropped so far (transmit: not taken by wireguard-go in time; receive).</summary>
    public static async Task<(long Transmit, long Receive)> ReadInterfaceDropsAsync(WireGuardGoPeer peer, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(peer);
        var directory = $"/sys/class/net/{peer.InterfaceName}/statistics";
        var text = (await peer.Namespace.ExecAsync("cat", [$"{directory}/tx_dropped", $"{directory}/rx_dropped"], cancellationToken: cancellationToken).ConfigureAwait(false)).StandardOutput;
        var values = text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(v => long.Parse(v, NumberStyles.None, CultureInfo.InvariantCulture)).ToArray();
        return (values[0], values[1]);
    }

    /// <summary>Sets the send and receive buffers of every UDP socket of <paramref name="peer"/>'s process; returns how many sockets were changed.</summary>
    /// <exception cref="Win32Exception">A syscall failed (not root, or a kernel without pidfd_getfd).</exception>
    public static int EnlargeSocketBuffers(WireGuardGoPeer peer, int bytes = DefaultSize)
    {
        ArgumentNullException.ThrowIfNull(peer);
        return EnlargeSocketBuffers(peer.ProcessId, bytes);
    }

    /// <summary>Sets the send and receive buffers of every UDP socket of process <paramref name="pid"/>.</summary>
    public static int EnlargeSocketBuffers(int pid, int bytes = DefaultSize)
    {
        var udpInodes = new HashSet<string>(StringComparer.Ordinal);
        foreach (var table in new[] { "udp", "udp6" })
        {
            var path = $"/proc/{pid}/net/{table}";
            if (!File.Exists(path))
            {
                continue;
            }
            foreach (var line in File.ReadLines(path).Skip(1))
            {
                var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (fields.Length > 9)
                {
                    udpInodes.Add(fields[9]);
                }
            }
        }

        int pidfd = (int)Syscall(SysPidfdOpen, pid, 0, 0);
        if (pidfd < 0)
        {
            throw new Win32Exception(Marshal.GetLastPInvokeError(), $"pidfd_open({pid}) failed");
        }
        try
        {
            int changed = 0;
            foreach (var entry in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
            {
                var target = new FileInfo(entry).LinkTarget ?? "";
                if (!target.StartsWith("socket:[", StringComparison.Ordinal) || !udpInodes.Contains(target[8..^1]))
                {
                    continue;
                }
                int remoteFd = int.Parse(Path.GetFileName(entry), NumberStyles.None, CultureInfo.InvariantCulture);
                int fd = (int)Syscall(SysPidfdGetfd, pidfd, remoteFd, 0);
                if (fd < 0)
                {
                    throw new Win32Exception(Marshal.GetLastPInvokeError(), $"pidfd_getfd({pid}, {remoteFd}) failed");
                }
                try
                {
                    // Plain setsockopt on the duplicate, then close(2): no .NET Socket, whose
                    // disposal logic (shutdown on abort) must never reach wireguard-go's socket.
                    const int SolSocket = 1, SoSndBufForce = 32, SoRcvBufForce = 33;
                    foreach (var option in new[] { SoRcvBufForce, SoSndBufForce })
                    {
                        int value = bytes;
                        if (SetSockOpt(fd, SolSocket, option, ref value, sizeof(int)) != 0)
                        {
                            throw new Win32Exception(Marshal.GetLastPInvokeError(), $"setsockopt({option}) on a socket of {pid} failed");
                        }
                    }
                }
                finally
                {
                    Close(fd);
                }
                changed++;
            }
            return changed;
        }
        finally
        {
            Close(pidfd);
        }
    }

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall(long number, long a, long b, long c);

    [LibraryImport("libc", EntryPoint = "setsockopt", SetLastError = true)]
    private static partial int SetSockOpt(int fd, int level, int name, ref int value, int length);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}
