using System.Net;
using MeshNet.TestSupport.Impairment;
using MeshNet.TestSupport.Interop;

namespace MeshNet.Interop.Tests.Relay;

/// <summary>
/// An <see cref="ImpairmentRelay"/> between a MeshNet WireGuard device in the test process and
/// wireguard-go in a namespace: side A on loopback faces the device, side B on the veth's
/// root-namespace address faces wireguard-go. Each side is then told the relay's other end as
/// its peer's endpoint: the device <see cref="ImpairmentRelay.EndPointA"/>, wireguard-go
/// <see cref="ImpairmentRelay.EndPointB"/>.
/// </summary>
internal static class DeviceRelay
{
    public static ImpairmentRelay Start(VethPair veth, int deviceListenPort, IPEndPoint wireGuardGo, int seed = 1, ImpairmentProfile? impairment = null) =>
        ImpairmentRelay.Start(new ImpairmentRelayOptions
        {
            BindA = new IPEndPoint(IPAddress.Loopback, 0),
            BindB = new IPEndPoint(veth.A.IPv4, 0),
            PeerA = new IPEndPoint(IPAddress.Loopback, deviceListenPort),
            PeerB = wireGuardGo,
            AToB = impairment ?? ImpairmentProfile.None,
            BToA = impairment ?? ImpairmentProfile.None,
            Seed = seed,
        });
}
