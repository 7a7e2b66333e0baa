using System.Net;
using Microsoft.AspNetCore.Http;

namespace MeshNet.Coordination.Auth;

/// <summary>
/// Plain HTTP/2 only on loopback: a call that did not arrive over TLS must come from a loopback
/// address. Behind a TLS-terminating proxy, run the forwarded-headers middleware so that the
/// request's scheme and remote address are the client's.
/// </summary>
internal static class TransportRule
{
    /// <summary>True when a call may be served.</summary>
    public static bool IsPermitted(bool isHttps, IPAddress? remote)
    {
        if (isHttps)
        {
            return true;
        }
        if (remote is null)
        {
            return false;
        }
        if (remote.IsIPv4MappedToIPv6)
        {
            remote = remote.MapToIPv4();
        }
        return IPAddress.IsLoopback(remote);
    }

    public static bool IsPermitted(HttpContext? http) =>
        http is not null && IsPermitted(http.Request.IsHttps, http.Connection.RemoteIpAddress);
}
