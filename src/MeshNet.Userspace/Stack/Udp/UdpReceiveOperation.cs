using System.Net.Sockets;
using System.Threading.Tasks.Sources;

namespace MeshNet.Userspace.Stack.Udp;

/// <summary>
/// A pending receive on a <see cref="UdpSocket"/>: the awaitable behind the
/// <see cref="ValueTask{TResult}"/> of <see cref="UdpSocket.ReceiveFromAsync"/> and
/// <see cref="UdpSocket.ReceiveAsync"/>. Reused: after its result is consumed it goes back to its
/// socket, so a socket with one receive at a time allocates none in steady state.
/// </summary>
/// <remarks>
/// Ownership: while queued on the socket (<see cref="IsQueued"/>, under the socket's lock) the
/// first party to dequeue it (a datagram arriving, cancellation, disposal) completes it, exactly
/// once, and may do so after releasing the lock. Continuations always run asynchronously, never
/// on the completing thread (the link's or a timer's).
/// </remarks>
internal sealed class UdpReceiveOperation : IValueTaskSource<SocketReceiveFromResult>, IValueTaskSource<int>
{
    private readonly UdpSocket _socket;
    private ManualResetValueTaskSourceCore<SocketReceiveFromResult> _core;
    private CancellationTokenRegistration _registration;

    public UdpReceiveOperation(UdpSocket socket)
    {
        _socket = socket;
        _core.RunContinuationsAsynchronously = true;
    }

    /// <summary>Where the datagram goes.</summary>
    public Memory<byte> Buffer { get; private set; }

    /// <summary>True for <see cref="UdpSocket.ReceiveFromAsync"/> (the result carries the sender).</summary>
    public bool WantsSource { get; private set; }

    /// <summary>The token the receive was started with.</summary>
    public CancellationToken CancellationToken { get; private set; }

    // The socket's waiter list; guarded by the socket's lock.
    public UdpReceiveOperation? Next { get; set; }

    public UdpReceiveOperation? Previous { get; set; }

    public bool IsQueued { get; set; }

    public short Version => _core.Version;

    public void Prepare(Memory<byte> buffer, bool wantsSource, CancellationToken cancellationToken)
    {
        Buffer = buffer;
        WantsSource = wantsSource;
        CancellationToken = cancellationToken;
    }

    /// <summary>Registers for cancellation (after the operation is queued; the callback may run at once).</summary>
    public void RegisterCancellation()
    {
        if (CancellationToken.CanBeCanceled)
        {
            _registration = CancellationToken.UnsafeRegister(
                static (state, token) => ((UdpReceiveOperation)state!)._socket.CancelReceive((UdpReceiveOperation)state!, token), this);
        }
    }

    public void SetResult(SocketReceiveFromResult result) => _core.SetResult(result);

    public void SetException(Exception exception) => _core.SetException(exception);

    public SocketReceiveFromResult GetResult(short token)
    {
        try
        {
            return _core.GetResult(token);
        }
        finally
        {
            Recycle();
        }
    }

    int IValueTaskSource<int>.GetResult(short token) => GetResult(token).ReceivedBytes;

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);

    private void Recycle()
    {
        // Waits for a cancellation callback running on another thread; it only takes the
        // socket's lock briefly, and this thread holds nothing.
        _registration.Dispose();
        _registration = default;
        Buffer = default;
        CancellationToken = default;
        Next = Previous = null;
        _core.Reset();
        _socket.ReturnOperation(this);
    }
}
