using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace MeshNet.TestSupport.Impairment;

/// <summary>
/// One side of an <see cref="ImpairmentRelay"/>: its socket and the peer it forwards to (told,
/// or learned from the source of the latest datagram received on it).
/// </summary>
internal sealed class RelaySide
{
    private readonly bool _peerFixed;
    private volatile SocketAddress? _peer; // replaced, never mutated, once published

    public RelaySide(string name, Socket socket, IPEndPoint? peer)
    {
        Name = name;
        Socket = socket;
        LocalEndPoint = (IPEndPoint)socket.LocalEndPoint!;
        if (peer is not null)
        {
            _peer = Normalize(peer).Serialize();
            _peerFixed = true;
        }
    }

    public string Name { get; }

    public Socket Socket { get; }

    public IPEndPoint LocalEndPoint { get; }

    /// <summary>Where datagrams leaving this side go; null until told or learned.</summary>
    public SocketAddress? PeerAddress => _peer;

    public IPEndPoint? Peer => _peer is { } peer ? (IPEndPoint)LocalEndPoint.Create(peer) : null;

    /// <summary>Called by this side's receive thread with the source of each datagram.</summary>
    public void Learn(SocketAddress source)
    {
        if (_peerFixed || (_peer is { } known && known.Equals(source)))
        {
            return;
        }
        var copy = new SocketAddress(source.Family, source.Size);
        source.Buffer.Span[..source.Size].CopyTo(copy.Buffer.Span);
        _peer = copy;
    }

    // An IPv4 peer of a dual-stack IPv6 socket is addressed as IPv4-mapped IPv6.
    private IPEndPoint Normalize(IPEndPoint peer) =>
        Socket.AddressFamily == AddressFamily.InterNetworkV6 && peer.AddressFamily == AddressFamily.InterNetwork
            ? new IPEndPoint(peer.Address.MapToIPv6(), peer.Port)
            : peer;
}

/// <summary>
/// One direction of an <see cref="ImpairmentRelay"/>: the impairment decisions for datagrams
/// received on its source side (made on that side's receive thread only, with this direction's
/// seeded <see cref="Random"/>, hence repeatable) and the sending out of its destination side.
/// </summary>
internal sealed class RelayDirection
{
    private readonly RelaySide _destination;
    private readonly DatagramScheduler _scheduler;
    private volatile ImpairmentProfile _profile;
    private int _pending; // datagrams in the scheduler: while any, new ones queue behind them

    // Receive-thread state.
    private readonly Random _random;
    private ImpairmentProfile? _applied;
    private bool _bad;
    private long _badSince;
    private bool _lastDropped;
    private long _lastRelease;

    private readonly DatagramBufferPool _pool;

    public RelayDirection(string name, RelaySide destination, DatagramScheduler scheduler, DatagramBufferPool pool, ImpairmentProfile profile, int seed)
    {
        Name = name;
        _destination = destination;
        _scheduler = scheduler;
        _pool = pool;
        _profile = profile;
        _random = new Random(seed);
    }

    public string Name { get; }

    public ImpairmentCounters Counters { get; } = new();

    public ImpairmentProfile Profile
    {
        get => _profile;
        set => _profile = value;
    }

    /// <summary>Datagrams handed to the scheduler and not yet sent or discarded (held ones included).</summary>
    public int Pending => Volatile.Read(ref _pending);

    public static long ToTicks(TimeSpan time) => (long)(time.Ticks * (Stopwatch.Frequency / (double)TimeSpan.TicksPerSecond));

    /// <summary>Handles one received datagram (on the source side's receive thread).</summary>
    public void OnDatagram(Span<byte> datagram)
    {
        Counters.OnReceived();
        var profile = _profile;
        if (!ReferenceEquals(profile, _applied))
        {
            _applied = profile;
            _bad = false; // a new profile starts its burst model in Good
        }
        if (_destination.PeerAddress is null)
        {
            Counters.OnNoPeer();
            return;
        }

        bool drop = profile.LossProbability > 0 && _random.NextDouble() < profile.LossProbability;
        if (profile.BurstLoss is { } model)
        {
            if (_bad && model.MaxBadDuration is { } longest && Stopwatch.GetTimestamp() - _badSince >= ToTicks(longest))
            {
                _bad = false; // the spell has lasted its longest: this datagram finds the link Good
            }
            else
            {
                bool wasBad = _bad;
                _bad = _bad ? _random.NextDouble() >= model.BadToGood : _random.NextDouble() < model.GoodToBad;
                if (_bad && !wasBad)
                {
                    _badSince = Stopwatch.GetTimestamp();
                }
            }
            double loss = _bad ? model.LossInBad : model.LossInGood;
            drop |= loss > 0 && _random.NextDouble() < loss;
        }
        if (drop)
        {
            Counters.OnDropped(datagram.Length, startsBurst: !_lastDropped);
            _lastDropped = true;
            return;
        }
        _lastDropped = false;

        bool duplicate = profile.DuplicateProbability > 0 && _random.NextDouble() < profile.DuplicateProbability;
        if (duplicate)
        {
            Counters.OnDuplicated();
        }
        if (profile.IsImmediate && Volatile.Read(ref _pending) == 0)
        {
            Send(datagram);
            if (duplicate)
            {
                Send(datagram);
            }
            return;
        }

        long now = Stopwatch.GetTimestamp();
        for (int copy = duplicate ? 2 : 1; copy > 0; copy--)
        {
            long delay = ToTicks(profile.Delay);
            if (profile.Jitter > TimeSpan.Zero)
            {
                delay += (long)((_random.NextDouble() * 2 - 1) * ToTicks(profile.Jitter));
            }
            long release = now + Math.Max(0, delay);
            if (profile.JitterKeepsOrder && release < _lastRelease)
            {
                release = _lastRelease;
            }
            _lastRelease = Math.Max(_lastRelease, release);
            if (release > now)
            {
                Counters.OnDelayed();
            }
            bool hold = profile.ReorderProbability > 0 && _random.NextDouble() < profile.ReorderProbability;
            if (hold)
            {
                Counters.OnReordered();
            }

            var buffer = _pool.Rent(datagram.Length);
            datagram.CopyTo(buffer);
            Interlocked.Increment(ref _pending);
            if (!_scheduler.Enqueue(new ScheduledDatagram(buffer, datagram.Length, this, hold), release))
            {
                Interlocked.Decrement(ref _pending);
                _pool.Return(buffer);
                return;
            }
        }
    }

    /// <summary>Sends a datagram out of the destination side to its peer; errors are counted.</summary>
    public void Send(ReadOnlySpan<byte> datagram)
    {
        var peer = _destination.PeerAddress;
        if (peer is null)
        {
            Counters.OnNoPeer();
            return;
        }
        try
        {
            _destination.Socket.SendTo(datagram, SocketFlags.None, peer);
            Counters.OnForwarded();
        }
        catch (SocketException)
        {
            Counters.OnSendError();
        }
        catch (ObjectDisposedException)
        {
            // The relay is being disposed.
        }
    }

    /// <summary>A scheduled datagram left the scheduler (sent or discarded): its buffer goes back to the pool.</summary>
    public void Release(byte[] buffer)
    {
        _pool.Return(buffer);
        Interlocked.Decrement(ref _pending);
    }
}
