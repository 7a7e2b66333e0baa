using System.Net;
using System.Net.Sockets;

namespace MeshNet.TestSupport.Impairment;

/// <summary>
/// A userspace UDP relay that sits between two WireGuard endpoints (or any two UDP peers) and
/// forwards their datagrams, impairing each direction as its <see cref="ImpairmentProfile"/>
/// says: random and bursty (Gilbert-Elliott) loss, duplication, delay with jitter, reordering.
/// It only moves datagrams, so it needs no keys.
/// <code>
///   peer A  ⇄  [side A socket] relay [side B socket]  ⇄  peer B
/// </code>
/// </summary>
/// <remarks>
/// <para>Threads: one receive thread per side (blocking receives into one 64 KiB buffer each;
/// loss and duplication are decided there, and a datagram of an immediate profile is sent from
/// there at once) and one <see cref="DatagramScheduler"/> thread that releases delayed and
/// reordered datagrams on time. Steady state allocates nothing per datagram: receives and sends
/// use <see cref="SocketAddress"/> overloads and delayed datagrams are copied into pooled
/// buffers (<see cref="DatagramBufferPool"/>).</para>
/// <para>Repeatability: each direction draws from its own <see cref="Random"/> seeded from
/// <see cref="ImpairmentRelayOptions.Seed"/>, on one thread, so the decisions depend only on the
/// seed and the order in which datagrams arrive.</para>
/// <para>Sockets are bound by the relay (<see cref="Start(ImpairmentRelayOptions?)"/>) or
/// handed to it already bound (<see cref="Start(Socket, Socket, ImpairmentRelayOptions?)"/>,
/// e.g. sockets created inside a network namespace); either way the relay owns and closes them.
/// <see cref="Dispose"/> stops every thread, closes both sockets and drops what is still
/// queued.</para>
/// </remarks>
public sealed class ImpairmentRelay : IDisposable
{
    private const int ReceiveBufferLength = 65_536;

    private readonly RelaySide _a;
    private readonly RelaySide _b;
    private readonly RelayDirection _aToB;
    private readonly RelayDirection _bToA;
    private readonly DatagramScheduler _scheduler;
    private readonly Thread _receiveA;
    private readonly Thread _receiveB;
    private volatile bool _disposed;

    private ImpairmentRelay(Socket a, Socket b, ImpairmentRelayOptions options)
    {
        options.AToB.Validate(nameof(options.AToB));
        options.BToA.Validate(nameof(options.BToA));
        _a = new RelaySide("A", a, options.PeerA);
        _b = new RelaySide("B", b, options.PeerB);
        _scheduler = new DatagramScheduler($"relay {_a.LocalEndPoint}/{_b.LocalEndPoint}");
        var pool = new DatagramBufferPool();
        _aToB = new RelayDirection("A->B", _b, _scheduler, pool, options.AToB, unchecked(options.Seed * 2 + 1));
        _bToA = new RelayDirection("B->A", _a, _scheduler, pool, options.BToA, unchecked(options.Seed * 2 + 2));
        _receiveA = StartReceiver(_a, _aToB);
        _receiveB = StartReceiver(_b, _bToA);
    }

    /// <summary>The local address of side A: peer A sends here.</summary>
    public IPEndPoint EndPointA => _a.LocalEndPoint;

    /// <summary>The local address of side B: peer B sends here.</summary>
    public IPEndPoint EndPointB => _b.LocalEndPoint;

    /// <summary>Side A's peer (told or learned); null until known.</summary>
    public IPEndPoint? PeerA => _a.Peer;

    /// <summary>Side B's peer (told or learned); null until known.</summary>
    public IPEndPoint? PeerB => _b.Peer;

    /// <summary>Counters of datagrams received on A and sent out of B.</summary>
    public ImpairmentCounters AToB => _aToB.Counters;

    /// <summary>Counters of datagrams received on B and sent out of A.</summary>
    public ImpairmentCounters BToA => _bToA.Counters;

    /// <summary>The current impairment of A → B.</summary>
    public ImpairmentProfile ProfileAToB => _aToB.Profile;

    /// <summary>The current impairment of B → A.</summary>
    public ImpairmentProfile ProfileBToA => _bToA.Profile;

    /// <summary>Datagrams delayed or held back and not yet sent (counted until their send returned).</summary>
    public int Pending => _aToB.Pending + _bToA.Pending;

