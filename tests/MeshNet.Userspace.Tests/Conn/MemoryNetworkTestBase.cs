using System.Net;
using MeshNet.Userspace.Conn;
using MeshNet.Userspace.Net;

namespace MeshNet.Userspace.Tests.Conn;

/// <summary>Shared set-up for memory network tests: addresses, and networks disposed after each test.</summary>
public abstract class MemoryNetworkTestBase : IDisposable
{
    protected static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(200);
    protected static readonly IPAddress A = IPAddress.Parse("10.0.0.1");
    protected static readonly IPAddress B = IPAddress.Parse("10.0.0.2");
    protected static readonly IPAddress C = IPAddress.Parse("10.0.0.3");

    private readonly List<IDisposable> _cleanup = [];

    public void Dispose()
    {
        for (int i = _cleanup.Count - 1; i >= 0; i--)
        {
            _cleanup[i].Dispose();
        }
        GC.SuppressFinalize(this);
    }

    protected T Track<T>(T disposable) where T : IDisposable
    {
        _cleanup.Add(disposable);
        return disposable;
    }

    protected MemoryNetwork NewNetwork(MemoryDeliveryMode mode = MemoryDeliveryMode.Background, int capacity = MemoryNetworkOptions.DefaultQueueCapacity) =>
        Track(new MemoryNetwork(new MemoryNetworkOptions { Delivery = mode, QueueCapacity = capacity }));

    protected static NetEndpoint At(IPAddress address, ushort port) => NetEndpoint.FromIPEndPoint(new IPEndPoint(address, port));
}
