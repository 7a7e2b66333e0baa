using System.ComponentModel;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace MeshNet.TestSupport.Interop;

/// <summary>
/// Creates sockets that live inside a <see cref="NetworkNamespace"/> while being used from
/// the test process: a short-lived thread enters the namespace with <c>setns(2)</c>, creates
/// the socket and exits, and the socket stays bound to that namespace for its lifetime. This
/// gives tests the real Linux UDP/TCP stack of the namespace through ordinary .NET sockets.
/// </summary>
public static partial class NamespaceSockets
{
    private const int CloneNewNet = 0x40000000;

    /// <summary>Creates a socket in <paramref name="ns"/>.</summary>
    /// <exception cref="Win32Exception">The namespace cannot be entered.</exception>
    public static Socket Create(NetworkNamespace ns, AddressFamily family, SocketType type, ProtocolType protocol)
    {
        ArgumentNullException.ThrowIfNull(ns);
        Socket? socket = null;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                using var handle = File.OpenHandle($"/var/run/netns/{ns.Name}", FileMode.Open, FileAccess.Read);
                if (SetNs((int)handle.DangerousGetHandle(), CloneNewNet) != 0)
                {
                    throw new Win32Exception(Marshal.GetLastPInvokeError(), $"setns into {ns.Name} failed");
                }
                socket = new Socket(family, type, protocol);
            }
            catch (Exception exception)
            {
                error = exception;
            }
        })
        {
            IsBackground = true,
            Name = "setns " + ns.Name,
        };
        thread.Start();
        thread.Join();
        if (error is not null)
        {
            throw error;
        }
        return socket!;
    }

    /// <summary>Requests a large receive buffer, bypassing rmem_max as root (SO_RCVBUFFORCE).</summary>
    public static void ForceReceiveBuffer(Socket socket, int bytes)
    {
        ArgumentNullException.ThrowIfNull(socket);
        const int SolSocket = 1;
        const int SoRcvBufForce = 33;
        socket.SetRawSocketOption(SolSocket, SoRcvBufForce, BitConverter.GetBytes(bytes));
    }

    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static partial int SetNs(int fd, int nstype);
}
