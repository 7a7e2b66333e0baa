using System.Net;

namespace MeshNet.Control;

/// <summary>Plain HTTP/2 only to loopback; TLS otherwise.</summary>
internal static class ControlUrlPolicy
{
    /// <summary>Throws <see cref="MeshErrorCode.InvalidConfiguration"/> for plain HTTP to a host that is not loopback.</summary>
    public static void Check(Uri url)
    {
        if (url.Scheme == Uri.UriSchemeHttp && !IsLoopback(url))
        {
            throw new MeshException(MeshErrorCode.InvalidConfiguration,
                $"The control URL {url} uses plain HTTP to a host that is not loopback; use https (plain HTTP/2 is accepted only for localhost, 127.0.0.0/8 and ::1).");
        }
    }

    /// <summary>True for <c>localhost</c> (and <c>*.localhost</c>, RFC 6761) and loopback address literals.</summary>
    public static bool IsLoopback(Uri url)
    {
        string host = url.Host;
        if (host.StartsWith('[') && host.EndsWith(']'))
        {
            host = host[1..^1];
        }
        if (IPAddress.TryParse(host, out var address))
        {
            return IPAddress.IsLoopback(address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address);
        }
        host = host.TrimEnd('.');
        return host.Equals("localhost", StringComparison.OrdinalIgnoreCase)
            || host.EndsWith(".localhost", StringComparison.OrdinalIgnoreCase);
    }
}
