using System.Net;
using System.Net.Sockets;

namespace MeshNet.AspNetCore;

/// <summary>
/// A TCP port on the tailnet addresses of the <see cref="MeshNode"/> given to
/// <see cref="MeshWebHostBuilderExtensions.UseMeshNet"/>: what
/// <see cref="MeshKestrelServerOptionsExtensions.ListenMesh"/> asks Kestrel to listen on.
/// Immutable.
/// </summary>
/// <remarks>
/// Kestrel replaces the endpoint it was configured with by the bound one, which carries the port
/// actually listened on (the chosen one when 0 was asked for) and the node's fully qualified
/// name in <see cref="Host"/>; <c>IServerAddressesFeature</c> then lists it as
/// <c>http://web.acme.meshnet.internal:80</c>.
/// </remarks>
public sealed class MeshEndPoint : EndPoint
{
    /// <summary>A port on the tailnet (0 picks a free one when bound).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="port"/> is not between 0 and 65535.</exception>
    public MeshEndPoint(int port)
        : this(port, null)
    {
    }

    /// <summary>A port on the tailnet, on the node named <paramref name="host"/> (the form a bound endpoint has).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="port"/> is not between 0 and 65535.</exception>
    public MeshEndPoint(int port, string? host)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(port);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, IPEndPoint.MaxPort);
        Port = port;
        Host = host;
    }

    /// <summary>The TCP port.</summary>
    public int Port { get; }

    /// <summary>The node's fully qualified name once bound; null before.</summary>
    public string? Host { get; }

    /// <summary>Unspecified: the endpoint covers every address family the node has.</summary>
    public override AddressFamily AddressFamily => AddressFamily.Unspecified;

    /// <summary>Equal when the port and host are (host case-insensitively).</summary>
    public override bool Equals(object? obj) =>
        obj is MeshEndPoint other && other.Port == Port && string.Equals(other.Host, Host, StringComparison.OrdinalIgnoreCase);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Port, Host is null ? 0 : StringComparer.OrdinalIgnoreCase.GetHashCode(Host));

    /// <summary><c>HOST:PORT</c> once bound, <c>meshnet:PORT</c> before.</summary>
    public override string ToString() => $"{Host ?? "meshnet"}:{Port}";
}
