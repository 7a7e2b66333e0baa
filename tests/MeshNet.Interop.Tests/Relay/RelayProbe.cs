using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using MeshNet.TestSupport.Impairment;

namespace MeshNet.Interop.Tests.Relay;

/// <summary>One datagram as the probe's server saw it.</summary>
/// <param name="Sequence">The sender's sequence number.</param>
/// <param name="DelayMs">Arrival time minus send time, in milliseconds.</param>
internal readonly record struct Arrival(int Sequence, double DelayMs);

/// <summary>
/// Loopback sockets around an <see cref="ImpairmentRelay"/> for its self-tests: a client that
/// sends numbered, timestamped datagrams to side A and a server, side B's told peer, that
/// records their arrival. Sending and receiving use the non-allocating <see cref="SocketAddress"/>
/// overloads, so the probe itself allocates nothing per datagram.
/// </summary>
internal sealed class RelayProbe : IDisposable
{
    private const int SocketBuffer = 32 << 20;

    private RelayProbe(Socket client, Socket server, ImpairmentRelay relay)
    {
        Client = client;
        Server = server;
        Relay = relay;
    }

    public Socket Client { get; }

    public Socket Server { get; }

    public ImpairmentRelay Relay { get; }

    public IPEndPoint ClientEndPoint => (IPEndPoint)Client.LocalEndPoint!;

    public IPEndPoint ServerEndPoint => (IPEndPoint)Server.LocalEndPoint!;

    /// <summary>A relay on loopback with the server as side B's told peer; side A learns the client.</summary>
    public static RelayProbe Start(ImpairmentProfile aToB, ImpairmentProfile? bToA = null, int seed = 1, bool tellPeerB = true)
    {
        var client = Open();
        var server = Open();
        try
        {
            var relay = ImpairmentRelay.Start(new ImpairmentRelayOptions
            {
                AToB = aToB,
                BToA = bToA ?? ImpairmentProfile.None,
                PeerB = tellPeerB ? (IPEndPoint)server.LocalEndPoint! : null,
                Seed = seed,
            });
            return new RelayProbe(client, server, relay);
        }
        catch
        {
            client.Dispose();
            server.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Sends <paramref name="count"/> datagrams of <paramref name="size"/> bytes (at least 12)
    /// client → A → B → server, <paramref name="burst"/> at a time with <paramref name="pause"/>
    /// between bursts, and returns what arrived, in arrival order, once every datagram the relay
    /// forwarded has arrived (or <paramref name="timeout"/>, default 30 s, passed).
    /// </summary>
    public List<Arrival> SendAndCollect(int count, int size = 200, int burst = 50, TimeSpan? pause = null, TimeSpan? timeout = null)
    {
        var arrivals = new Arrival[count * 3 + 16];
        int received = SendAndReceive(count, size, burst, pause, timeout, arrivals);
        return arrivals.AsSpan(0, received).ToArray().ToList();
    }

    /// <summary>
    /// Like <see cref="SendAndCollect"/>, recording arrivals into <paramref name="arrivals"/>
    /// when given (at most its length), and returns how many datagrams arrived.
    /// </summary>
    public int SendAndReceive(int count, int size = 200, int burst = 50, TimeSpan? pause = null, TimeSpan? timeout = null, Arrival[]? arrivals = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 12);
        int received = 0;
        bool sendingDone = false;
        long relayedBefore = Relay.AToB.Received;
        long forwardedBefore = Relay.AToB.Forwarded;
        var receiver = new Thread(() =>
        {
            var buffer = new byte[65_536];
            var from = new SocketAddress(AddressFamily.InterNetwork);
            var deadline = Stopwatch.GetTimestamp() + (long)((timeout ?? TimeSpan.FromSeconds(30)).TotalSeconds * Stopwatch.Frequency);
            long? settledAt = null;
            while (Stopwatch.GetTimestamp() < deadline)
            {
                // Done when the relay has taken every datagram sent, has none queued, and all it
                // forwarded arrived, twice in a row 20 ms apart with nothing new (a datagram can be
                // between "received" and "forwarded" on the relay's receiving thread).
                if (Volatile.Read(ref sendingDone) && Relay.AToB.Received - relayedBefore >= count && Relay.Pending == 0
                    && Volatile.Read(ref received) >= Relay.AToB.Forwarded - forwardedBefore)
                {
                    if (settledAt is { } since && Stopwatch.GetElapsedTime(since) >= TimeSpan.FromMilliseconds(20))
                    {
                        return;
                    }
                    settledAt ??= Stopwatch.GetTimestamp();
                }
                else
                {
                    settledAt = null;
                }
                if (!Server.Poll(2_000, SelectMode.SelectRead))
                {
                    continue;
                }
                settledAt = null;
                int length = Server.ReceiveFrom(buffer, SocketFlags.None, from);
                long now = Stopwatch.GetTimestamp();
                int sequence = BinaryPrimitives.ReadInt32LittleEndian(buffer);
                long sent = BinaryPrimitives.ReadInt64LittleEndian(buffer.AsSpan(4));
                if (length == size)
                {
                    if (arrivals is not null && received < arrivals.Length)
                    {
                        arrivals[received] = new Arrival(sequence, (now - sent) * 1000.0 / Stopwatch.Frequency);
                    }
                    Volatile.Write(ref received, received + 1);
                }
            }
        })
        { IsBackground = true, Name = "relay probe receiver" };
        receiver.Start();

        var payload = new byte[size];
        var target = Relay.EndPointA.Serialize();
        for (int sequence = 0; sequence < count; sequence++)
        {
            if (sequence > 0 && sequence % burst == 0)
            {
                Thread.Sleep(pause ?? TimeSpan.FromMilliseconds(1));
            }
            BinaryPrimitives.WriteInt32LittleEndian(payload, sequence);
            BinaryPrimitives.WriteInt64LittleEndian(payload.AsSpan(4), Stopwatch.GetTimestamp());
            Client.SendTo(payload, SocketFlags.None, target);
        }
        Volatile.Write(ref sendingDone, true);
        receiver.Join();
        return received;
    }

    public void Dispose()
    {
        Relay.Dispose();
        Client.Dispose();
        Server.Dispose();
    }

    /// <summary>A bound loopback UDP socket with large buffers.</summary>
    public static Socket Open()
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        socket.ReceiveBufferSize = SocketBuffer;
        socket.SendBufferSize = SocketBuffer;
        if (Environment.IsPrivilegedProcess)
        {
            socket.SetRawSocketOption(1, 33, BitConverter.GetBytes(SocketBuffer)); // SO_RCVBUFFORCE
        }
        return socket;
    }
}

