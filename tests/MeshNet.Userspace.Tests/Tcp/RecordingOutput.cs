using MeshNet.Userspace.Net;
using MeshNet.Userspace.Stack.Ip;

namespace MeshNet.Userspace.Tests.Tcp;

/// <summary>An <see cref="IIpOutput"/> that records every transport packet (or forwards it).</summary>
internal sealed class RecordingOutput(int mtu = 1420) : IIpOutput
{
    private readonly object _lock = new();
    private readonly List<(NetAddress Source, NetAddress Destination, byte[] Packet)> _sent = [];

    public int Mtu { get; set; } = mtu;

    /// <summary>When set, packets go here instead of the record.</summary>
    public Action<NetAddress, NetAddress, byte[]>? Forward { get; set; }

    public bool Send(NetAddress source, NetAddress destination, byte protocol, byte[] buffer, int length, byte trafficClass = 0)
    {
        var packet = buffer.AsSpan(IIpOutput.HeaderRoom, length).ToArray();
        if (Forward is { } forward)
        {
            forward(source, destination, packet);
            return true;
        }
        lock (_lock)
        {
            _sent.Add((source, destination, packet));
        }
        return true;
    }

    public int MaxTransportPayload(NetAddress destination) => Mtu - (destination.IsIPv4 ? 20 : 40);

    public List<(NetAddress Source, NetAddress Destination, byte[] Packet)> Drain()
    {
        lock (_lock)
        {
            var result = _sent.ToList();
            _sent.Clear();
            return result;
        }
    }
}
