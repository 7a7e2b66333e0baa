using MeshNet.Tests.Support;
using MeshNet.TestSupport.Conformance;
using MeshNet.Userspace.Stack;

namespace MeshNet.Tests.DataPath;

/// <summary>
/// The connected-stream conformance suite (the one <see cref="TcpConnection"/> passes) against
/// <see cref="MeshConnection"/>: two nodes on loopback, real WireGuard between them, one
/// connection dialed by name and accepted. Every Stream member must behave as the underlying
/// connection's does.
/// </summary>
[Trait("Category", "Unit")]
public sealed class MeshConnectionConformanceTests : ConnectedStreamConformanceTests
{
    /// <summary>Small buffers so that the backpressure tests write little (as the stack's own suite does).</summary>
    private const int BufferSize = 256 * 1024;

    protected override bool SupportsHalfClose => true;

    protected override int? BackpressureBytes => 4 * 1024 * 1024;

    protected override async Task<StreamPair> CreateConnectedStreamsAsync()
    {
        var mesh = await DetachedMesh.StartAsync(new TcpStackOptions { MaxSendBuffer = BufferSize, MaxReceiveBuffer = BufferSize },
            ("server", []), ("client", []));
        try
        {
            var listener = await mesh[0].ListenAsync(0);
            var accept = listener.AcceptAsync();
            var dialed = await mesh[1].DialAsync("server", listener.Port);
            var accepted = await accept;
            return new StreamPair(dialed, accepted, async () =>
            {
                await listener.DisposeAsync();
                await mesh.DisposeAsync();
            });
        }
        catch
        {
            await mesh.DisposeAsync();
            throw;
        }
    }

    protected override async Task ShutdownWriteAsync(Stream stream) => await ((MeshConnection)stream).ShutdownWriteAsync();
}
