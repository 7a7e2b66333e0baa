using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using MeshNet.Userspace.Stack.Tcp;

namespace MeshNet.Userspace.Stack;

/// <summary>
/// An established TCP connection of an <see cref="IpStack"/>, usable as a <see cref="Stream"/>
/// or as an <see cref="IDuplexPipe"/> (use one or the other for each direction, not both).
/// </summary>
/// <remarks>
/// <para>
/// Reads return the data available (at least one byte), 0 at the end of the stream (the peer's
/// FIN). A zero-byte read waits until data is available without consuming it. Writes return once
/// the data is in the send buffer (<see cref="TcpStackOptions.MaxSendBuffer"/>), waiting while it
/// is full; <see cref="Flush"/> has nothing to do because data is sent as soon as the windows
/// allow. Every async operation honours its cancellation token with
/// <see cref="OperationCanceledException"/>; a cancelled read loses no data.
/// </para>
/// <para>
/// Errors are <see cref="IOException"/>s wrapping a <see cref="SocketException"/>
/// (ConnectionReset when the peer reset the connection, TimedOut when it stopped answering,
/// HostUnreachable or ConnectionRefused after ICMP errors, OperationAborted after
/// <see cref="Abort"/>, Shutdown for writes after <see cref="ShutdownWriteAsync"/>), as
/// <see cref="NetworkStream"/> reports them. Data received before a reset can still be read.
/// </para>
/// <para>
/// Disposing closes the connection gracefully (FIN after the buffered data; the handshake
/// finishes in the background) when every received byte was read, and resets it otherwise.
/// Pending operations then fail with <see cref="ObjectDisposedException"/>. Idempotent; the
/// connection holds no timers, tasks or buffers once closed. Reads may run concurrently with
/// writes; two concurrent reads (or writes) are not supported.
/// </para>
/// </remarks>
public sealed class TcpConnection : Stream, IDuplexPipe
{
    private readonly TcpControlBlock _cb;
    private TcpPipeReader? _input;
    private TcpPipeWriter? _output;
    private int _disposed;

    internal TcpConnection(TcpControlBlock cb)
    {
        _cb = cb;
        LocalEndPoint = cb.Key.Local.ToIPEndPoint();
        RemoteEndPoint = cb.Key.Remote.ToIPEndPoint();
    }

    internal TcpControlBlock ControlBlock => _cb;

    /// <summary>Our address and port.</summary>
    public IPEndPoint LocalEndPoint { get; }

    /// <summary>The peer's address and port.</summary>
    public IPEndPoint RemoteEndPoint { get; }

    /// <summary>The connection's current state.</summary>
    public TcpState State => _cb.State;

    /// <summary>True when a read would return data without waiting.</summary>
    public bool DataAvailable => _cb.Available > 0;

    /// <summary>Disables Nagle's algorithm when true (like TCP_NODELAY): small writes are sent at once.</summary>
    public bool NoDelay
    {
        get => _cb.NoDelay;
        set => _cb.NoDelay = value;
    }

    /// <summary>The receiving side as a pipe (reads straight from the connection's receive buffer).</summary>
    public PipeReader Input => _input ?? Interlocked.CompareExchange(ref _input, new TcpPipeReader(_cb), null) ?? _input;

    /// <summary>The sending side as a pipe (writes straight into the connection's send buffer).</summary>
    public PipeWriter Output => _output ?? Interlocked.CompareExchange(ref _output, new TcpPipeWriter(_cb), null) ?? _output;

