using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.Logging;

namespace MeshNet.Integration.Tests.Infrastructure;

/// <summary>
/// A diagnostic aid: with <c>MESHNET_TEST_LOG=&lt;path&gt;</c> set, every node the integration
/// tests start logs everything (trace level up) to that file, one line per message with the time,
/// the node's host name and a number that tells apart nodes of the same name. For chasing a
/// failure that only shows under load: run the suite with it and read what both ends did.
/// </summary>
/// <remarks>
/// Thread-safe: each file is opened once (appending) and kept open, with one writer that flushes
/// every line and that the lines of all nodes go through under its lock; it is closed when the
/// process exits.
/// </remarks>
internal sealed class TestLogFile : ILoggerFactory
{
    private static readonly ConcurrentDictionary<string, Lazy<Sink>> Sinks = new(StringComparer.Ordinal);
    private static int s_nodes;
    private readonly string _source;
    private readonly Sink _sink;

    static TestLogFile() => AppDomain.CurrentDomain.ProcessExit += (_, _) =>
    {
        foreach (var sink in Sinks.Values)
        {
            if (sink.IsValueCreated)
            {
                sink.Value.Dispose();
            }
        }
    };

    private TestLogFile(string hostname, string path)
    {
        _source = $"{hostname}#{Interlocked.Increment(ref s_nodes)}";
        _sink = Sinks.GetOrAdd(Path.GetFullPath(path), static fullPath => new Lazy<Sink>(() => new Sink(fullPath))).Value;
    }

    /// <summary>A logger factory for a node named <paramref name="hostname"/>, or null when the variable is not set.</summary>
    public static ILoggerFactory? ForNode(string hostname) =>
        Environment.GetEnvironmentVariable("MESHNET_TEST_LOG") is { Length: > 0 } path ? new TestLogFile(hostname, path) : null;

    public ILogger CreateLogger(string categoryName) => new FileLogger(this, categoryName[(categoryName.LastIndexOf('.') + 1)..]);

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public void Dispose()
    {
    }

    private void Write(string category, LogLevel level, string message, Exception? exception)
    {
        var line = new StringBuilder()
            .Append(DateTime.UtcNow.ToString("HH:mm:ss.fff", System.Globalization.CultureInfo.InvariantCulture))
            .Append(" [").Append(_source).Append("] ").Append(category).Append(' ').Append(level).Append(": ").Append(message);
        if (exception is not null)
        {
            line.Append(" (").Append(exception.GetType().Name).Append(": ").Append(exception.Message).Append(')');
        }
        line.Append('\n');
        _sink.Write(line.ToString());
    }

    /// <summary>One open log file: appended to under a lock, each line flushed; closed at process exit (later lines are dropped).</summary>
    private sealed class Sink(string path) : IDisposable
    {
        private readonly Lock _lock = new();
        private StreamWriter? _writer = new(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete))
        {
            AutoFlush = true,
        };

        public void Write(string line)
        {
            lock (_lock)
            {
                _writer?.Write(line);
            }
        }

        public void Dispose()
        {
            lock (_lock)
            {
                _writer?.Dispose();
                _writer = null;
            }
        }
    }

    private sealed class FileLogger(TestLogFile file, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            file.Write(category, logLevel, formatter(state, exception), exception);
    }
}
