using System.Globalization;
using MeshNet;

namespace QuickStart;

/// <summary>Prints each node's name and addresses, and a row per peer as that node sees it.</summary>
internal static class StatusTable
{
    public static void Write(TextWriter output, IEnumerable<MeshNode> nodes)
    {
        output.WriteLine("Status");
        foreach (var node in nodes)
        {
            var status = node.GetStatus();
            output.WriteLine($"node {status.Name} ({status.Self.Fqdn}) {string.Join(", ", status.Addresses)}, " +
                $"WireGuard port {status.ListenPort}, control {(status.ControlConnected ? "connected" : "disconnected")}");
            output.WriteLine($"  {"peer",-10} {"endpoint",-22} {"last handshake",-16} {"bytes in",10} {"bytes out",10}  {"online",-6}");
            foreach (var peer in status.Peers)
            {
                var handshake = peer.LastHandshake is { } at
                    ? $"{(DateTimeOffset.UtcNow - at).TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} s ago"
                    : "never";
                output.WriteLine($"  {peer.Name,-10} {peer.Endpoint?.ToString() ?? "-",-22} {handshake,-16} {peer.BytesReceived,10} {peer.BytesSent,10}  {(peer.Online ? "yes" : "no"),-6}");
            }
        }
    }
}