    /// <summary>Binds both sockets as <paramref name="options"/> says and starts relaying.</summary>
    /// <exception cref="ArgumentException">A profile is invalid; the message names it.</exception>
    public static ImpairmentRelay Start(ImpairmentRelayOptions? options = null)
    {
        options ??= new ImpairmentRelayOptions();
        Socket? a = null;
        Socket? b = null;
        try
        {
            a = Bind(options.BindA);
            b = Bind(options.BindB);
            return Start(a, b, options);
        }
        catch
        {
            a?.Dispose();
            b?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Starts relaying between two bound UDP sockets, which the relay now owns (they are closed
    /// on disposal, and on failure here). <see cref="ImpairmentRelayOptions.BindA"/> and
    /// <see cref="ImpairmentRelayOptions.BindB"/> are not used.
    /// </summary>
    public static ImpairmentRelay Start(Socket sideA, Socket sideB, ImpairmentRelayOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(sideA);
        ArgumentNullException.ThrowIfNull(sideB);
        options ??= new ImpairmentRelayOptions();
        try
        {
            if (sideA.LocalEndPoint is not IPEndPoint || sideB.LocalEndPoint is not IPEndPoint || sideA.SocketType != SocketType.Dgram || sideB.SocketType != SocketType.Dgram)
            {
                throw new ArgumentException("Both relay sockets must be bound UDP sockets.");
            }
            SetBuffers(sideA, options.SocketBufferSize);
            SetBuffers(sideB, options.SocketBufferSize);
            return new ImpairmentRelay(sideA, sideB, options);
        }
        catch
        {
            sideA.Dispose();
            sideB.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Changes both directions' impairments from the next datagram on (a burst model restarts
    /// in Good). Datagrams already delayed keep their release times, and later ones queue
    /// behind them.
    /// </summary>
    public void Impair(ImpairmentProfile aToB, ImpairmentProfile bToA)
    {
        ArgumentNullException.ThrowIfNull(aToB);
        ArgumentNullException.ThrowIfNull(bToA);
        aToB.Validate(nameof(aToB));
        bToA.Validate(nameof(bToA));
        _aToB.Profile = aToB;
        _bToA.Profile = bToA;
    }

    /// <summary>Stops relaying: closes both sockets, ends every thread and drops what is queued. Idempotent.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        _a.Socket.Dispose(); // wakes the blocked receive
        _b.Socket.Dispose();
        _receiveA.Join(TimeSpan.FromSeconds(5));
        _receiveB.Join(TimeSpan.FromSeconds(5));
        _scheduler.Dispose();
    }

    /// <summary>True when both receive threads have ended (after <see cref="Dispose"/>).</summary>
    public bool ThreadsStopped => !_receiveA.IsAlive && !_receiveB.IsAlive;

    /// <inheritdoc />
    public override string ToString() =>
        $"relay A {EndPointA} (peer {PeerA?.ToString() ?? "?"}) <-> B {EndPointB} (peer {PeerB?.ToString() ?? "?"}); " +
        $"A->B [{ProfileAToB}] {AToB}; B->A [{ProfileBToA}] {BToA}";

    private Thread StartReceiver(RelaySide side, RelayDirection direction)
    {
        var thread = new Thread(() => ReceiveLoop(side, direction))
        {
            IsBackground = true,
            Name = $"relay receive {side.Name} {side.LocalEndPoint}",
        };
        thread.Start();
        return thread;
    }

    private void ReceiveLoop(RelaySide side, RelayDirection direction)
    {
        var buffer = new byte[ReceiveBufferLength];
        var source = new SocketAddress(side.Socket.AddressFamily);
        while (!_disposed)
        {
            int length;
            try
            {
                length = side.Socket.ReceiveFrom(buffer, SocketFlags.None, source);
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException) when (_disposed)
            {
                return;
            }
            catch (SocketException)
            {
                continue; // e.g. an ICMP error reported on the socket: not a datagram
            }
            side.Learn(source);
            direction.OnDatagram(buffer.AsSpan(0, length));
        }
    }

    private static Socket Bind(IPEndPoint endPoint)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            socket.Bind(endPoint);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static void SetBuffers(Socket socket, int bytes)
    {
        socket.ReceiveBufferSize = bytes;
        socket.SendBufferSize = bytes;
        if (OperatingSystem.IsLinux() && Environment.IsPrivilegedProcess)
        {
            const int SolSocket = 1, SoSndBufForce = 32, SoRcvBufForce = 33;
            try
            {
                socket.SetRawSocketOption(SolSocket, SoRcvBufForce, BitConverter.GetBytes(bytes));
                socket.SetRawSocketOption(SolSocket, SoSndBufForce, BitConverter.GetBytes(bytes));
            }
            catch (SocketException)
            {
                // Best effort: the plain request above stands.
            }
        }
    }
}
