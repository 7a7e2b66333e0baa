using System.Net;
using System.Net.Sockets;
using MeshNet.Control;
using MeshNet.Control.V1;
using MeshNet.Protocol;
using MeshNet.Tests.Support;
using MeshNet.Userspace.Crypto;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace MeshNet.Tests.Control;

/// <summary>
/// The map loop's reconnect and keep-alive timing on a fake clock, against real sockets that
/// fail in the two ways a network does: a closed port (refused at once) and a black hole
/// (accepts the connection, never answers). No coordination service is involved.
/// </summary>
[Trait("Category", "Unit")]
public sealed class MapStreamLoopTests : IAsyncDisposable
{
    private static readonly TimeSpan MinDelay = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(16);
    private static readonly TimeSpan KeepAlive = TimeSpan.FromMinutes(2);

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly RecordingLoggerFactory _logs = new();
    private readonly ControlServerKey _serverKey = ControlServerKey.Generate();
    private readonly WireGuardPrivateKey _nodeKey = WireGuardPrivateKey.Generate();
    private readonly CancellationTokenSource _stop = new();
    private ControlClient? _client;
    private ControlSigner? _signer;
    private Task? _loop;

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        if (_loop is not null)
        {
            await _loop.WaitAsync(TimeSpan.FromSeconds(10));
        }
        _client?.Dispose();
        _signer?.Dispose();
        _nodeKey.Dispose();
        _serverKey.Dispose();
    }

    private MapStreamLoop StartLoop(Uri url, int seed)
    {
        _client = new ControlClient(url, null, null);
        _signer = ControlSigner.Create(_nodeKey, _serverKey.PublicKey, _time)!;
        _client.Signer = _signer;
        var loop = new MapStreamLoop(_client, () => new MapRequest(), _ => { }, (_, _) => Task.FromResult(false),
            new ReconnectBackoff(MinDelay, MaxDelay, new Random(seed)), KeepAlive, _time, _logs.CreateLogger("loop"));
        _loop = loop.RunAsync(_stop.Token);
        return loop;
    }

    private List<TimeSpan> Delays() =>
        [.. _logs.Entries.Where(e => e.EventId.Id == 4057).Select(e => TimeSpan.Parse(e.Message.Split(' ')[^1], System.Globalization.CultureInfo.InvariantCulture))];

    private static int ClosedPort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    [Fact]
    public async Task ReconnectsWithExponentialBackoffAndFullJitterOnTheFakeClock()
    {
        const int Seed = 99;
        var loop = StartLoop(new Uri($"http://127.0.0.1:{ClosedPort()}"), Seed);
        var expected = new ReconnectBackoff(MinDelay, MaxDelay, new Random(Seed));

        for (int attempt = 0; attempt < 7; attempt++)
        {
            await Eventually.WaitAsync(() => Delays().Count > attempt, $"reconnect delay #{attempt + 1}");
            var delay = Delays()[attempt];
            delay.Should().Be(expected.Next(attempt), "the loop draws its delays from the seeded generator, failure by failure");
            delay.Should().BeGreaterThanOrEqualTo(TimeSpan.Zero).And.BeLessThan(expected.Ceiling(attempt));
            // Nothing happens until the fake clock reaches the delay.
            int failuresBefore = _logs.Entries.Count(e => e.EventId.Id == 4056);
            if (delay > TimeSpan.FromMilliseconds(1))
            {
                _time.Advance(delay - TimeSpan.FromMilliseconds(1));
                await Task.Delay(50);
                _logs.Entries.Count(e => e.EventId.Id == 4056).Should().Be(failuresBefore, "the next attempt waits for the delay");
                _time.Advance(TimeSpan.FromMilliseconds(1));
            }
            else
            {
                _time.Advance(delay);
            }
        }
        loop.Connected.Should().BeFalse();
        loop.LastFailure!.Code.Should().Be(MeshErrorCode.ControlUnreachable);
        loop.FirstNetmap.IsCompleted.Should().BeFalse("an unreachable service is not a reason to give up starting");
        expected.Ceiling(6).Should().Be(MaxDelay, "the ceiling was reached and capped");
    }

    [Fact]
    public async Task ASilentStreamIsAbandonedAfterTheKeepAliveTimeout()
    {
        // A black hole: accepts TCP connections and never sends a byte.
        using var blackHole = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        blackHole.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        blackHole.Listen();
        var accepted = new List<Socket>();
        var acceptLoop = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    var s = await blackHole.AcceptAsync();
                    lock (accepted)
                    {
                        accepted.Add(s);
                    }
                }
            }
            catch (Exception)
            {
            }
        });
        var loop = StartLoop(new Uri($"http://127.0.0.1:{((IPEndPoint)blackHole.LocalEndPoint!).Port}"), 5);

        await Eventually.WaitAsync(() => _logs.Entries.Any(e => e.EventId.Id == 4053), "the stream to open");
        await Eventually.WaitAsync(() => { lock (accepted) { return accepted.Count > 0; } }, "the connection");
        Socket first;
        lock (accepted)
        {
            first = accepted[0];
        }
        // Plain HTTP/2 with prior knowledge (h2c): the client opens with the HTTP/2 preface.
        var preface = new byte[24];
        for (int read = 0; read < preface.Length;)
        {
            int n = await first.ReceiveAsync(preface.AsMemory(read)).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
            n.Should().BePositive();
            read += n;
        }
        System.Text.Encoding.ASCII.GetString(preface).Should().StartWith("PRI * HTTP/2.0");
        await Task.Delay(200);
        _time.Advance(KeepAlive - TimeSpan.FromSeconds(1));
        await Task.Delay(200);
        _logs.Entries.Should().NotContain(e => e.EventId.Id == 4055, "the watchdog has not expired yet");

        _time.Advance(TimeSpan.FromSeconds(1));
        await Eventually.WaitAsync(() => _logs.Entries.Any(e => e.EventId.Id == 4055), "the watchdog to fire");
        await Eventually.WaitAsync(() => Delays().Count == 1, "a reconnect to be scheduled");
        _time.Advance(Delays()[0]);
        await Eventually.WaitAsync(() => _logs.Entries.Count(e => e.EventId.Id == 4053) == 2, "the second stream to open");
        loop.Connected.Should().BeFalse();

        blackHole.Close();
        await acceptLoop;
        lock (accepted)
        {
            foreach (var s in accepted)
            {
                s.Dispose();
            }
        }
    }

    [Fact]
    public async Task StoppingEndsTheLoopPromptly()
    {
        var loop = StartLoop(new Uri($"http://127.0.0.1:{ClosedPort()}"), 1);
        await Eventually.WaitAsync(() => Delays().Count > 0, "the first failure");
        _stop.Cancel();
        await _loop!.WaitAsync(TimeSpan.FromSeconds(5));
        loop.FirstNetmap.IsCanceled.Should().BeTrue();
    }
}
