namespace MeshNet.Userspace.Link;

/// <summary>
/// Accepts whole IP packets (IPv4 or IPv6, starting at the IP header). This is the seam
/// between layers: the WireGuard device writes decrypted packets into one (the TCP/IP stack
/// or a test), and is itself one (packets written into the device are encrypted and sent to
/// the peer that cryptokey routing selects).
/// </summary>
public interface IPacketSink
{
    /// <summary>
    /// Takes one packet. <paramref name="packet"/> is valid only during the call: an
    /// implementation copies what it keeps. Implementations must be safe to call from several
    /// threads, must not block for long, and must not throw for bad packets (they drop and
    /// count them).
    /// </summary>
    void WritePacket(ReadOnlySpan<byte> packet);
}
