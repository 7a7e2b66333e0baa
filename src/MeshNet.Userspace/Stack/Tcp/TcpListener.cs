using System.Net;

namespace MeshNet.Userspace.Stack;

// STUB: to be implemented (helper "tcp").
/// <summary>Stub: a listening TCP socket of an <see cref="IpStack"/>.</summary>
public sealed class TcpListener : IAsyncDisposable, IDisposable
{
    private TcpListener()
    {
    }

    /// <summary>Stub.</summary>
    public IPEndPoint LocalEndPoint => throw new NotImplementedException();

    /// <summary>Stub: waits for the next established connection.</summary>
    public ValueTask<TcpConnection> AcceptAsync(CancellationToken cancellationToken = default) => throw new NotImplementedException();

    /// <summary>Stub.</summary>
    public ValueTask DisposeAsync() => throw new NotImplementedException();

    /// <summary>Stub.</summary>
    public void Dispose() => throw new NotImplementedException();
}
