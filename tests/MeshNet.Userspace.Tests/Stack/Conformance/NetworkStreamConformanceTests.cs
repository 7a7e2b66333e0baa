using System.Net;
using System.Net.Sockets;
using MeshNet.TestSupport.Conformance;

namespace MeshNet.Userspace.Tests.Stack.Conformance;

/// <summary>
/// The conformance suite against <see cref="NetworkStream"/> over a loopback TCP connection:
/// the reference behaviour, which validates the suite itself (every test must pass here).
/// </summary>
[Trait("Category", "Unit")]
public sealed class NetworkStreamConformanceTests : ConnectedStreamConformanceTests
{
    /// <summary>
    /// Fixed socket buffer sizes (the kernel doubles them and then stops auto-tuning), so that
    /// what a writer can buffer while its peer does not read is bounded and small.
    /// </summary>
    private const int SocketBufferSize = 64 * 1024;

    protected override bool SupportsHalfClose => true;

    protected override bool CanTimeout => true;

    /// <summary>Sockets queue concurrent operations.</summary>
    protected override Type? UnsupportedConcurrentExceptionType => null;

    /// <summary>NetworkStream wraps EndRead/EndWrite failures in IOException.</summary>
    protected override Type InvalidAsyncResultExceptionType => typeof(IOException);

    /// <summary>Both socket buffers hold well under 1 MiB with the sizes set above.</summary>
    protected override int? BackpressureBytes => 4 * 1024 * 1024;

    protected override bool ReadWriteValueTasksProtectSingleConsumption => true;

    protected override async Task<StreamPair> CreateConnectedStreamsAsync()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        SetBuffers(listener); // accepted sockets inherit them (and the window scale follows)
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);

        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            SetBuffers(client);
            Task<Socket> accept = listener.AcceptAsync();
            await client.ConnectAsync(listener.LocalEndPoint!);
            Socket server = await accept;
            return new StreamPair(new NetworkStream(client, ownsSocket: true), new NetworkStream(server, ownsSocket: true));
        }
        catch
        {
            client.Dispose();
            throw;
        }

        static void SetBuffers(Socket socket)
        {
            socket.SendBufferSize = SocketBufferSize;
            socket.ReceiveBufferSize = SocketBufferSize;
        }
    }

    protected override Task ShutdownWriteAsync(Stream stream)
    {
        ((NetworkStream)stream).Socket.Shutdown(SocketShutdown.Send);
        return Task.CompletedTask;
    }
}
