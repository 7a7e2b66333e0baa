using System.IO.Pipelines;
using System.Net;
using MeshNet.Userspace.Stack;

namespace MeshNet;

/// <summary>
/// A TCP connection over the tailnet, accepted by a <see cref="MeshListener"/> or opened by
/// <see cref="MeshNode.DialAsync(string, int, CancellationToken)"/>: a <see cref="Stream"/>
/// and an <see cref="IDuplexPipe"/> (use one or the other for each direction), with the
/// identity of the node at the other end (<see cref="Peer"/>).
/// </summary>
/// <remarks>
/// <para>Reads return the data available (at least one byte), 0 at the end of the stream; writes
/// return once the data is buffered. One read and one write may run at the same time.</para>
/// <para>Errors are <see cref="IOException"/>s wrapping a <see cref="System.Net.Sockets.SocketException"/>
/// (ConnectionReset, TimedOut, ...), as <see cref="System.Net.Sockets.NetworkStream"/> reports
/// them; cancellation gives <see cref="OperationCanceledException"/>.</para>
/// <para>Disposing closes the connection gracefully (FIN after the buffered data) when every
/// received byte was read, and resets it otherwise. Disposing the node closes all its
/// connections. Disposing a listener does not close the connections it accepted.</para>
/// </remarks>
public sealed class MeshConnection : Stream, IDuplexPipe
{
    private readonly TcpConnection _tcp;

    internal MeshConnection(TcpConnection tcp, MeshPeerIdentity peer)
    {
        _tcp = tcp;
        Peer = peer;
    }

    /// <summary>The node at the other end.</summary>
    public MeshPeerIdentity Peer { get; }

    /// <summary>The peer's tailnet address and port.</summary>
    public IPEndPoint RemoteEndPoint => _tcp.RemoteEndPoint;

    /// <summary>This node's tailnet address and port.</summary>
    public IPEndPoint LocalEndPoint => _tcp.LocalEndPoint;

    /// <summary>True when a read would return data without waiting.</summary>
    public bool DataAvailable => _tcp.DataAvailable;

    /// <summary>Disables Nagle's algorithm when true: small writes are sent at once.</summary>
    public bool NoDelay
    {
        get => _tcp.NoDelay;
        set => _tcp.NoDelay = value;
    }

    /// <summary>The receiving side as a pipe.</summary>
    public PipeReader Input => _tcp.Input;

    /// <summary>The sending side as a pipe.</summary>
    public PipeWriter Output => _tcp.Output;

    /// <summary>Half-close: sends FIN after the buffered data; reading continues until the peer's FIN.</summary>
    /// <exception cref="IOException">The connection failed.</exception>
    public ValueTask ShutdownWriteAsync(CancellationToken cancellationToken = default) => _tcp.ShutdownWriteAsync(cancellationToken);

    /// <summary>Resets the connection (RST), discarding unsent and unread data.</summary>
    public void Abort() => _tcp.Abort();

    /// <inheritdoc/>
    public override bool CanRead => _tcp.CanRead;

    /// <inheritdoc/>
    public override bool CanSeek => false;

    /// <inheritdoc/>
    public override bool CanWrite => _tcp.CanWrite;

    /// <inheritdoc/>
    public override long Length => throw new NotSupportedException();

    /// <inheritdoc/>
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    /// <inheritdoc/>
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    /// <inheritdoc/>
    public override void SetLength(long value) => throw new NotSupportedException();

    /// <inheritdoc/>
    public override void Flush() => _tcp.Flush();

    /// <inheritdoc/>
    public override Task FlushAsync(CancellationToken cancellationToken) => _tcp.FlushAsync(cancellationToken);

    /// <inheritdoc/>
    public override int Read(byte[] buffer, int offset, int count) => _tcp.Read(buffer, offset, count);

    /// <inheritdoc/>
    public override int Read(Span<byte> buffer) => _tcp.Read(buffer);

    /// <inheritdoc/>
    public override int ReadByte() => _tcp.ReadByte();

    /// <inheritdoc/>
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        _tcp.ReadAsync(buffer, offset, count, cancellationToken);

    /// <inheritdoc/>
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        _tcp.ReadAsync(buffer, cancellationToken);

    /// <inheritdoc/>
    public override IAsyncResult BeginRead(byte[] buffer, int offset, int count, AsyncCallback? callback, object? state) =>
        _tcp.BeginRead(buffer, offset, count, callback, state);

    /// <inheritdoc/>
    public override int EndRead(IAsyncResult asyncResult) => _tcp.EndRead(asyncResult);

    /// <inheritdoc/>
    public override void Write(byte[] buffer, int offset, int count) => _tcp.Write(buffer, offset, count);

    /// <inheritdoc/>
    public override void Write(ReadOnlySpan<byte> buffer) => _tcp.Write(buffer);

    /// <inheritdoc/>
    public override void WriteByte(byte value) => _tcp.WriteByte(value);

    /// <inheritdoc/>
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        _tcp.WriteAsync(buffer, offset, count, cancellationToken);

    /// <inheritdoc/>
    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
        _tcp.WriteAsync(buffer, cancellationToken);

    /// <inheritdoc/>
    public override IAsyncResult BeginWrite(byte[] buffer, int offset, int count, AsyncCallback? callback, object? state) =>
        _tcp.BeginWrite(buffer, offset, count, callback, state);

    /// <inheritdoc/>
    public override void EndWrite(IAsyncResult asyncResult) => _tcp.EndWrite(asyncResult);

    /// <inheritdoc/>
    public override void CopyTo(Stream destination, int bufferSize) => _tcp.CopyTo(destination, bufferSize);

    /// <inheritdoc/>
    public override Task CopyToAsync(Stream destination, int bufferSize, CancellationToken cancellationToken) =>
        _tcp.CopyToAsync(destination, bufferSize, cancellationToken);

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _tcp.Dispose();
        }
        base.Dispose(disposing);
    }

    /// <inheritdoc/>
    public override async ValueTask DisposeAsync()
    {
        await _tcp.DisposeAsync().ConfigureAwait(false);
        Dispose(false);
        GC.SuppressFinalize(this);
    }

    /// <summary>The endpoints and the peer's name.</summary>
    public override string ToString() => $"MeshConnection({LocalEndPoint} -> {RemoteEndPoint} {Peer.Name})";
}
