using System.Net;
using System.Net.Sockets;
using MeshNet.Userspace.Link;
using MeshNet.Userspace.Stack.Icmp;
using MeshNet.Userspace.Stack.Ip;
using MeshNet.Userspace.Stack.Tcp;
using MeshNet.Userspace.Stack.Udp;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace MeshNet.Userspace.Stack;

/// <summary>
/// A userspace TCP/IP stack for one host: IPv4 and IPv6 with fragment reassembly, ICMP echo
/// and errors, UDP sockets and TCP connections. It does no I/O and owns no thread: the link
/// writes inbound packets into it (<see cref="WritePacket"/>, typically a WireGuard device's
/// receive thread), it writes outbound packets into <see cref="IpStackOptions.Link"/>
/// synchronously, and its timers run on <see cref="IpStackOptions.TimeProvider"/>.
/// </summary>
/// <remarks>
/// <para>Thread safety: every public member may be called from any thread, concurrently;
/// inbound packets may arrive on several threads at once.</para>
/// <para>Ownership: the stack does not own its link (disposing the stack does not dispose it).
/// It owns the sockets, listeners and connections it creates: disposing the stack closes them
/// all, fails their pending operations, and stops every timer. After disposal, inbound packets
/// are dropped (<see cref="StackDropReason.StackDisposed"/>), nothing more is sent, and the
/// methods that create sockets throw <see cref="ObjectDisposedException"/>.</para>
/// <para>Bad input never throws: every packet that is not processed is counted in
/// <see cref="Counters"/> by <see cref="StackDropReason"/>.</para>
/// </remarks>
public sealed partial class IpStack : IPacketSink, IAsyncDisposable, IDisposable
{
    private readonly StackContext _context;
    private readonly IpOutput _output;
    private readonly IcmpErrorSender _icmpErrors;
    private readonly FragmentReassembler _reassembler;
    private readonly UdpLayer _udp;
    private readonly TcpLayer _tcp;
    private readonly IpLayer _ip;
    private readonly IReadOnlyList<IPAddress> _addresses;
    private int _disposed;

    private IpStack(IpStackOptions options)
    {
        var logger = options.LoggerFactory?.CreateLogger<IpStack>() ?? (ILogger)NullLogger.Instance;
        _context = new StackContext(options, logger);
        _addresses = _context.Addresses.Select(address => address.ToIPAddress()).ToArray();
        _output = new IpOutput(_context);
        _context.Output = _output;
        _icmpErrors = new IcmpErrorSender(_context);
        _reassembler = new FragmentReassembler(_context, _icmpErrors);
        try
        {
            _udp = new UdpLayer(_context, _icmpErrors);
            _tcp = new TcpLayer(_context);
            var icmp = new IcmpLayer(_context, _udp, _tcp);
            _ip = new IpLayer(_context, icmp, _udp, _tcp, _icmpErrors, _reassembler);
        }
        catch
        {
            _reassembler.Dispose(); // its timer
            throw;
        }
    }

    /// <summary>
    /// Creates a stack. The options are validated and copied (changing them afterwards has no
    /// effect), except <see cref="IpStackOptions.Tcp"/>, which is used as it is.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="options"/> is null.</exception>
    /// <exception cref="ArgumentException">An option is missing or invalid (the message names it).</exception>
    public static IpStack Create(IpStackOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var addresses = new IPAddress[options.Addresses.Count];
        for (int i = 0; i < addresses.Length; i++)
        {
            addresses[i] = ValidateAddress(options.Addresses[i]);
        }
        var snapshot = new IpStackOptions
        {
            Link = options.Link,
            Addresses = addresses,
            Mtu = options.Mtu,
            TimeProvider = options.TimeProvider,
            LoggerFactory = options.LoggerFactory,
            MemoryBudget = options.MemoryBudget,
            MaxReassemblyBytes = options.MaxReassemblyBytes,
            ReassemblyTimeout = options.ReassemblyTimeout,
            IcmpErrorsPerSecond = options.IcmpErrorsPerSecond,
            Tcp = options.Tcp,
            InboundFilter = options.InboundFilter,
        };
        var stack = new IpStack(snapshot);
        StackLog.Started(stack._context.Logger, string.Join(", ", stack._addresses), snapshot.Mtu);
        return stack;
    }

    /// <summary>The stack's own addresses (IPv4-mapped addresses given in the options appear as IPv4).</summary>
    public IReadOnlyList<IPAddress> Addresses => _addresses;