    /// <summary>Half-close: sends FIN after the buffered data; reading continues until the peer's FIN.</summary>
    /// <exception cref="IOException">The connection failed.</exception>
    public ValueTask ShutdownWriteAsync(CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }
        ThrowIfDisposed();
        _cb.ShutdownWrite();
        return default;
    }

    /// <summary>Resets the connection (RST), discarding unsent and unread data.</summary>
    public void Abort() => _cb.Abort();

    /// <inheritdoc/>
    public override bool CanRead => Volatile.Read(ref _disposed) == 0;

    /// <inheritdoc/>
    public override bool CanSeek => false;

    /// <inheritdoc/>
    public override bool CanWrite => Volatile.Read(ref _disposed) == 0;

    /// <inheritdoc/>
    public override long Length => throw new NotSupportedException();

    /// <inheritdoc/>
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    /// <inheritdoc/>
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    /// <inheritdoc/>
    public override void SetLength(long value) => throw new NotSupportedException();

    /// <summary>Nothing to do: data is sent as soon as the windows allow.</summary>
    public override void Flush() => ThrowIfDisposed();

    /// <inheritdoc cref="Flush"/>
    public override Task FlushAsync(CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled(cancellationToken);
        }
        ThrowIfDisposed();
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public override int Read(byte[] buffer, int offset, int count)
    {
        ValidateBufferArguments(buffer, offset, count);
        return Read(buffer.AsSpan(offset, count));
    }

    /// <inheritdoc/>
    public override int Read(Span<byte> buffer)
    {
        ThrowIfDisposed();
        EnterOperation(ref _reading, "read");
        try
        {
            return _cb.Read(buffer);
        }
        finally
        {
            Volatile.Write(ref _reading, 0);
        }
    }

    /// <inheritdoc/>
    public override int ReadByte()
    {
        Span<byte> one = stackalloc byte[1];
        return Read(one) == 0 ? -1 : one[0];
    }

    /// <inheritdoc/>
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        ValidateBufferArguments(buffer, offset, count);
        return ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    }

    /// <inheritdoc/>
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<int>(cancellationToken);
        }
        ThrowIfDisposed();
        EnterOperation(ref _reading, "read");
        int read;
        try
        {
            read = _cb.TryRead(buffer.Span);
        }
        catch
        {
            Volatile.Write(ref _reading, 0);
            throw;
        }
        if (read >= 0)
        {
            Volatile.Write(ref _reading, 0);
            return new ValueTask<int>(read);
        }
        return ReadSlowAsync(buffer, cancellationToken);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ReadSlowAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                await _cb.WaitReadableAsync(cancellationToken).ConfigureAwait(false);
                int read = _cb.TryRead(buffer.Span);
                if (read >= 0)
                {
                    return read;
                }
            }
        }
        finally
        {
            Volatile.Write(ref _reading, 0);
        }
    }

    /// <inheritdoc/>
    public override void Write(byte[] buffer, int offset, int count)
    {
        ValidateBufferArguments(buffer, offset, count);
        Write(buffer.AsSpan(offset, count));
    }

    /// <inheritdoc/>
    public override void Write(ReadOnlySpan<byte> buffer)
    {
        ThrowIfDisposed();
        EnterOperation(ref _writing, "write");
        try
        {
            _cb.Write(buffer);
        }
        finally
        {
            Volatile.Write(ref _writing, 0);
        }
    }

    /// <inheritdoc/>
    public override void WriteByte(byte value) => Write([value]);

    /// <inheritdoc/>
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        ValidateBufferArguments(buffer, offset, count);
        return WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    }

    // The APM methods go through the task-based ones: Stream's defaults serialize reads and writes
    // on one lock, so a pending BeginRead would block BeginWrite (a full-duplex deadlock).

    /// <inheritdoc/>
    public override IAsyncResult BeginRead(byte[] buffer, int offset, int count, AsyncCallback? callback, object? state) =>
        TaskToAsyncResult.Begin(ReadAsync(buffer, offset, count, CancellationToken.None), callback, state);

    /// <inheritdoc/>
    public override int EndRead(IAsyncResult asyncResult) => TaskToAsyncResult.End<int>(asyncResult);

    /// <inheritdoc/>
    public override IAsyncResult BeginWrite(byte[] buffer, int offset, int count, AsyncCallback? callback, object? state) =>
        TaskToAsyncResult.Begin(WriteAsync(buffer, offset, count, CancellationToken.None), callback, state);

    /// <inheritdoc/>
    public override void EndWrite(IAsyncResult asyncResult) => TaskToAsyncResult.End(asyncResult);

    /// <inheritdoc/>
    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }
        ThrowIfDisposed();
        // One write at a time: a second write must be refused before it copies a single byte, or
        // its bytes would land in the middle of the pending write's data.
        EnterOperation(ref _writing, "write");
        int written;
        try
        {
            written = _cb.TryWrite(buffer.Span);
        }
        catch
        {
            Volatile.Write(ref _writing, 0);
            throw;
        }
        if (written == buffer.Length)
        {
            Volatile.Write(ref _writing, 0);
            return default;
        }
        return WriteSlowAsync(buffer[written..], cancellationToken);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask WriteSlowAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken)
    {
        try
        {
            while (!buffer.IsEmpty)
            {
                await _cb.WaitWritableAsync(cancellationToken).ConfigureAwait(false);
                buffer = buffer[_cb.TryWrite(buffer.Span)..];
            }
        }
        finally
        {
            Volatile.Write(ref _writing, 0);
        }
    }

    /// <summary>Claims the single read (or write) slot; a second concurrent operation is refused.</summary>
    private static void EnterOperation(ref int slot, string kind)
    {
        if (Interlocked.Exchange(ref slot, 1) != 0)
        {
            throw new InvalidOperationException(
                $"Another {kind} is already in progress on this connection: a TcpConnection supports one read and one write at a time.");
        }
    }

    private int _reading; // 1 while a Read/ReadAsync is in progress
    private int _writing; // 1 while a Write/WriteAsync is in progress

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _cb.Close();
        }
        base.Dispose(disposing);
    }

    /// <inheritdoc/>
    public override ValueTask DisposeAsync()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
        return default;
    }

    /// <summary>The connection's endpoints and state.</summary>
    public override string ToString() => $"TcpConnection({LocalEndPoint} -> {RemoteEndPoint}, {State})";
}
