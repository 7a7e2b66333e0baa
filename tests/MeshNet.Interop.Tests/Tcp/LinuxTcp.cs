using System.Globalization;
using System.Net;
using System.Net.Sockets;
using MeshNet.TestSupport.Interop;

namespace MeshNet.Interop.Tests.Tcp;

/// <summary>
/// The Linux kernel's TCP inside a <see cref="NetworkNamespace"/>, driven from the test process
/// through sockets created in the namespace (<see cref="NamespaceSockets"/>).
/// </summary>
internal static class LinuxTcp
{
    /// <summary>A listening socket in <paramref name="ns"/> at <paramref name="endPoint"/>.</summary>
    /// <param name="ns">The namespace.</param>
    /// <param name="endPoint">Where to listen (port 0: any).</param>
    /// <param name="backlog">The accept backlog.</param>
    /// <param name="receiveBuffer">SO_RCVBUF for accepted sockets (inherited from the listener); null keeps the kernel's auto-tuning.</param>
    public static Socket Listen(NetworkNamespace ns, IPEndPoint endPoint, int backlog = 512, int? receiveBuffer = null)
    {
        var socket = NamespaceSockets.Create(ns, endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (receiveBuffer is { } size)
            {
                socket.ReceiveBufferSize = size;
            }
            socket.Bind(endPoint);
            socket.Listen(backlog);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Connects from <paramref name="ns"/> to <paramref name="remote"/>.</summary>
    public static async Task<Socket> ConnectAsync(NetworkNamespace ns, IPEndPoint remote, int? receiveBuffer = null, CancellationToken cancellationToken = default)
    {
        var socket = NamespaceSockets.Create(ns, remote.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (receiveBuffer is { } size)
            {
                socket.ReceiveBufferSize = size;
            }
            socket.NoDelay = true;
            await socket.ConnectAsync(remote, cancellationToken).ConfigureAwait(false);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>A stream over <paramref name="socket"/> that owns it.</summary>
    public static NetworkStream Stream(Socket socket) => new(socket, ownsSocket: true);

    /// <summary>A half-close (FIN) of <paramref name="socket"/>, as a transfer's finish step.</summary>
    public static Func<ValueTask> ShutdownWrite(Socket socket) => () =>
    {
        socket.Shutdown(SocketShutdown.Send);
        return ValueTask.CompletedTask;
    };
}

/// <summary>
/// The TCP counters of a namespace's kernel: <c>/proc/net/snmp</c> (<c>Tcp:</c>, e.g.
/// <c>RetransSegs</c>, <c>OutSegs</c>, <c>InErrs</c>) and <c>/proc/net/netstat</c>
/// (<c>TcpExt:</c>, e.g. <c>TCPLostRetransmit</c>, <c>TCPDSACKRecv</c>, <c>TCPToZeroWindowAdv</c>),
/// read with <c>cat</c> inside the namespace (what <c>netstat -s</c> prints).
/// </summary>
internal sealed class LinuxTcpCounters
{
    private readonly Dictionary<string, long> _values;

    private LinuxTcpCounters(Dictionary<string, long> values) => _values = values;

    /// <summary>A counter by <c>Group.Name</c> (e.g. <c>Tcp.RetransSegs</c>, <c>TcpExt.TCPToZeroWindowAdv</c>); 0 when absent.</summary>
    public long this[string name] => _values.GetValueOrDefault(name);

    /// <summary>Segments the kernel retransmitted.</summary>
    public long RetransSegs => this["Tcp.RetransSegs"];

    /// <summary>Segments the kernel sent.</summary>
    public long OutSegs => this["Tcp.OutSegs"];

    /// <summary>Segments the kernel received.</summary>
    public long InSegs => this["Tcp.InSegs"];

    public static async Task<LinuxTcpCounters> ReadAsync(NetworkNamespace ns, CancellationToken cancellationToken = default)
    {
        var values = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var file in new[] { "/proc/net/snmp", "/proc/net/netstat" })
        {
            var text = (await ns.ExecAsync("cat", [file], cancellationToken: cancellationToken).ConfigureAwait(false)).StandardOutput;
            Parse(text, values);
        }
        return new LinuxTcpCounters(values);
    }

    /// <summary>Parses the "Group: names" / "Group: values" line pairs of <c>/proc/net/snmp</c>-style text.</summary>
    public static void Parse(string text, Dictionary<string, long> into)
    {
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        for (int i = 0; i + 1 < lines.Length; i += 2)
        {
            var names = lines[i].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var values = lines[i + 1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (names.Length != values.Length || names[0] != values[0])
            {
                throw new FormatException($"Unexpected counter lines: `{lines[i]}` / `{lines[i + 1]}`.");
            }
            var group = names[0].TrimEnd(':');
            for (int j = 1; j < names.Length; j++)
            {
                into[$"{group}.{names[j]}"] = long.Parse(values[j], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            }
        }
    }

    /// <summary>Counter-by-counter difference <c>this - earlier</c>.</summary>
    public LinuxTcpCounters Minus(LinuxTcpCounters earlier) =>
        new(_values.ToDictionary(pair => pair.Key, pair => pair.Value - earlier[pair.Key], StringComparer.Ordinal));

    /// <summary>The counters that bear on loss recovery, for reports.</summary>
    public override string ToString() =>
        string.Join(' ', new[]
        {
            "Tcp.OutSegs", "Tcp.InSegs", "Tcp.RetransSegs", "TcpExt.TCPLostRetransmit", "TcpExt.TCPSackRecovery", "TcpExt.TCPTimeouts",
            "TcpExt.TCPDSACKRecv", "TcpExt.TCPDSACKOldSent", "TcpExt.TCPSpuriousRTOs", "TcpExt.TCPOFOQueue", "TcpExt.TCPToZeroWindowAdv",
            "Udp.RcvbufErrors", "Udp.SndbufErrors",
        }.Select(name => $"{name.Split('.')[1]}={this[name]}"));
}
