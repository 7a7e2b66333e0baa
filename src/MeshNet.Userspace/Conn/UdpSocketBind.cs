using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using MeshNet.Userspace.Net;

namespace MeshNet.Userspace.Conn;

/// <summary>
/// The real <see cref="IUdpBind"/>: one operating-system UDP socket, read by one dedicated
/// receive thread. By default the socket is dual-stack (IPv6 with IPv4-mapped addresses), so one
/// bind reaches IPv4 and IPv6 peers; see <see cref="UdpSocketBindOptions.BindAddress"/>.
/// </summary>
/// <remarks>
/// <para>
/// Thread safety: <see cref="Send"/> and <see cref="Port"/> may be used from any number of
/// threads at once, also while <see cref="Open"/>, <see cref="Close"/> or <see cref="Dispose"/>
/// run (a send that races with them returns false, or goes out on the socket being closed).
/// <see cref="Open"/>, <see cref="Close"/> and <see cref="Dispose"/> are meant to be serialized by
/// the caller; they are nonetheless internally locked, so overlapping calls leave at most one
/// socket open and never leak one.
/// </para>
/// <para>
/// Receiving: the receiver is called on the bind's receive thread, one datagram at a time,
/// in arrival order, with a buffer that the bind reuses for the next datagram as soon as the
/// call returns. Exceptions thrown by the receiver are logged and receiving continues.
/// When <see cref="Close"/> returns, the receive thread has ended, so the receiver is not
/// being called and will not be called again. Called from inside the receiver (on the receive
/// thread), <see cref="Close"/>, <see cref="Open"/> and <see cref="Dispose"/> do not wait for
/// that thread (which would deadlock): the socket is closed at once, no further datagram is
/// delivered, and the thread ends when the receiver returns.
/// </para>
/// <para>
/// Allocation: in steady state neither sending nor receiving allocates. Each sending thread
/// gets its own destination <see cref="SocketAddress"/> on its first send (held by this
/// instance, released on <see cref="Dispose"/>); the receive buffer (64 KiB) is allocated once
/// per <see cref="Open"/>. Failed sends allocate (the socket layer throws).
/// </para>
/// </remarks>
public sealed partial class UdpSocketBind : IUdpBind
{
    // Larger than any UDP payload (65,527 bytes over IPv6 without jumbograms), so a datagram is
    // never truncated.
    private const int ReceiveBufferLength = 65_536;

    // How long Close waits for the receive thread before assuming the platform did not abort the
    // blocked receive (macOS does not for UDP) and waking it with an empty datagram.
    private static readonly TimeSpan WakeGrace = TimeSpan.FromMilliseconds(250);

    private readonly IPAddress _bindAddress;
    private readonly bool _dualStack;
    private readonly bool _sendsIPv4;
    private readonly bool _sendsIPv6;
    private readonly int _socketBufferSize;
    private readonly ILogger _logger;

    // One destination address per sending thread: Send takes no lock and does not allocate.
    private readonly ThreadLocal<SocketAddress> _sendAddresses;

    // Serializes Open/Close/Dispose transitions of _open and _disposed. Never held while waiting
    // for a receive thread, so a receiver may call Close/Open without deadlocking.
    private readonly Lock _gate = new();

    // The open socket, or null when closed. Written under _gate, read lock-free by Send and Port.
    private volatile OpenSocket? _open;

    // Guarded by _gate.
    private bool _disposed;

    /// <summary>Creates a closed bind. Nothing is bound until <see cref="Open"/>.</summary>
    /// <param name="options">Settings; <see langword="null"/> for the defaults. Copied, not kept.</param>
    /// <exception cref="ArgumentException">An option is invalid (the message names it).</exception>
    public UdpSocketBind(UdpSocketBindOptions? options = null)
    {
        options ??= new UdpSocketBindOptions();
        options.Validate();

        IPAddress? address = options.BindAddress;
        if (address is not null && address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }
        address ??= Socket.OSSupportsIPv6 ? IPAddress.IPv6Any : IPAddress.Any;

        _bindAddress = address;
        _dualStack = address.Equals(IPAddress.IPv6Any);
        _sendsIPv4 = _dualStack || address.AddressFamily == AddressFamily.InterNetwork;
        _sendsIPv6 = address.AddressFamily == AddressFamily.InterNetworkV6;
        _socketBufferSize = options.SocketBufferSize;
        _logger = options.Logger ?? NullLogger.Instance;

        AddressFamily family = address.AddressFamily;
        _sendAddresses = new ThreadLocal<SocketAddress>(() => new SocketAddress(family));
    }

    /// <inheritdoc/>
    public ushort Port => _open?.Port ?? 0;

