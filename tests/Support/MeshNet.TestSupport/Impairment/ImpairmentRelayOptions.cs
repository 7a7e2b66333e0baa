using System.Net;

namespace MeshNet.TestSupport.Impairment;

/// <summary>How an <see cref="ImpairmentRelay"/> is set up.</summary>
public sealed record ImpairmentRelayOptions
{
    /// <summary>Where side A binds when the relay creates its sockets (default 127.0.0.1, any port).</summary>
    public IPEndPoint BindA { get; init; } = new(IPAddress.Loopback, 0);

    /// <summary>Where side B binds when the relay creates its sockets (default 127.0.0.1, any port).</summary>
    public IPEndPoint BindB { get; init; } = new(IPAddress.Loopback, 0);

    /// <summary>The peer of side A (datagrams from B go there); null: the source of the latest datagram received on A.</summary>
    public IPEndPoint? PeerA { get; init; }

    /// <summary>The peer of side B (datagrams from A go there); null: the source of the latest datagram received on B.</summary>
    public IPEndPoint? PeerB { get; init; }

    /// <summary>Impairment of datagrams received on A and sent out of B.</summary>
    public ImpairmentProfile AToB { get; init; } = ImpairmentProfile.None;

    /// <summary>Impairment of datagrams received on B and sent out of A.</summary>
    public ImpairmentProfile BToA { get; init; } = ImpairmentProfile.None;

    /// <summary>Seed of the relay's random decisions: the same seed and arrival order give the same decisions.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Socket send and receive buffer size requested for both sockets (forced past the system maximum when root).</summary>
    public int SocketBufferSize { get; init; } = 8 << 20;
}
