using System.Globalization;

namespace MeshNet.TestSupport.Interop;

/// <summary>One peer line of <c>wg show IFNAME dump</c>.</summary>
/// <param name="PublicKey">The peer's public key, base64.</param>
/// <param name="PresharedKey">The preshared key, base64, or null when none is set.</param>
/// <param name="Endpoint">The endpoint as wg prints it (<c>10.0.0.2:51820</c>, <c>[fd00::2]:51820</c>), or null.</param>
/// <param name="AllowedIps">The allowed IPs in CIDR notation.</param>
/// <param name="LatestHandshake">The time of the latest handshake, or null when there was none.</param>
/// <param name="RxBytes">Bytes received from the peer.</param>
/// <param name="TxBytes">Bytes sent to the peer.</param>
/// <param name="PersistentKeepalive">The persistent keepalive interval in seconds, or null when off.</param>
public sealed record WgShowPeer(
    string PublicKey,
    string? PresharedKey,
    string? Endpoint,
    IReadOnlyList<string> AllowedIps,
    DateTimeOffset? LatestHandshake,
    long RxBytes,
    long TxBytes,
    int? PersistentKeepalive)
{
    /// <summary>
    /// Parses the output of <c>wg show IFNAME dump</c>: a first line for the interface
    /// (private key, public key, listen port, fwmark) then one tab-separated line per peer
    /// (public key, preshared key, endpoint, allowed ips, latest handshake, rx, tx, keepalive).
    /// </summary>
    /// <exception cref="FormatException">A line does not have the expected fields.</exception>
    public static IReadOnlyList<WgShowPeer> ParseDump(string dump)
    {
        ArgumentNullException.ThrowIfNull(dump);
        return dump.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Skip(1)
            .Select(ParsePeerLine)
            .ToList();
    }

    private static WgShowPeer ParsePeerLine(string line)
    {
        var f = line.TrimEnd('\r').Split('\t');
        if (f.Length != 8)
        {
            throw new FormatException($"Expected 8 tab-separated fields in a `wg show dump` peer line, got {f.Length}: `{line}`.");
        }

        var handshake = long.Parse(f[4], NumberStyles.None, CultureInfo.InvariantCulture);
        return new WgShowPeer(
            f[0],
            f[1] == "(none)" ? null : f[1],
            f[2] == "(none)" ? null : f[2],
            f[3] == "(none)" ? [] : f[3].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            handshake == 0 ? null : DateTimeOffset.FromUnixTimeSeconds(handshake),
            long.Parse(f[5], NumberStyles.None, CultureInfo.InvariantCulture),
            long.Parse(f[6], NumberStyles.None, CultureInfo.InvariantCulture),
            f[7] == "off" ? null : int.Parse(f[7], NumberStyles.None, CultureInfo.InvariantCulture));
    }
}