/// <summary>Statistics over arrivals.</summary>
internal static class ArrivalStatistics
{
    /// <summary>The <paramref name="fraction"/> quantile (nearest rank) of <paramref name="values"/>.</summary>
    public static double Quantile(IReadOnlyList<double> values, double fraction)
    {
        var sorted = values.Order().ToArray();
        return sorted[Math.Clamp((int)Math.Ceiling(fraction * sorted.Length) - 1, 0, sorted.Length - 1)];
    }

    public static double StandardDeviation(IReadOnlyList<double> values)
    {
        double mean = values.Average();
        return Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1));
    }

    /// <summary>Arrivals whose sequence is below one that arrived before them.</summary>
    public static int LateArrivals(IEnumerable<Arrival> arrivals)
    {
        int late = 0, highest = -1;
        foreach (var arrival in arrivals)
        {
            if (arrival.Sequence < highest)
            {
                late++;
            }
            highest = Math.Max(highest, arrival.Sequence);
        }
        return late;
    }

    /// <summary>The lengths of the runs of consecutive sequence numbers that never arrived, out of 0..count-1.</summary>
    public static List<int> LossRuns(IEnumerable<Arrival> arrivals, int count)
    {
        var seen = new bool[count];
        foreach (var arrival in arrivals)
        {
            seen[arrival.Sequence] = true;
        }
        var runs = new List<int>();
        int run = 0;
        foreach (bool arrived in seen)
        {
            if (!arrived)
            {
                run++;
            }
            else if (run > 0)
            {
                runs.Add(run);
                run = 0;
            }
        }
        if (run > 0)
        {
            runs.Add(run);
        }
        return runs;
    }

    /// <summary>Five standard deviations of a binomial count.</summary>
    public static double BinomialBound(int trials, double p) => 5 * Math.Sqrt(trials * p * (1 - p));
}
