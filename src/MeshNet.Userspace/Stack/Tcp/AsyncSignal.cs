using System.Threading.Tasks.Sources;

namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>
/// A reusable, allocation-free wake-up for one waiter at a time (a reader, a writer, an
/// accepter): <see cref="WaitAsync"/> and <see cref="Set"/> are called under the owner's lock;
/// continuations always run asynchronously (never inline under that lock). Cancellation
/// completes the wait with <see cref="OperationCanceledException"/>; since a waiter only
/// learns that something changed and then re-checks the owner's state, a cancelled wait loses
/// nothing.
/// </summary>
internal sealed class AsyncSignal(object ownerLock) : IValueTaskSource
{
    private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = true };
    private CancellationTokenRegistration _registration;
    private CancellationToken _token;
    private bool _waiting;

    /// <summary>True while a waiter is registered (under the owner's lock).</summary>
    public bool IsWaiting => _waiting;

    /// <summary>Registers the waiter (under the owner's lock).</summary>
    /// <exception cref="InvalidOperationException">Another wait is pending.</exception>
    public ValueTask WaitAsync(CancellationToken cancellationToken)
    {
        if (_waiting)
        {
            throw new InvalidOperationException("Another operation of the same kind is already pending on this connection.");
        }
        _core.Reset();
        _waiting = true;
        _token = cancellationToken;
        short version = _core.Version;
        if (cancellationToken.CanBeCanceled)
        {
            _registration = cancellationToken.UnsafeRegister(static (state, token) => ((AsyncSignal)state!).OnCanceled(token), this);
        }
        return new ValueTask(this, version);
    }

    /// <summary>Wakes the waiter, if any (under the owner's lock).</summary>
    public void Set()
    {
        if (_waiting)
        {
            _waiting = false;
            _core.SetResult(true);
        }
    }

    /// <summary>Completes the waiter, if any, with <paramref name="exception"/> (under the owner's lock).</summary>
    public void Fail(Exception exception)
    {
        if (_waiting)
        {
            _waiting = false;
            _core.SetException(exception);
        }
    }

    private void OnCanceled(CancellationToken token)
    {
        lock (ownerLock)
        {
            if (_waiting && _token == token)
            {
                _waiting = false;
                _core.SetException(new OperationCanceledException(token));
            }
        }
    }

    void IValueTaskSource.GetResult(short token)
    {
        var registration = _registration;
        _registration = default;
        registration.Unregister();
        _core.GetResult(token);
    }

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
