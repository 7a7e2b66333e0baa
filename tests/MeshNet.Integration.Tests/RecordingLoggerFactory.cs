using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace MeshNet.Integration.Tests;

/// <summary>Keeps every log line (all levels), for checks of what must never be logged.</summary>
internal sealed class RecordingLoggerFactory : ILoggerFactory
{
    private readonly ConcurrentQueue<string> _lines = new();

    public string AllText => string.Join("\n", _lines);

    public int Count => _lines.Count;

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public void Dispose()
    {
    }

    private sealed class Logger(RecordingLoggerFactory owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner._lines.Enqueue($"{category} {logLevel} {eventId.Id} {formatter(state, exception)} {exception}");
    }
}
