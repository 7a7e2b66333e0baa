namespace MeshNet.TestSupport.Interop;

/// <summary>
/// An iptables rule added inside a <see cref="NetworkNamespace"/> (never the root namespace,
/// so tests cannot disturb the machine or each other) and deleted on disposal. Rules also
/// vanish with their namespace. Example: drop every second UDP datagram with
/// <c>["-p", "udp", "-m", "statistic", "--mode", "nth", "--every", "2", "-j", "DROP"]</c>.
/// </summary>
public sealed class IptablesRule : IAsyncDisposable
{
    private int _disposed;

    private IptablesRule(NetworkNamespace ns, IptablesFamily family, string table, string chain, IReadOnlyList<string> specification)
    {
        Namespace = ns;
        Family = family;
        Table = table;
        Chain = chain;
        Specification = specification;
    }

    /// <summary>The namespace the rule lives in.</summary>
    public NetworkNamespace Namespace { get; }

    /// <summary>iptables or ip6tables.</summary>
    public IptablesFamily Family { get; }

    /// <summary>The table (<c>filter</c>, <c>nat</c>, <c>mangle</c>, <c>raw</c>).</summary>
    public string Table { get; }

    /// <summary>The chain (<c>INPUT</c>, <c>OUTPUT</c>, <c>FORWARD</c>, ...).</summary>
    public string Chain { get; }

    /// <summary>The rule specification (matches and target).</summary>
    public IReadOnlyList<string> Specification { get; }

    /// <summary>Appends (or with <paramref name="insert"/>, inserts first) a rule in <paramref name="ns"/>.</summary>
    public static async Task<IptablesRule> AddAsync(
        NetworkNamespace ns,
        string chain,
        IReadOnlyList<string> specification,
        string table = "filter",
        IptablesFamily family = IptablesFamily.IPv4,
        bool insert = false,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ns);
        ArgumentException.ThrowIfNullOrEmpty(chain);
        ArgumentException.ThrowIfNullOrEmpty(table);
        ArgumentNullException.ThrowIfNull(specification);
        var rule = new IptablesRule(ns, family, table, chain, specification.ToList());
        Prerequisites.Require("ip", rule.Command);
        await rule.RunAsync(insert ? "-I" : "-A", ShellOptions.Default, cancellationToken).ConfigureAwait(false);
        return rule;
    }

    /// <summary>Deletes the rule; fine if the namespace is already gone.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0 && await Namespace.ExistsAsync().ConfigureAwait(false))
        {
            await RunAsync("-D", ShellOptions.Default, CancellationToken.None).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"{Command} -t {Table} {Chain} {string.Join(' ', Specification)} in {Namespace.Name}";

    private string Command => Family == IptablesFamily.IPv4 ? "iptables" : "ip6tables";

    // -w: wait for the xtables lock, which concurrent runs in other namespaces share.
    private Task<ShellResult> RunAsync(string operation, ShellOptions options, CancellationToken cancellationToken)
        => Namespace.ExecAsync(Command, ["-w", "10", "-t", Table, operation, Chain, .. Specification], options, cancellationToken);
}
