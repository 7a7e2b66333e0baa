using System.Collections.Concurrent;
using MeshNet.Userspace.Conn;
using Microsoft.Extensions.Logging;
using MeshNet.Userspace.Net;

namespace MeshNet.Userspace.Tests.Conn;

/// <summary>Runs inside <see cref="IDatagramReceiver.OnDatagram"/>, before the datagram is recorded.</summary>
internal delegate void DatagramHandler(Span<byte> datagram, in NetEndpoint source);

/// <summary>One datagram a <see cref="RecordingReceiver"/> saw.</summary>
internal sealed record Received(byte[] Data, NetEndpoint Source, Thread Thread);

/// <summary>
/// A receiver that copies every datagram into a queue the test can wait on, with timeouts, so a
/// broken bind fails the test instead of hanging it. An optional handler runs first (and may
/// throw, in which case nothing is recorded).
/// </summary>
internal sealed class RecordingReceiver(DatagramHandler? handler = null) : IDatagramReceiver
{
    /// <summary>How long a test waits for something that should happen.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private readonly BlockingCollection<Received> _received = [];
    private int _calls;

    /// <summary>Calls of <see cref="OnDatagram"/>, including those whose handler threw.</summary>
    public int Calls => Volatile.Read(ref _calls);

    /// <summary>Recorded datagrams not yet taken.</summary>
    public int Pending => _received.Count;

    public void OnDatagram(Span<byte> datagram, in NetEndpoint source)
    {
        Interlocked.Increment(ref _calls);
        handler?.Invoke(datagram, source);
        _received.Add(new Received(datagram.ToArray(), source, Thread.CurrentThread));
    }

    /// <summary>Runs <paramref name="action"/> on a new background thread (join it with a timeout).</summary>
    public static Thread Run(Action action)
    {
        var thread = new Thread(() => action()) { IsBackground = true };
        thread.Start();
        return thread;
    }

    /// <summary>Waits for the next datagram.</summary>
    public Received Take()
    {
        _received.TryTake(out Received? received, Timeout).Should().BeTrue("a datagram should arrive within {0}", Timeout);
        return received!;
    }

    /// <summary>Asserts that no datagram arrives within <paramref name="wait"/>.</summary>
    public void ExpectNone(TimeSpan wait)
    {
        _received.TryTake(out Received? received, wait).Should().BeFalse("no datagram should arrive, got {0} bytes from {1}", received?.Data.Length, received?.Source);
    }

    /// <summary>Takes what has been recorded so far, without waiting.</summary>
    public List<Received> Drain()
    {
        var list = new List<Received>();
        while (_received.TryTake(out Received? received))
        {
            list.Add(received);
        }
        return list;
    }
}

/// <summary>A logger that keeps the level and event id of every entry.</summary>
internal sealed class ListLogger : ILogger
{
    private readonly ConcurrentQueue<(LogLevel Level, EventId Id, Exception? Exception)> _entries = new();

    public IReadOnlyCollection<(LogLevel Level, EventId Id, Exception? Exception)> Entries => _entries;

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        formatter(state, exception); // Exercise the message template.
        _entries.Enqueue((logLevel, eventId, exception));
    }
}
