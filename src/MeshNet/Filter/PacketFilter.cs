using System.Collections.Immutable;
using MeshNet.Control.V1;
using MeshNet.Diagnostics;
using MeshNet.Userspace.Diagnostics;
using MeshNet.Userspace.Stack;
using Microsoft.Extensions.Logging;

namespace MeshNet.Filter;

/// <summary>
/// The node's stateful inbound packet filter (the stack's <see cref="IInboundPacketFilter"/>).
/// While the policy is not enforced (the initial state, and a tailnet without a policy)
/// everything is admitted. While it is, an inbound datagram is admitted when it belongs to a
/// flow this node opened (<see cref="ConnectionTracker"/>: replies, and ICMP errors quoting one
/// of our packets) or when a rule of the current <see cref="CompiledFilter"/> admits it (ICMP
/// errors too when the rules admit the flow they concern). Everything else is denied and
/// counted by <see cref="MeshPolicyDenialReason"/>: a TCP connection request or a UDP datagram
/// is rejected (the stack answers with ICMP "administratively prohibited"), anything else is
/// dropped silently.
/// </summary>
/// <remarks>
/// <para>Flows a peer opened are judged by the rules on every packet, so a policy change that
/// revokes access also cuts connections already open (the flows this node opened are not
/// affected). Verdicts are not cached: a rule lookup costs a few hash probes.</para>
/// <para>Thread safety: <see cref="Inspect"/> and <see cref="OnSent"/> run on the data path,
/// concurrently, lock-free and allocation-free (apart from a new tracked flow's entry);
/// <see cref="Update"/> compiles on the caller's thread and swaps the rules atomically.</para>
/// </remarks>
internal sealed class PacketFilter : IInboundPacketFilter, IDisposable
{
    private readonly ConnectionTracker _tracker;
    private readonly ILogger _logger;
    private readonly ReasonCounters<MeshPolicyDenialReason> _denials = new();
    private readonly LogRateLimit _denialLog; // one debug line per second at most
    private readonly Lock _updateLock = new();
    private volatile Policy _policy = new(CompiledFilter.Empty, false, 0, null);

    public PacketFilter(TimeProvider time, ILogger logger, ConnectionTrackingOptions? tracking = null)
    {
        _logger = logger;
        _tracker = new ConnectionTracker(time, tracking ?? new ConnectionTrackingOptions());
        _denialLog = new LogRateLimit(time, TimeSpan.FromSeconds(1));
    }

    /// <summary>True while the policy is enforced.</summary>
    public bool Enforced => _policy.Enforced;

    /// <summary>The policy version of the rules in force (0: none).</summary>
    public ulong PolicyVersion => _policy.Version;

    /// <summary>The rules in force.</summary>
    public CompiledFilter Rules => _policy.Rules;

    /// <summary>The connection tracker.</summary>
    public ConnectionTracker Tracker => _tracker;

    /// <summary>Packets denied, every reason.</summary>
    public long TotalDenied => _denials.Total;

    /// <summary>Packets denied for <paramref name="reason"/>.</summary>
    public long Denied(MeshPolicyDenialReason reason) => _denials[reason];

    /// <summary>The non-zero denial counters.</summary>
    public IReadOnlyDictionary<MeshPolicyDenialReason, long> DenialsSnapshot() => _denials.Snapshot();

    /// <summary>
    /// Installs the filter of a netmap: <paramref name="chunks"/> (by name) and whether they are
    /// enforced. Recompiles only when the chunks changed (the netmap keeps the same collection
    /// when a delta does not touch them). Called off the packet path (the map loop's task).
    /// </summary>
    public void Update(ImmutableSortedDictionary<string, FilterChunk> chunks, bool enforced, ulong policyVersion)
    {
        ArgumentNullException.ThrowIfNull(chunks);
        lock (_updateLock)
        {
            var current = _policy;
            if (ReferenceEquals(current.Source, chunks) && current.Enforced == enforced && current.Version == policyVersion)
            {
                return;
            }
            var rules = ReferenceEquals(current.Source, chunks) ? current.Rules : CompiledFilter.Compile(chunks.Values);
            if (rules.InvalidEntries > 0 && !ReferenceEquals(rules, current.Rules))
            {
                MeshLog.FilterInvalidEntries(_logger, rules.InvalidEntries, policyVersion);
            }
            _policy = new Policy(rules, enforced, policyVersion, chunks);
            MeshLog.FilterUpdated(_logger, enforced ? "enforced" : "not enforced (everything admitted)", policyVersion, rules.RuleCount);
        }
    }

