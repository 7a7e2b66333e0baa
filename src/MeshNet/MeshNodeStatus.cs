using System.Net;
using MeshNet.Userspace.Crypto;

namespace MeshNet;

/// <summary>A snapshot of a node (<see cref="MeshNode.GetStatus"/>): itself, its link to the coordination service, and its peers.</summary>
public sealed class MeshNodeStatus
{
    internal MeshNodeStatus()
    {
    }

    /// <summary>This node's identity (id, names, addresses, tags, key).</summary>
    public required MeshPeerIdentity Self { get; init; }

    /// <summary>The tailnet the node belongs to.</summary>
    public required string Tailnet { get; init; }

    /// <summary>The WireGuard UDP port.</summary>
    public int ListenPort { get; init; }

    /// <summary>The endpoints this node advertises, most preferred first.</summary>
    public IReadOnlyList<IPEndPoint> Endpoints { get; init; } = [];

    /// <summary>When this node's key expires, or null.</summary>
    public DateTimeOffset? KeyExpiry { get; init; }

    /// <summary>True while the netmap stream to the coordination service is up.</summary>
    public bool ControlConnected { get; init; }

    /// <summary>The most recent control failure (possibly already recovered from), or null.</summary>
    public MeshErrorCode? LastControlError { get; init; }

    /// <summary>The message of <see cref="LastControlError"/>, or null.</summary>
    public string? LastControlErrorMessage { get; init; }

    /// <summary>The sequence number of the last netmap message applied.</summary>
    public ulong NetmapSequence { get; init; }

    /// <summary>
    /// Where the netmap in use came from: <see cref="MeshNetmapSource.Cached"/> after a start from
    /// the netmap cache until the first netmap from the coordination service replaces it, then
    /// <see cref="MeshNetmapSource.Live"/>.
    /// </summary>
    public MeshNetmapSource NetmapSource { get; init; }

    /// <summary>
    /// How long ago the netmap in use was received or last changed (for a cached netmap: since
    /// the previous run received it). A live netmap of a quiet tailnet grows old too: it is
    /// current as long as <see cref="ControlConnected"/> is true.
    /// </summary>
    public TimeSpan NetmapAge { get; init; }

    /// <summary>
    /// Conditions an operator should know about, one sentence each (empty when all is well): for
    /// example running on a cached netmap while the coordination service is unreachable, or a
    /// netmap cache that cannot be written.
    /// </summary>
    public IReadOnlyList<string> HealthWarnings { get; init; } = [];

    /// <summary>True while the tailnet policy is enforced on inbound packets (false: everything from the tailnet is admitted).</summary>
    public bool PolicyEnforced { get; init; }

    /// <summary>The version of the tailnet policy in force (0: no policy).</summary>
    public ulong PolicyVersion { get; init; }

    /// <summary>Inbound packets the node's filter dropped because the tailnet policy does not admit them, since the node started.</summary>
    public long PacketsDeniedByPolicy { get; init; }

    /// <summary><see cref="PacketsDeniedByPolicy"/> by reason (the reasons with a non-zero count).</summary>
    public IReadOnlyDictionary<MeshPolicyDenialReason, long> PolicyDenials { get; init; } = new Dictionary<MeshPolicyDenialReason, long>();

    /// <summary>Flows this node opened that its connection tracking follows (so that their replies pass the filter).</summary>
    public int TrackedFlows { get; init; }

    /// <summary>Tracked flows evicted because the tracking table was full (their replies are then judged by the policy).</summary>
    public long TrackedFlowsEvicted { get; init; }

    /// <summary>The peers, by node id.</summary>
    public IReadOnlyList<MeshPeerStatus> Peers { get; init; } = [];

    /// <summary>This node's DNS label.</summary>
    public string Name => Self.Name;

    /// <summary>This node's tailnet addresses.</summary>
    public IReadOnlyList<IPAddress> Addresses => Self.Addresses;

    /// <summary>This node's public key.</summary>
    public WireGuardPublicKey? PublicKey => Self.PublicKey;

    /// <summary>A one-line summary (the netmap's source, and the number of health warnings when there are some).</summary>
    public override string ToString() =>
        $"{Self.Fqdn} {string.Join(", ", Addresses)} port {ListenPort}, control {(ControlConnected ? "connected" : "disconnected")}, " +
        $"{(NetmapSource == MeshNetmapSource.Cached ? "cached" : "live")} netmap, {Peers.Count} peers" +
        (HealthWarnings.Count == 0 ? "" : $", {HealthWarnings.Count} health warnings");
}
