using System.IO.Pipelines;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Connections;

namespace MeshNet.AspNetCore;

/// <summary>
/// The input of a <see cref="MeshConnectionContext"/>: the connection's own
/// <see cref="PipeReader"/> (the buffers it returns are the TCP receive pages, passed through
/// untouched), watched for the end of the connection to fire ConnectionClosed, with socket
/// errors translated to the exceptions Kestrel expects from a transport. One reader at a time,
/// as for any <see cref="PipeReader"/>.
/// </summary>
internal sealed class MeshTransportInput(PipeReader inner, MeshConnectionContext owner) : PipeReader
{
    public override bool TryRead(out ReadResult result)
    {
        try
        {
            if (!inner.TryRead(out result))
            {
                return false;
            }
        }
        catch (IOException e) when (Failed(e) is { } translated)
        {
            throw translated;
        }
        Observe(result);
        return true;
    }

    public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        ValueTask<ReadResult> read;
        try
        {
            read = inner.ReadAsync(cancellationToken);
        }
        catch (IOException e) when (Failed(e) is { } translated)
        {
            throw translated;
        }
        if (read.IsCompletedSuccessfully)
        {
            var result = read.Result;
            Observe(result);
            return new ValueTask<ReadResult>(result);
        }
        return ReadSlowAsync(read);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<ReadResult> ReadSlowAsync(ValueTask<ReadResult> read)
    {
        ReadResult result;
        try
        {
            result = await read.ConfigureAwait(false);
        }
        catch (IOException e) when (Failed(e) is { } translated)
        {
            throw translated;
        }
        Observe(result);
        return result;
    }

    public override void AdvanceTo(SequencePosition consumed) => inner.AdvanceTo(consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined) => inner.AdvanceTo(consumed, examined);

    public override void CancelPendingRead() => inner.CancelPendingRead();

    public override void Complete(Exception? exception = null) => inner.Complete(exception);

    private void Observe(in ReadResult result)
    {
        if (result.IsCompleted)
        {
            owner.FireConnectionClosed();
        }
    }

    /// <summary>
    /// The connection failed: fires ConnectionClosed, and gives Kestrel's own exception type for a
    /// reset or an abort (null for other errors, which propagate as they are).
    /// </summary>
    private Exception? Failed(IOException e)
    {
        owner.FireConnectionClosed();
        return (e.InnerException as SocketException)?.SocketErrorCode switch
        {
            SocketError.ConnectionReset => new ConnectionResetException(e.Message, e),
            SocketError.OperationAborted or SocketError.ConnectionAborted => new ConnectionAbortedException(e.Message, e),
            _ => null,
        };
    }
}