    /// <summary>The link MTU: the largest IP packet the stack sends; larger datagrams are fragmented.</summary>
    public int Mtu => _context.Mtu;

    /// <summary>Live traffic and drop counters.</summary>
    public IpStackCounters Counters => _context.Counters;

    /// <summary>Bytes of the stack's <see cref="IpStackOptions.MemoryBudget"/> in use now (queued datagrams, fragments, TCP buffers).</summary>
    public long MemoryInUse => _context.Budget.Used;

    /// <summary>
    /// Takes one inbound IP packet from the link (IPv4 or IPv6, starting at the IP header) and
    /// processes it on the calling thread: ICMP replies and errors it causes are sent to the link
    /// before this returns; data is queued for sockets, whose waiting readers continue
    /// asynchronously. <paramref name="packet"/> is only read during the call. Never throws for
    /// bad packets: they are dropped and counted. Safe to call from several threads at once.
    /// </summary>
    public void WritePacket(ReadOnlySpan<byte> packet)
    {
        _context.Counters.PacketReceived();
        if (Volatile.Read(ref _disposed) != 0)
        {
            _context.Counters.Drop(StackDropReason.StackDisposed);
            return;
        }
        try
        {
            _ip.Receive(packet);
        }
        catch (Exception e)
        {
            // A bug, not bad input (which is dropped and counted where it is found): keep the
            // link's thread alive and make the failure visible.
            _context.Counters.Drop(StackDropReason.StackInternalError);
            StackLog.InboundError(_context.Logger, e);
        }
    }

    /// <summary>
    /// Opens a UDP socket bound to <paramref name="localEndPoint"/>.
    /// </summary>
    /// <param name="localEndPoint">
    /// One of the stack's addresses, <see cref="IPAddress.Any"/> (every IPv4 address) or
    /// <see cref="IPAddress.IPv6Any"/> (every address of both families: dual-stack); an
    /// IPv4-mapped address means the IPv4 address. Port 0 picks a free port in 49152-65535.
    /// </param>
    /// <returns>The socket; the caller owns it and disposes it to release the port.</returns>
    /// <exception cref="SocketException">
    /// <see cref="SocketError.AddressAlreadyInUse"/>: a socket is bound to an overlapping
    /// address on that port (a wildcard overlaps every address it covers), or no ephemeral port is
    /// free. <see cref="SocketError.AddressNotAvailable"/>: the address is not one of the stack's.
    /// </exception>
    /// <exception cref="ArgumentException">The address is neither IPv4 nor IPv6.</exception>
    /// <exception cref="ObjectDisposedException">The stack has been disposed.</exception>
    public UdpSocket BindUdp(IPEndPoint localEndPoint)
    {
        ArgumentNullException.ThrowIfNull(localEndPoint);
        ThrowIfDisposed();
        return _udp.Bind(localEndPoint);
    }

    /// <summary>
    /// Stops the stack: closes every socket and connection (pending operations fail with
    /// <see cref="ObjectDisposedException"/>), drops held fragments, stops the timers and stops
    /// sending. Idempotent.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        try
        {
            _tcp.Dispose(); // first: it may still send resets
        }
        finally
        {
            try
            {
                _udp.Dispose();
            }
            finally
            {
                _reassembler.Dispose();
                _output.Close();
                StackLog.Stopped(_context.Logger);
            }
        }
    }

    /// <summary>Stops the stack as <see cref="Dispose"/> does.</summary>
    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>The reassembler, for tests.</summary>
    internal FragmentReassembler Reassembler => _reassembler;

    /// <summary>The shared context, for tests and the TCP side of the stack.</summary>
    internal StackContext Context => _context;

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    private static IPAddress ValidateAddress(IPAddress? address)
    {
        const string Name = nameof(IpStackOptions.Addresses);
        if (address is null)
        {
            throw new ArgumentException("IpStackOptions.Addresses contains null.", Name);
        }
        if (address.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
        {
            throw new ArgumentException($"IpStackOptions.Addresses must be IPv4 or IPv6 addresses, not {address.AddressFamily}.", Name);
        }
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }
        if (!IpAddressRules.IsUnicast(Net.NetAddress.FromIPAddress(address)))
        {
            throw new ArgumentException($"IpStackOptions.Addresses must be unicast addresses, not {address}.", Name);
        }
        return address;
    }
}
