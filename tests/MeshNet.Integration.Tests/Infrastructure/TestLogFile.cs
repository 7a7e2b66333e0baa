using System.Text;
using Microsoft.Extensions.Logging;

namespace MeshNet.Integration.Tests.Infrastructure;

/// <summary>
/// A diagnostic aid: with <c>MESHNET_TEST_LOG=&lt;path&gt;</c> set, every node the integration
/// tests start logs everything (trace level up) to that file, one line per message with the time,
/// the node's host name and a number that tells apart nodes of the same name. For chasing a
/// failure that only shows under load: run the suite with it and read what both ends did.
/// </summary>
/// <remarks>Thread-safe: lines from all nodes are appended under one lock.</remarks>
internal sealed class TestLogFile : ILoggerFactory
{
    private static readonly Lock FileLock = new();
    private static int s_nodes;
    private readonly string _source;
    private readonly string _path;

    private TestLogFile(string hostname, string path)
    {
        _source = $"{hostname}#{Interlocked.Increment(ref s_nodes)}";
        _path = path;
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
        lock (FileLock)
        {
            File.AppendAllText(_path, line.ToString());
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
