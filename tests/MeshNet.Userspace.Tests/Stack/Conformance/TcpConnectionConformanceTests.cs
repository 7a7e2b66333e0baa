// The conformance suite wired to MeshNet's userspace TCP: every test of the suite must pass, as
// it does against NetworkStream; what differs between the two is declared by the hook overrides.
using System.Net;
using MeshNet.TestSupport.Conformance;
using MeshNet.Userspace.Link;
using MeshNet.Userspace.Stack;

namespace MeshNet.Userspace.Tests.Stack.Conformance;

/// <summary>
/// The conformance suite against <see cref="TcpConnection"/>: two <see cref="IpStack"/>s joined
/// by an in-memory link, one connection between them (stack A connects, stack B accepts).
/// </summary>
[Trait("Category", "Unit")]
public sealed class TcpConnectionConformanceTests : ConnectedStreamConformanceTests
{
    private static readonly IPAddress AddressA = IPAddress.Parse("10.77.0.1");
    private static readonly IPAddress AddressB = IPAddress.Parse("10.77.0.2");

    /// <summary>
    /// Buffers far below the 4 MiB defaults, so that <see cref="BackpressureBytes"/> (which the
    /// tests allocate and write) stays small, as NetworkStreamConformanceTests does with its
    /// socket buffers.
    /// </summary>
    private const int BufferSize = 256 * 1024;

    /// <summary>TcpConnection.ShutdownWriteAsync sends FIN after the buffered data; reading continues.</summary>
    protected override bool SupportsHalfClose => true;

    /// <summary>
    /// Send buffer + receive window of the connection (2 x 256 KiB, plus what sits in the link)
    /// is well below this: writing it while the peer does not read must block.
    /// </summary>
    protected override int? BackpressureBytes => 4 * 1024 * 1024;

    // Decide with the TcpConnection implementation, then keep or change:
    // - UnsupportedConcurrentExceptionType: the default (InvalidOperationException) says a second
    //   concurrent ReadAsync (or WriteAsync) is rejected, as PipeReader/PipeWriter do; return null
    //   if TcpConnection queues them like NetworkStream.
    // - CanTimeout: the default (false) matches a stream without ReadTimeout/WriteTimeout (use
    //   cancellation tokens); override to true if TcpConnection implements them.
    // - ReadWriteValueTasksProtectSingleConsumption: true if ReadAsync returns
    //   IValueTaskSource-backed ValueTasks (ManualResetValueTaskSourceCore) that detect reuse.
    // - InvalidAsyncResultExceptionType: the default (ArgumentException) is what Stream's and
    //   TaskToAsyncResult's End methods throw for a foreign IAsyncResult.
    // Note: TcpConnection must override BeginRead/EndRead/BeginWrite/EndWrite (for example over
    // ReadAsync/WriteAsync with TaskToAsyncResult): Stream's defaults serialize reads and writes on
    // one semaphore, so a pending BeginRead blocks BeginWrite and
    // ReadAndWrite_BothDirectionsAtOnce_LargeTransfer(SyncApm/AsyncApm) deadlocks (times out).

    protected override async Task<StreamPair> CreateConnectedStreamsAsync()
    {
        var link = new MemoryLink();
        IpStack stackA = IpStack.Create(NewOptions(link.A, AddressA));
        IpStack stackB = IpStack.Create(NewOptions(link.B, AddressB));
        link.A.Receiver = stackA;
        link.B.Receiver = stackB;

        TcpListener? listener = null;
        TcpConnection? client = null;
        try
        {
            listener = stackB.ListenTcp(new IPEndPoint(AddressB, 0));
            ValueTask<TcpConnection> accept = listener.AcceptAsync();
            client = await stackA.ConnectTcpAsync(listener.LocalEndPoint);
            TcpConnection server = await accept;
            TcpListener owned = listener;
            return new StreamPair(client, server, async () =>
            {
                await owned.DisposeAsync();
                await stackA.DisposeAsync();
                await stackB.DisposeAsync();
                link.Dispose();
            });
        }
        catch
        {
            if (client is not null)
            {
                await client.DisposeAsync();
            }
            if (listener is not null)
            {
                await listener.DisposeAsync();
            }
            await stackA.DisposeAsync();
            await stackB.DisposeAsync();
            link.Dispose();
            throw;
        }

        static IpStackOptions NewOptions(IPacketSink link, IPAddress address) => new()
        {
            Link = link,
            Addresses = [address],
            Tcp = new TcpStackOptions { MaxSendBuffer = BufferSize, MaxReceiveBuffer = BufferSize },
        };
    }

    protected override async Task ShutdownWriteAsync(Stream stream) => await ((TcpConnection)stream).ShutdownWriteAsync();
}
