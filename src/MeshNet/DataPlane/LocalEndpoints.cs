using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace MeshNet.DataPlane;

/// <summary>
/// The WireGuard endpoints a node advertises by default: the bound address when the socket is
/// bound to one, otherwise this machine's unicast addresses of the socket's families (up
/// interfaces; no link-local addresses), each with the bound port, loopback last.
/// </summary>
internal static class LocalEndpoints
{
    /// <summary>The endpoints for a socket bound to <paramref name="bindAddress"/> (null: every address, dual-stack) and <paramref name="port"/>.</summary>
    public static IReadOnlyList<IPEndPoint> Discover(IPAddress? bindAddress, ushort port)
    {
        if (bindAddress is not null && !bindAddress.Equals(IPAddress.Any) && !bindAddress.Equals(IPAddress.IPv6Any))
        {
            return [new IPEndPoint(bindAddress.IsIPv4MappedToIPv6 ? bindAddress.MapToIPv4() : bindAddress, port)];
        }
        bool v4 = true;
        bool v6 = (bindAddress is null && Socket.OSSupportsIPv6) || IPAddress.IPv6Any.Equals(bindAddress);
        var preferred = new List<IPEndPoint>();
        var loopback = new List<IPEndPoint>();
        NetworkInterface[] interfaces;
        try
        {
            interfaces = NetworkInterface.GetAllNetworkInterfaces();
        }
        catch (NetworkInformationException)
        {
            interfaces = [];
        }
        foreach (var nic in interfaces)
        {
            // Linux reports "Unknown" for loopback and some virtual interfaces.
            if (nic.OperationalStatus is not (OperationalStatus.Up or OperationalStatus.Unknown))
            {
                continue;
            }
            IPInterfaceProperties properties;
            try
            {
                properties = nic.GetIPProperties();
            }
            catch (NetworkInformationException)
            {
                continue;
            }
            foreach (var unicast in properties.UnicastAddresses)
            {
                var address = unicast.Address;
                bool usable = address.AddressFamily switch
                {
                    AddressFamily.InterNetwork => v4 && !IsIPv4LinkLocal(address),
                    AddressFamily.InterNetworkV6 => v6 && !address.IsIPv6LinkLocal && !address.IsIPv6Multicast && !address.IsIPv4MappedToIPv6,
                    _ => false,
                };
                if (!usable)
                {
                    continue;
                }
                var endpoint = new IPEndPoint(address, port);
                var list = IPAddress.IsLoopback(address) ? loopback : preferred;
                if (!list.Contains(endpoint))
                {
                    list.Add(endpoint);
                }
            }
        }
        if (preferred.Count + loopback.Count == 0)
        {
            loopback.Add(new IPEndPoint(IPAddress.Loopback, port));
        }
        return [.. preferred.Concat(loopback).Take(MeshNodeOptions.MaxAdvertisedEndpoints)];
    }

    /// <summary>Whether a socket bound to <paramref name="bindAddress"/> can send to <paramref name="endpoint"/> (its address family).</summary>
    public static bool CanReach(IPAddress? bindAddress, IPEndPoint endpoint)
    {
        bool targetV4 = endpoint.AddressFamily == AddressFamily.InterNetwork;
        if (bindAddress is null)
        {
            return targetV4 || Socket.OSSupportsIPv6;
        }
        if (bindAddress.Equals(IPAddress.IPv6Any))
        {
            return true;
        }
        var bound = bindAddress.IsIPv4MappedToIPv6 ? bindAddress.MapToIPv4() : bindAddress;
        return (bound.AddressFamily == AddressFamily.InterNetwork) == targetV4;
    }

    /// <summary>Formats endpoints as the protocol wants them ("ip:port", IPv6 in brackets).</summary>
    public static string[] Format(IReadOnlyList<IPEndPoint> endpoints) => [.. endpoints.Select(e => e.ToString())];

    private static bool IsIPv4LinkLocal(IPAddress address)
    {
        Span<byte> bytes = stackalloc byte[4];
        return address.TryWriteBytes(bytes, out _) && bytes[0] == 169 && bytes[1] == 254;
    }
}