    /// <inheritdoc/>
    public FilterVerdict Inspect(in DatagramHeaders datagram)
    {
        var policy = _policy;
        if (!policy.Enforced)
        {
            if (datagram.Flow.Protocol == 6 && (datagram.TcpFlags & (DatagramHeaders.TcpFin | DatagramHeaders.TcpRst)) != 0)
            {
                _tracker.TryAdmitReply(datagram); // keep the closing state of our flows right
            }
            return FilterVerdict.Accept;
        }
        if (datagram.IsTruncated)
        {
            return Deny(MeshPolicyDenialReason.Malformed, FilterVerdict.Drop, datagram);
        }
        var flow = datagram.Flow;
        if (datagram.IsIcmp)
        {
            return InspectIcmp(policy.Rules, datagram);
        }
        if (_tracker.TryAdmitReply(datagram))
        {
            return FilterVerdict.Accept;
        }
        if (policy.Rules.Admits(flow))
        {
            if (flow.Protocol == 17)
            {
                _tracker.NotePeerOpened(flow.Reversed());
            }
            return FilterVerdict.Accept;
        }
        bool reject = flow.Protocol == 17 || datagram.IsTcpConnectionRequest;
        return Deny(MeshPolicyDenialReason.NoRule, reject ? FilterVerdict.Reject : FilterVerdict.Drop, datagram);
    }

    /// <inheritdoc/>
    public void OnSent(in DatagramHeaders datagram) => _tracker.OnSent(datagram);

    public void Dispose() => _tracker.Dispose();

    private FilterVerdict InspectIcmp(CompiledFilter rules, in DatagramHeaders datagram)
    {
        if (datagram.IsIcmpEchoReply)
        {
            return _tracker.TryAdmitReply(datagram) ? FilterVerdict.Accept : Deny(MeshPolicyDenialReason.UntrackedIcmp, FilterVerdict.Drop, datagram);
        }
        if (datagram.IsIcmpError)
        {
            var quoted = datagram.QuotedFlow;
            if (quoted.IsEmpty || quoted.Source != datagram.Flow.Destination)
            {
                return Deny(MeshPolicyDenialReason.Malformed, FilterVerdict.Drop, datagram);
            }
            // About a flow of ours, or about our answer in a flow the rules admit.
            return _tracker.IsOpenedHere(quoted) || rules.Admits(quoted.Reversed())
                ? FilterVerdict.Accept
                : Deny(MeshPolicyDenialReason.UntrackedIcmp, FilterVerdict.Drop, datagram);
        }
        // Echo requests (and any other ICMP message) need a rule.
        return rules.Admits(datagram.Flow) ? FilterVerdict.Accept : Deny(MeshPolicyDenialReason.NoRule, FilterVerdict.Drop, datagram);
    }

    private FilterVerdict Deny(MeshPolicyDenialReason reason, FilterVerdict verdict, in DatagramHeaders datagram)
    {
        _denials.Increment(reason);
        if (_logger.IsEnabled(LogLevel.Debug) && _denialLog.TryEnter(out long suppressed))
        {
            MeshLog.PacketDenied(_logger, reason, datagram.Flow.ToString(), suppressed);
        }
        return verdict;
    }

    /// <summary>The rules in force, swapped whole.</summary>
    private sealed record Policy(CompiledFilter Rules, bool Enforced, ulong Version, object? Source);
}
