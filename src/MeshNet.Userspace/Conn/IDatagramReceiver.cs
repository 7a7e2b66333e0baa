using MeshNet.Userspace.Net;
namespace MeshNet.Userspace.Conn;

/// <summary>
/// Receives the datagrams a <see cref="IUdpBind"/> reads. Implemented by the WireGuard device.
/// </summary>
public interface IDatagramReceiver
{
    /// <summary>
    /// Handles one received datagram. Called on the bind's receive thread(s), possibly from
    /// more than one thread at a time. <paramref name="datagram"/> is valid only for the
    /// duration of the call and may be modified in place (for example, decrypted). The
    /// receiver must not throw; a bind that sees an exception logs it and keeps receiving.
    /// </summary>
    void OnDatagram(Span<byte> datagram, in NetEndpoint source);
}
