namespace MeshNet.TestSupport.Interop;

/// <summary>Runs an action on <see cref="DisposeAsync"/>, for synchronous resources kept in a list of <see cref="IAsyncDisposable"/>.</summary>
public sealed class DisposeAction(Action dispose) : IAsyncDisposable
{
    /// <summary>Runs the action.</summary>
    public ValueTask DisposeAsync()
    {
        dispose();
        return ValueTask.CompletedTask;
    }
}
