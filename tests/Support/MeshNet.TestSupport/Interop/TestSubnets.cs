using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace MeshNet.TestSupport.Interop;

/// <summary>
/// Picks the outer subnets of veth pairs: an IPv4 /30 in 10.0.0.0/8 and an IPv6 /64 in
/// fd00::/8, both derived from the process id and a per-process counter, and checked against
/// every route of the root namespace (which includes the root ends of other runs' veths and
/// the machine's own networks), moving on to the next counter value on overlap.
/// </summary>
/// <remarks>
/// IPv6: <c>fd6d:PPPP:PPPP:CCCC::/64</c> holds the whole pid (P) and the counter (C), so it is
/// unique among live processes. IPv4 has only 22 free bits: <c>(pid mod 4096) * 1024 +
/// (counter mod 1024)</c>, where the route check resolves the rare clash. The counter is
/// process-wide static state for the same reason as <see cref="RunId"/>.
/// </remarks>
public static class TestSubnets
{
    /// <summary>Prefix length of the IPv4 subnet of a veth pair.</summary>
    public const int IPv4PrefixLength = 30;

    /// <summary>Prefix length of the IPv6 subnet of a veth pair.</summary>
    public const int IPv6PrefixLength = 64;

    private static readonly HashSet<string> RouteTypes = new(StringComparer.Ordinal)
    {
        "unicast", "local", "broadcast", "multicast", "throw", "unreachable", "prohibit", "blackhole", "nat", "anycast",
    };

    private static int s_counter;

    /// <summary>A fresh pair of subnets that overlap no route of the root namespace.</summary>
    public static async Task<(IPNetwork IPv4, IPNetwork IPv6)> AllocateAsync(CancellationToken cancellationToken = default)
    {
        var routes = await ReadRootRoutesAsync(cancellationToken).ConfigureAwait(false);
        for (var attempt = 0; attempt < 1024; attempt++)
        {
            var n = Interlocked.Increment(ref s_counter);
            var v4 = IPv4Subnet(RunId.ProcessId, n);
            var v6 = IPv6Subnet(RunId.ProcessId, n);
            if (!routes.Any(route => Overlaps(route, v4) || Overlaps(route, v6)))
            {
                return (v4, v6);
            }
        }

        throw new InvalidOperationException("No free test subnet in 10.0.0.0/8 / fd00::/8: the root namespace routes cover them all.");
    }

    /// <summary>Host number <paramref name="host"/> (1-based) of <paramref name="subnet"/>.</summary>
    public static IPAddress Host(IPNetwork subnet, int host)
    {
        var bytes = subnet.BaseAddress.GetAddressBytes();
        var carry = host;
        for (var i = bytes.Length - 1; i >= 0 && carry > 0; i--)
        {
            var sum = bytes[i] + carry;
            bytes[i] = (byte)sum;
            carry = sum >> 8;
        }

        var address = new IPAddress(bytes);
        return subnet.Contains(address) ? address : throw new ArgumentOutOfRangeException(nameof(host), host, $"Outside {subnet}.");
    }

    /// <summary>True when two prefixes share an address.</summary>
    public static bool Overlaps(IPNetwork a, IPNetwork b)
        => a.BaseAddress.AddressFamily == b.BaseAddress.AddressFamily && (a.Contains(b.BaseAddress) || b.Contains(a.BaseAddress));

    /// <summary>Parses <c>addr/len</c> or a bare address (a host prefix), clearing host bits; null if it is not one.</summary>
    public static IPNetwork? ParsePrefix(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Split('/', 2);
        if (!IPAddress.TryParse(parts[0], out var address))
        {
            return null;
        }

        var bytes = address.GetAddressBytes();
        var length = bytes.Length * 8;
        if (parts.Length == 2 && (!int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out length) || length > bytes.Length * 8))
        {
            return null;
        }

        for (var bit = length; bit < bytes.Length * 8; bit++)
        {
            bytes[bit / 8] &= (byte)~(0x80 >> (bit % 8));
        }

        return new IPNetwork(new IPAddress(bytes), length);
    }

    private static IPNetwork IPv4Subnet(int pid, int n)
    {
        var index = ((pid % 4096) << 10) | (n % 1024);
        var value = (10u << 24) | ((uint)index << 2);
        return new IPNetwork(new IPAddress([(byte)(value >> 24), (byte)(value >> 16), (byte)(value >> 8), (byte)value]), IPv4PrefixLength);
    }

    private static IPNetwork IPv6Subnet(int pid, int n)
    {
        var bytes = new byte[16];
        bytes[0] = 0xfd;
        bytes[1] = 0x6d; // 'm'
        bytes[2] = (byte)(pid >> 24);
        bytes[3] = (byte)(pid >> 16);
        bytes[4] = (byte)(pid >> 8);
        bytes[5] = (byte)pid;
        bytes[6] = (byte)(n >> 8);
        bytes[7] = (byte)n;
        return new IPNetwork(new IPAddress(bytes), IPv6PrefixLength);
    }

    private static async Task<List<IPNetwork>> ReadRootRoutesAsync(CancellationToken cancellationToken)
    {
        var routes = new List<IPNetwork>();
        foreach (var family in new[] { "-4", "-6" })
        {
            var result = await Shell.RunAsync("ip", [family, "route", "show", "table", "all"], cancellationToken).ConfigureAwait(false);
            foreach (var line in result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                var tokens = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                var destination = tokens.Length > 1 && RouteTypes.Contains(tokens[0]) ? tokens[1] : tokens[0];
                if (ParsePrefix(destination) is { } prefix && prefix.PrefixLength > 0
                    && prefix.BaseAddress.AddressFamily is AddressFamily.InterNetwork or AddressFamily.InterNetworkV6)
                {
                    routes.Add(prefix);
                }
            }
        }

        return routes;
    }
}
