using System.Net;

namespace MeshNet.TestSupport.Interop;

/// <summary>
/// A veth pair <c>mnv{pid}-{n}a</c> / <c>...b</c> between two namespaces (or a namespace and the
/// root namespace), with IPv4 and IPv6 addresses on both ends and both ends up. The subnets
/// come from <see cref="TestSubnets"/>; end <see cref="A"/> is host 1, end <see cref="B"/> host 2.
/// Disposal deletes the pair (idempotent; deleting a namespace first is fine too).
/// </summary>
public sealed class VethPair : IAsyncDisposable
{
    private int _disposed;

    private VethPair(VethEnd a, VethEnd b, IPNetwork ipv4Subnet, IPNetwork ipv6Subnet)
    {
        A = a;
        B = b;
        IPv4Subnet = ipv4Subnet;
        IPv6Subnet = ipv6Subnet;
    }

    /// <summary>End "a": the root end when created with <see cref="CreateAsync(NetworkNamespace, CancellationToken)"/>.</summary>
    public VethEnd A { get; }

    /// <summary>End "b".</summary>
    public VethEnd B { get; }

    /// <summary>The /30 both ends are in.</summary>
    public IPNetwork IPv4Subnet { get; }

    /// <summary>The /64 both ends are in.</summary>
    public IPNetwork IPv6Subnet { get; }

    /// <summary>Creates a pair from the root namespace (<see cref="A"/>) into <paramref name="inner"/> (<see cref="B"/>).</summary>
    public static Task<VethPair> CreateAsync(NetworkNamespace inner, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(inner);
        return CreateAsync(null, inner, cancellationToken);
    }

    /// <summary>Creates a pair between <paramref name="a"/> and <paramref name="b"/> (null: the root namespace).</summary>
    public static async Task<VethPair> CreateAsync(NetworkNamespace? a, NetworkNamespace? b, CancellationToken cancellationToken = default)
    {
        Prerequisites.Require("ip");
        await LeftoverSweeper.EnsureSweptAsync(cancellationToken).ConfigureAwait(false);
        var baseName = RunId.NextName(RunId.VethKind, reserve: 1);
        var (v4, v6) = await TestSubnets.AllocateAsync(cancellationToken).ConfigureAwait(false);
        var pair = new VethPair(
            new VethEnd(a, baseName + "a", TestSubnets.Host(v4, 1), TestSubnets.Host(v6, 1)),
            new VethEnd(b, baseName + "b", TestSubnets.Host(v4, 2), TestSubnets.Host(v6, 2)),
            v4,
            v6);

        await Shell.RunAsync("ip", ["link", "add", pair.A.InterfaceName, "type", "veth", "peer", "name", pair.B.InterfaceName], cancellationToken).ConfigureAwait(false);
        try
        {
            foreach (var end in new[] { pair.A, pair.B })
            {
                if (end.Namespace is not null)
                {
                    await Shell.RunAsync("ip", ["link", "set", "dev", end.InterfaceName, "netns", end.Namespace.Name], cancellationToken).ConfigureAwait(false);
                }
            }

            foreach (var end in new[] { pair.A, pair.B })
            {
                await Shell.RunAsync("ip", end.Ip("addr", "add", $"{end.IPv4}/{v4.PrefixLength}", "dev", end.InterfaceName), cancellationToken).ConfigureAwait(false);
                await Shell.RunAsync("ip", end.Ip("addr", "add", $"{end.IPv6}/{v6.PrefixLength}", "dev", end.InterfaceName, "nodad"), cancellationToken).ConfigureAwait(false);
                await Shell.RunAsync("ip", end.Ip("link", "set", "dev", end.InterfaceName, "up"), cancellationToken).ConfigureAwait(false);
            }

            foreach (var end in new[] { pair.A, pair.B })
            {
                await Poll.UntilAsync(
                    async ct => (await Shell.RunAsync("ip", end.Ip("-o", "link", "show", "dev", end.InterfaceName), ct).ConfigureAwait(false)).StandardOutput.Contains("LOWER_UP", StringComparison.Ordinal),
                    TimeSpan.FromSeconds(10),
                    $"{end.InterfaceName} in {end.Location} to have a carrier",
                    cancellationToken).ConfigureAwait(false);
            }

            return pair;
        }
        catch
        {
            await pair.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Deletes the pair; fine if it (or its namespace) is already gone. Throws if an end is left behind.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // Deleting either end deletes both; an end whose namespace was deleted is already gone.
        foreach (var end in new[] { A, B })
        {
            if (await FindAsync(end).ConfigureAwait(false) is { } found)
            {
                await Shell.RunAsync("ip", found.Ip("link", "delete", "dev", found.InterfaceName), ShellOptions.Unchecked).ConfigureAwait(false);
            }
        }

        foreach (var end in new[] { A, B })
        {
            if (await FindAsync(end).ConfigureAwait(false) is { } left)
            {
                throw new InvalidOperationException($"veth {left.InterfaceName} in {left.Location} could not be deleted.");
            }
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"{A.InterfaceName} ({A.Location}) <-> {B.InterfaceName} ({B.Location})";

    // Looks in the end's namespace and in the root namespace, where both ends start out.
    private static async Task<VethEnd?> FindAsync(VethEnd end)
    {
        foreach (var candidate in end.Namespace is null ? [end] : new[] { end, end with { Namespace = null } })
        {
            var shown = await Shell.RunAsync("ip", candidate.Ip("link", "show", "dev", candidate.InterfaceName), ShellOptions.Unchecked).ConfigureAwait(false);
            if (shown.Succeeded)
            {
                return candidate;
            }
        }

        return null;
    }
}
