namespace MeshNet.Interop.Tests.Infrastructure;

/// <summary>Runs an action on <see cref="DisposeAsync"/>, for synchronous resources kept in a list of <see cref="IAsyncDisposable"/>.</summary>
internal sealed class DisposeAction(Action dispose) : IAsyncDisposable
{
    public ValueTask DisposeAsync()
    {
        dispose();
        return ValueTask.CompletedTask;
    }
}
