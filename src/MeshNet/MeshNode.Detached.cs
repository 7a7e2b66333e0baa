using MeshNet.DataPlane;
using MeshNet.Netmap;

namespace MeshNet;

/// <summary>A node without a control client, for tests of the data path.</summary>
public sealed partial class MeshNode
{
    /// <summary>
    /// Test hook: starts a node whose netmap comes from the caller (<see cref="ApplyNetmap"/>)
    /// instead of a coordination service: the identity, data plane, listeners, dialing and
    /// status are the real ones. <paramref name="identity"/> is taken over by the node.
    /// </summary>
    internal static async Task<MeshNode> StartWithoutControlAsync(MeshNodeOptions options, MeshNodeIdentity identity,
        NetmapSnapshot netmap, string tailnet, CancellationToken cancellationToken = default)
    {
        var node = new MeshNode(options.Snapshot());
        node._registration.TakeIdentity(identity);
        try
        {
            node._dataPlane = await NodeDataPlane.StartDeviceAsync(identity.PrivateKey, options.BindAddress, options.ListenPort,
                options.TimeProvider, options.LoggerFactory, node._logger, cancellationToken).ConfigureAwait(false);
            node._registration.Adopt(netmap.Self, tailnet);
            node._addresses = NameResolver.OrderedAddresses(netmap.Self);
            node._dataPlane.StartStack(node._addresses, node._options.Tcp);
            node.OnNetmap(netmap);
            return node;
        }
        catch
        {
            await node.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Test hook: applies a netmap as if the map stream had delivered it.</summary>
    internal void ApplyNetmap(NetmapSnapshot netmap)
    {
        ThrowIfDisposed();
        OnNetmap(netmap);
    }

    /// <summary>
    /// The node's WireGuard device, for tests that write crafted IP packets into it (they are
    /// encrypted to the peer that cryptokey routing selects, as the stack's packets are).
    /// </summary>
    internal Userspace.WireGuard.WireGuardDevice Device => _dataPlane?.Device ?? throw new InvalidOperationException("The node has not started.");
}
