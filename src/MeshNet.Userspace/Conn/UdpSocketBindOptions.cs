using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace MeshNet.Userspace.Conn;

/// <summary>
/// Settings for a <see cref="UdpSocketBind"/>. The bind validates and copies them when it is
/// constructed: changing an options object afterwards does not affect binds already made.
/// </summary>
public sealed class UdpSocketBindOptions
{
    /// <summary>The default <see cref="SocketBufferSize"/>: 4 MiB.</summary>
    public const int DefaultSocketBufferSize = 4 * 1024 * 1024;

    /// <summary>The largest accepted <see cref="SocketBufferSize"/>: 1 GiB.</summary>
    public const int MaxSocketBufferSize = 1024 * 1024 * 1024;

    /// <summary>
    /// The local address to bind. <see langword="null"/> (the default) binds every interface:
    /// a dual-stack IPv6 socket (<see cref="IPAddress.IPv6Any"/> with dual mode, so IPv4 peers
    /// are reached through IPv4-mapped addresses), or <see cref="IPAddress.Any"/> when the
    /// operating system has no IPv6. <see cref="IPAddress.IPv6Any"/> given explicitly is also
    /// bound dual-stack. Any other address gives a socket of that address's family only:
    /// sending to the other family fails (<see cref="UdpSocketBind.Send"/> returns false).
    /// Tests typically use <see cref="IPAddress.Loopback"/> or <see cref="IPAddress.IPv6Loopback"/>.
    /// An IPv4-mapped IPv6 address is treated as the IPv4 address it maps.
    /// </summary>
    public IPAddress? BindAddress { get; set; }

    /// <summary>
    /// The kernel receive and send buffer size to request (SO_RCVBUF / SO_SNDBUF), in bytes.
    /// Best effort: on Linux the bind first tries the privileged SO_RCVBUFFORCE / SO_SNDBUFFORCE
    /// (as wireguard-go does) and otherwise gets at most what <c>net.core.rmem_max</c> /
    /// <c>wmem_max</c> allow. Zero keeps the operating system's defaults. Default 4 MiB; at most
    /// <see cref="MaxSocketBufferSize"/>.
    /// </summary>
    public int SocketBufferSize { get; set; } = DefaultSocketBufferSize;

    /// <summary>
    /// Where the bind reports opening and closing (information), receiver exceptions and
    /// unexpected socket errors (error / warning), and failed sends (debug).
    /// <see langword="null"/> disables logging.
    /// </summary>
    public ILogger? Logger { get; set; }

    /// <summary>Throws when a property holds a value the bind cannot use.</summary>
    internal void Validate()
    {
        if (BindAddress is { } address
            && address.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
        {
            throw new ArgumentException(
                $"{nameof(BindAddress)} must be an IPv4 or IPv6 address, not {address.AddressFamily}.",
                nameof(BindAddress));
        }
        if (SocketBufferSize is < 0 or > MaxSocketBufferSize)
        {
            throw new ArgumentOutOfRangeException(
                nameof(SocketBufferSize),
                SocketBufferSize,
                $"{nameof(SocketBufferSize)} must be between 0 (operating system default) and {MaxSocketBufferSize}.");
        }
    }
}
