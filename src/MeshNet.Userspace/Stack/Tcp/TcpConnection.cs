using System.IO.Pipelines;
using System.Net;

namespace MeshNet.Userspace.Stack;

// STUB: to be implemented (helper "tcp").
/// <summary>Stub: an established TCP connection, usable as a <see cref="Stream"/> or an <see cref="IDuplexPipe"/>.</summary>
public sealed class TcpConnection : Stream, IDuplexPipe
{
    private TcpConnection()
    {
    }

    /// <summary>Stub.</summary>
    public IPEndPoint LocalEndPoint => throw new NotImplementedException();

    /// <summary>Stub.</summary>
    public IPEndPoint RemoteEndPoint => throw new NotImplementedException();

    /// <summary>Stub: disables Nagle's algorithm when true.</summary>
    public bool NoDelay { get; set; }

    /// <summary>Stub.</summary>
    public PipeReader Input => throw new NotImplementedException();

    /// <summary>Stub.</summary>
    public PipeWriter Output => throw new NotImplementedException();

    /// <summary>Stub: sends FIN after the buffered data (half-close); reading continues.</summary>
    public ValueTask ShutdownWriteAsync(CancellationToken cancellationToken = default) => throw new NotImplementedException();

    /// <summary>Stub: resets the connection (RST), discarding unsent and unread data.</summary>
    public void Abort() => throw new NotImplementedException();

    /// <inheritdoc/>
    public override bool CanRead => true;

    /// <inheritdoc/>
    public override bool CanSeek => false;

    /// <inheritdoc/>
    public override bool CanWrite => true;

    /// <inheritdoc/>
    public override long Length => throw new NotSupportedException();

    /// <inheritdoc/>
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    /// <inheritdoc/>
    public override void Flush()
    {
    }

    /// <inheritdoc/>
    public override int Read(byte[] buffer, int offset, int count) => throw new NotImplementedException();

    /// <inheritdoc/>
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    /// <inheritdoc/>
    public override void SetLength(long value) => throw new NotSupportedException();

    /// <inheritdoc/>
    public override void Write(byte[] buffer, int offset, int count) => throw new NotImplementedException();
}