    /// <summary>
    /// Binds a new socket on <paramref name="port"/> and starts its receive thread. If the bind
    /// is open, the current socket is closed first (and its receive thread waited for, unless
    /// this is called from inside the receiver); if binding then fails, the bind stays closed.
    /// </summary>
    /// <param name="port">The local port; 0 lets the operating system choose a free one.</param>
    /// <param name="receiver">Called with every received datagram, on the receive thread.</param>
    /// <returns>The port actually bound.</returns>
    /// <exception cref="SocketException">The port cannot be bound (for example, <see cref="SocketError.AddressAlreadyInUse"/>).</exception>
    /// <exception cref="ObjectDisposedException">The bind has been disposed.</exception>
    public ushort Open(ushort port, IDatagramReceiver receiver)
    {
        ArgumentNullException.ThrowIfNull(receiver);

        OpenSocket? previous;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            previous = _open;
            _open = null;
        }
        previous?.Stop();

        Socket socket = CreateSocket(port);
        OpenSocket open;
        try
        {
            open = new OpenSocket(this, socket, receiver);
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                previous = _open; // Non-null only if another Open overlapped this one.
                open.Start();
                _open = open;
            }
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        previous?.Stop();

        LogOpened(_logger, _bindAddress, open.Port);
        return open.Port;
    }

    /// <summary>
    /// Closes the socket and waits for the receive thread to end (unless called from inside the
    /// receiver). Idempotent; the bind can be opened again.
    /// </summary>
    public void Close()
    {
        OpenSocket? open;
        lock (_gate)
        {
            open = _open;
            _open = null;
        }
        open?.Stop();
    }

    /// <summary>
    /// Sends one datagram to <paramref name="destination"/> with a single non-allocating send
    /// call. An IPv4 destination on a dual-stack socket is sent in its IPv4-mapped form.
    /// </summary>
    /// <returns>
    /// True when the operating system accepted the datagram. False, without throwing, when the
    /// bind is closed or disposed, the destination is empty, has port 0 or is of a family this
    /// socket cannot reach, or the send failed (no route, message too large, no buffer space...).
    /// </returns>
    public bool Send(ReadOnlySpan<byte> datagram, in NetEndpoint destination)
    {
        OpenSocket? open = _open;
        if (open is null || destination.IsEmpty || destination.Port == 0)
        {
            return false;
        }
        if (destination.IsIPv4 ? !_sendsIPv4 : !_sendsIPv6)
        {
            return false;
        }

        try
        {
            SocketAddress address = _sendAddresses.Value!;
            if (!destination.TryWriteTo(address))
            {
                return false;
            }
            return open.Socket.SendTo(datagram, SocketFlags.None, address) == datagram.Length;
        }
        catch (SocketException e)
        {
            LogSendFailed(_logger, destination, e.SocketErrorCode);
            return false;
        }
        catch (ObjectDisposedException)
        {
            // Closed or disposed while this send was in flight.
            return false;
        }
    }

    /// <summary>
    /// Closes the bind as <see cref="Close"/> does and releases the per-thread send state.
    /// Idempotent. Afterwards <see cref="Send"/> returns false and <see cref="Open"/> throws
    /// <see cref="ObjectDisposedException"/>.
    /// </summary>
    public void Dispose()
    {
        OpenSocket? open;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            open = _open;
            _open = null;
        }
        open?.Stop();
        _sendAddresses.Dispose();
    }

    /// <summary>Creates, configures and binds a socket; disposes it if any step fails.</summary>
    private Socket CreateSocket(ushort port)
    {
        var socket = new Socket(_bindAddress.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            if (_bindAddress.AddressFamily == AddressFamily.InterNetworkV6)
            {
                // IPV6_V6ONLY off for the wildcard address; on for a specific IPv6 address, which
                // cannot reach IPv4 peers anyway.
                socket.DualMode = _dualStack;
            }
            if (OperatingSystem.IsWindows())
            {
                DisableUdpConnectionReset(socket);
            }
            ApplyBufferSizes(socket);
            socket.Bind(new IPEndPoint(_bindAddress, port));
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private void ApplyBufferSizes(Socket socket)
    {
        int size = _socketBufferSize;
        if (size == 0)
        {
            return;
        }

        // Linux: the *FORCE variants ignore net.core.rmem_max/wmem_max but need CAP_NET_ADMIN.
        // SOL_SOCKET = 1, SO_SNDBUFFORCE = 32, SO_RCVBUFFORCE = 33 on the generic ABI and x86.
        bool forcedReceive = false, forcedSend = false;
        if (OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture is
                Architecture.X64 or Architecture.X86 or Architecture.Arm64 or Architecture.Arm
                or Architecture.RiscV64 or Architecture.LoongArch64)
        {
            forcedReceive = TrySetRawInt(socket, 1, 33, size);
            forcedSend = TrySetRawInt(socket, 1, 32, size);
        }
        try
        {
            if (!forcedReceive)
            {
                socket.ReceiveBufferSize = size;
            }
            if (!forcedSend)
            {
                socket.SendBufferSize = size;
            }
        }
        catch (SocketException)
        {
            // Best effort: keep whatever the system granted.
        }
        if (_logger.IsEnabled(LogLevel.Debug))
        {
            LogBufferSizes(_logger, size, socket.ReceiveBufferSize, socket.SendBufferSize);
        }
    }

    private static bool TrySetRawInt(Socket socket, int level, int name, int value)
    {
        try
        {
            socket.SetRawSocketOption(level, name, MemoryMarshal.AsBytes(new ReadOnlySpan<int>(in value)));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>
    /// Windows reports an ICMP port unreachable, caused by an earlier send, as a failure of the
    /// next receive (WSAECONNRESET). SIO_UDP_CONNRESET turns that off; the receive loop also
    /// ignores the error, so this is only an optimization.
    /// </summary>
    private static void DisableUdpConnectionReset(Socket socket)
    {
        const int SioUdpConnReset = unchecked((int)0x9800000C);
        try
        {
            socket.IOControl(SioUdpConnReset, [0, 0, 0, 0], null);
        }
        catch (SocketException)
        {
        }
        catch (PlatformNotSupportedException)
        {
        }
    }

    /// <summary>Receive errors that concern one datagram or peer, not the socket.</summary>
    private static bool IsTransientReceiveError(SocketError error) => error is
        SocketError.ConnectionReset or SocketError.ConnectionRefused or SocketError.NetworkReset
        or SocketError.HostUnreachable or SocketError.NetworkUnreachable or SocketError.HostDown
        or SocketError.MessageSize or SocketError.NoBufferSpaceAvailable or SocketError.Interrupted
        or SocketError.TimedOut or SocketError.WouldBlock;

    /// <summary>
    /// One bound socket and its receive thread: the unit that <see cref="Open"/> creates and
    /// <see cref="Close"/> tears down. Never reopened.
    /// </summary>
    private sealed class OpenSocket
    {
        private readonly UdpSocketBind _owner;
        private readonly IDatagramReceiver _receiver;
        private readonly Thread _thread;

        // Set (before the socket is disposed) when Stop begins; read by the receive thread after
        // every receive, so no datagram is delivered once Stop has started.
        private volatile bool _closing;

        // True while the receiver runs; Stop does not need to wake a thread that is not receiving.
        private volatile bool _inReceiver;

        public OpenSocket(UdpSocketBind owner, Socket socket, IDatagramReceiver receiver)
        {
            _owner = owner;
            _receiver = receiver;
            Socket = socket;
            Port = (ushort)((IPEndPoint)socket.LocalEndPoint!).Port;
            _thread = new Thread(ReceiveLoop)
            {
                IsBackground = true,
                Name = $"MeshNet UDP :{Port}",
            };
        }

        /// <summary>The bound socket. Sends use it directly; it is disposed by <see cref="Stop"/>.</summary>
        public Socket Socket { get; }

        /// <summary>The bound port.</summary>
        public ushort Port { get; }

        /// <summary>Starts the receive thread (without flowing the caller's execution context).</summary>
        public void Start() => _thread.UnsafeStart();

        /// <summary>
        /// Closes the socket and waits for the receive thread to end, unless called on that
        /// thread. Called once, by whoever took this instance out of <c>_open</c>.
        /// </summary>
        public void Stop()
        {
            _closing = true;
            Socket.Dispose(); // On Linux and Windows this aborts a blocked ReceiveFrom.

            if (Thread.CurrentThread == _thread)
            {
                // Called from inside the receiver: the loop ends as soon as the receiver returns.
                LogClosed(_owner._logger, Port);
                return;
            }

            bool warned = false;
            while (!_thread.Join(WakeGrace))
            {
                // Still running: either the receiver is busy (wait for it: that is the contract),
                // or the platform did not abort the blocked receive. The socket stays bound until
                // that receive returns, so a datagram to it wakes the thread, which then sees
                // _closing and ends.
                if (!_inReceiver)
                {
                    if (!warned)
                    {
                        LogWakingReceiveThread(_owner._logger, Port);
                        warned = true;
                    }
                    WakeReceiveThread();
                }
            }
            LogClosed(_owner._logger, Port);
        }

        private void WakeReceiveThread()
        {
            IPAddress bound = _owner._bindAddress;
            IPAddress target =
                bound.Equals(IPAddress.IPv6Any) ? IPAddress.IPv6Loopback :
                bound.Equals(IPAddress.Any) ? IPAddress.Loopback :
                bound;
            try
            {
                using var waker = new Socket(target.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
                waker.SendTo([], new IPEndPoint(target, Port));
            }
            catch (SocketException)
            {
                // Best effort; the next round tries again.
            }
        }

        private void ReceiveLoop()
        {
            ILogger logger = _owner._logger;
            try
            {
                byte[] buffer = GC.AllocateUninitializedArray<byte>(ReceiveBufferLength);
                var address = new SocketAddress(Socket.AddressFamily);
                int failures = 0;

                while (!_closing)
                {
                    int length;
                    try
                    {
                        // ReceiveFrom shrinks Size to the address it got but requires the maximum.
                        address.Size = address.Buffer.Length;
                        length = Socket.ReceiveFrom(buffer, SocketFlags.None, address);
                    }
                    catch (ObjectDisposedException)
                    {
                        break;
                    }
                    catch (SocketException) when (_closing)
                    {
                        break;
                    }
                    catch (SocketException e) when (IsTransientReceiveError(e.SocketErrorCode))
                    {
                        continue;
                    }
                    catch (SocketException e)
                    {
                        // Unexpected: keep trying with a capped backoff, logging at 1, 2, 4, 8...
                        failures++;
                        if ((failures & (failures - 1)) == 0)
                        {
                            LogReceiveFailed(logger, e, Port, e.SocketErrorCode, failures);
                        }
                        Thread.Sleep(Math.Min(250, 1 << Math.Min(failures, 8)));
                        continue;
                    }
                    failures = 0;

                    // A closing socket may return an empty "datagram" (Linux, after shutdown).
                    if (_closing)
                    {
                        break;
                    }
                    if (address.Family is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
                    {
                        continue;
                    }

                    NetEndpoint source = NetEndpoint.FromSocketAddress(address);
                    _inReceiver = true;
                    try
                    {
                        _receiver.OnDatagram(buffer.AsSpan(0, length), source);
                    }
                    catch (Exception e)
                    {
                        LogReceiverFailed(logger, e, Port, source);
                    }
                    finally
                    {
                        _inReceiver = false;
                    }
                }
            }
            catch (Exception e)
            {
                // A bug in this loop: stop receiving rather than take the process down.
                LogReceiveLoopFailed(logger, e, Port);
            }
        }
    }

    // Event ids 2100-2149 belong to UdpSocketBind. Keep them stable.

    [LoggerMessage(EventId = 2101, Level = LogLevel.Information, Message = "UDP bind listening on {Address} port {Port}")]
    private static partial void LogOpened(ILogger logger, IPAddress address, ushort port);

    [LoggerMessage(EventId = 2102, Level = LogLevel.Information, Message = "UDP bind on port {Port} closed")]
    private static partial void LogClosed(ILogger logger, ushort port);

    [LoggerMessage(EventId = 2103, Level = LogLevel.Error, Message = "Datagram receiver on port {Port} threw for a datagram from {Source}; receiving continues")]
    private static partial void LogReceiverFailed(ILogger logger, Exception exception, ushort port, NetEndpoint source);

    [LoggerMessage(EventId = 2104, Level = LogLevel.Warning, Message = "UDP receive on port {Port} failed with {Error} ({Failures} consecutive failures); retrying")]
    private static partial void LogReceiveFailed(ILogger logger, Exception exception, ushort port, SocketError error, int failures);

    [LoggerMessage(EventId = 2105, Level = LogLevel.Debug, Message = "UDP send to {Destination} failed: {Error}")]
    private static partial void LogSendFailed(ILogger logger, NetEndpoint destination, SocketError error);

    [LoggerMessage(EventId = 2106, Level = LogLevel.Debug, Message = "UDP socket buffers: requested {Requested} bytes, got receive {Receive} bytes and send {Send} bytes")]
    private static partial void LogBufferSizes(ILogger logger, int requested, int receive, int send);

    [LoggerMessage(EventId = 2107, Level = LogLevel.Warning, Message = "Receive thread for UDP port {Port} did not stop when its socket closed; waking it with an empty datagram")]
    private static partial void LogWakingReceiveThread(ILogger logger, ushort port);

    [LoggerMessage(EventId = 2108, Level = LogLevel.Critical, Message = "UDP receive loop on port {Port} failed unexpectedly and stopped")]
    private static partial void LogReceiveLoopFailed(ILogger logger, Exception exception, ushort port);
}
