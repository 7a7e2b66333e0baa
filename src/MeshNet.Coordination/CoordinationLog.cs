using Microsoft.Extensions.Logging;

namespace MeshNet.Coordination;

/// <summary>
/// The coordination service's log messages (source-generated, stable event ids 5000-5199).
/// Nodes appear by id and tailnet; keys, auth-key secrets and tokens are never logged.
/// </summary>
internal static partial class CoordinationLog
{
    // 5000-5019: lifecycle and storage.
    [LoggerMessage(EventId = 5000, Level = LogLevel.Information, Message = "Coordination service started (schema version {SchemaVersion})")]
    public static partial void Started(ILogger logger, int schemaVersion);

    [LoggerMessage(EventId = 5001, Level = LogLevel.Information, Message = "Generated a new server key")]
    public static partial void ServerKeyGenerated(ILogger logger);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Information, Message = "Coordination service stopping: closing {Streams} map streams")]
    public static partial void Stopping(ILogger logger, int streams);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Information, Message = "Applied schema migration {Version}")]
    public static partial void MigrationApplied(ILogger logger, int version);

    [LoggerMessage(EventId = 5010, Level = LogLevel.Error, Message = "Maintenance pass failed")]
    public static partial void MaintenanceFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 5011, Level = LogLevel.Warning, Message = "Could not record last-seen of node {NodeId}")]
    public static partial void LastSeenFailed(ILogger logger, ulong nodeId, Exception exception);

    // 5020-5059: registration and nodes.
    [LoggerMessage(EventId = 5020, Level = LogLevel.Information, Message = "Node {NodeId} ({Name}) joined tailnet {Tailnet}")]
    public static partial void NodeRegistered(ILogger logger, ulong nodeId, string name, string tailnet);

    [LoggerMessage(EventId = 5021, Level = LogLevel.Debug, Message = "Node {NodeId} re-registered in tailnet {Tailnet}")]
    public static partial void NodeReregistered(ILogger logger, ulong nodeId, string tailnet);

    [LoggerMessage(EventId = 5022, Level = LogLevel.Information, Message = "Node {NodeId} rotated its key in tailnet {Tailnet}")]
    public static partial void NodeKeyRotated(ILogger logger, ulong nodeId, string tailnet);

    [LoggerMessage(EventId = 5026, Level = LogLevel.Information, Message = "Node {NodeId} replaced its expired key with auth key {KeyId} in tailnet {Tailnet}")]
    public static partial void NodeReauthenticated(ILogger logger, ulong nodeId, string keyId, string tailnet);

    [LoggerMessage(EventId = 5023, Level = LogLevel.Information, Message = "Registration refused ({Reason})")]
    public static partial void RegistrationRefused(ILogger logger, string reason);

    [LoggerMessage(EventId = 5024, Level = LogLevel.Information, Message = "Node {NodeId} removed from tailnet {Tailnet} ({Cause})")]
    public static partial void NodeRemoved(ILogger logger, ulong nodeId, string tailnet, string cause);

    [LoggerMessage(EventId = 5025, Level = LogLevel.Information, Message = "Key of node {NodeId} in tailnet {Tailnet} expired")]
    public static partial void NodeKeyExpired(ILogger logger, ulong nodeId, string tailnet);

    // 5060-5099: map streams.
    [LoggerMessage(EventId = 5060, Level = LogLevel.Debug, Message = "Node {NodeId} opened a map stream ({Kind})")]
    public static partial void MapStreamOpened(ILogger logger, ulong nodeId, string kind);

    [LoggerMessage(EventId = 5061, Level = LogLevel.Debug, Message = "Map stream of node {NodeId} closed")]
    public static partial void MapStreamClosed(ILogger logger, ulong nodeId);

    [LoggerMessage(EventId = 5062, Level = LogLevel.Information, Message = "Map stream of node {NodeId} ended: {Reason}")]
    public static partial void MapStreamTerminated(ILogger logger, ulong nodeId, string reason);

    // 5100-5139: authentication.
    [LoggerMessage(EventId = 5100, Level = LogLevel.Information, Message = "Node call {Method} from {Remote} refused: {Reason}")]
    public static partial void NodeCallRefused(ILogger logger, string method, string remote, string reason);

    [LoggerMessage(EventId = 5101, Level = LogLevel.Information, Message = "Admin call {Method} from {Remote} refused: {Reason}")]
    public static partial void AdminCallRefused(ILogger logger, string method, string remote, string reason);

    [LoggerMessage(EventId = 5102, Level = LogLevel.Warning, Message = "The nonce cache is full of live nonces ({Capacity}); refusing node calls until entries expire")]
    public static partial void NonceCacheFull(ILogger logger, int capacity);

    // 5140-5179: admin.
    [LoggerMessage(EventId = 5140, Level = LogLevel.Information, Message = "Tailnet {Tailnet} created")]
    public static partial void TailnetCreated(ILogger logger, string tailnet);

    [LoggerMessage(EventId = 5141, Level = LogLevel.Information, Message = "Tailnet {Tailnet} deleted")]
    public static partial void TailnetDeleted(ILogger logger, string tailnet);

    [LoggerMessage(EventId = 5142, Level = LogLevel.Information, Message = "Auth key {KeyId} created for tailnet {Tailnet} (reusable {Reusable}, ephemeral {Ephemeral})")]
    public static partial void AuthKeyCreated(ILogger logger, string keyId, string tailnet, bool reusable, bool ephemeral);

    [LoggerMessage(EventId = 5143, Level = LogLevel.Information, Message = "Auth key {KeyId} revoked")]
    public static partial void AuthKeyRevoked(ILogger logger, string keyId);

    [LoggerMessage(EventId = 5144, Level = LogLevel.Information, Message = "Policy of tailnet {Tailnet} saved as version {Version}; {Affected} nodes affected")]
    public static partial void PolicySaved(ILogger logger, string tailnet, ulong version, int affected);

    [LoggerMessage(EventId = 5145, Level = LogLevel.Information, Message = "Policy of tailnet {Tailnet} refused: {Problem}")]
    public static partial void PolicyRefused(ILogger logger, string tailnet, string problem);

    // 5180-5239: leases and ownership.
    [LoggerMessage(EventId = 5180, Level = LogLevel.Information, Message = "Coordination server {ServerId} registered at {Url} (instance {Instance})")]
    public static partial void ServerRegistered(ILogger logger, string serverId, string url, string instance);

    [LoggerMessage(EventId = 5181, Level = LogLevel.Warning, Message = "Lease renewal failed: {Problem}")]
    public static partial void LeaseRenewalFailed(ILogger logger, string problem);

    [LoggerMessage(EventId = 5182, Level = LogLevel.Information, Message = "Lease of tailnet {Tailnet} claimed (epoch {Epoch}, previous owner {PreviousOwner})")]
    public static partial void LeaseClaimed(ILogger logger, string tailnet, ulong epoch, string previousOwner);

    [LoggerMessage(EventId = 5183, Level = LogLevel.Warning, Message = "Lease of tailnet {Tailnet} (epoch {Epoch}) lost: {Reason}; no longer serving it")]
    public static partial void LeaseLost(ILogger logger, string tailnet, ulong epoch, string reason);

    [LoggerMessage(EventId = 5184, Level = LogLevel.Error, Message = "Tailnet {Tailnet} quarantined: two owners stopped while taking it on; an administrator must release it")]
    public static partial void TailnetQuarantined(ILogger logger, string tailnet);

    [LoggerMessage(EventId = 5185, Level = LogLevel.Warning, Message = "Giving up the lease of {Tailnet} failed: {Problem}")]
    public static partial void LeaseReleaseFailed(ILogger logger, string tailnet, string problem);

    [LoggerMessage(EventId = 5186, Level = LogLevel.Error, Message = "Another process took over server id {ServerId}: this one stops serving")]
    public static partial void ServerReplaced(ILogger logger, string serverId);

    [LoggerMessage(EventId = 5187, Level = LogLevel.Warning, Message = "A lease round failed: {Problem}")]
    public static partial void LeaseRoundFailed(ILogger logger, string problem);

    [LoggerMessage(EventId = 5188, Level = LogLevel.Warning, Message = "A write of tailnet {Tailnet} was refused by its fence (epoch {Epoch} superseded or expired); not published")]
    public static partial void WriteFenced(ILogger logger, string tailnet, ulong epoch);

    [LoggerMessage(EventId = 5189, Level = LogLevel.Warning, Message = "A write of tailnet {Tailnet} has an unknown outcome ({Problem}); reloading its bus")]
    public static partial void WriteOutcomeUnknown(ILogger logger, string tailnet, string problem);

    // 5240-5259: incidents.
    [LoggerMessage(EventId = 5240, Level = LogLevel.Warning,
        Message = "Incident {Incident}, tailnet {Tailnet}: {Resumed}/{Affected} nodes resumed, control gap median {MedianMs:0} ms, max {MaxMs:0} ms, {NodeSeconds:0.0} node-seconds, severity {Severity}")]
    public static partial void IncidentPartClosed(ILogger logger, string incident, string tailnet, int resumed, int affected, double medianMs, double maxMs,
        double nodeSeconds, string severity);

    [LoggerMessage(EventId = 5241, Level = LogLevel.Error, Message = "Incident quarantine: tailnet {Tailnet} is not served ({Affected} nodes had a stream); release it with ReleaseQuarantine once fixed")]
    public static partial void IncidentQuarantine(ILogger logger, string tailnet, int affected);

    [LoggerMessage(EventId = 5242, Level = LogLevel.Warning, Message = "Recording incident {Incident} failed: {Problem}")]
    public static partial void IncidentWriteFailed(ILogger logger, string incident, string problem);

    [LoggerMessage(EventId = 5243, Level = LogLevel.Information, Message = "Tailnet {Tailnet} moved from {From} to {To} (epoch {Epoch}): frozen {FrozenMs:0} ms, {Streams} streams redirected")]
    public static partial void TailnetMoved(ILogger logger, string tailnet, string from, string to, ulong epoch, double frozenMs, int streams);

    [LoggerMessage(EventId = 5244, Level = LogLevel.Warning, Message = "Moving tailnet {Tailnet} to {To} failed: {Problem}; it stays here")]
    public static partial void TailnetMoveFailed(ILogger logger, string tailnet, string to, string problem);

    [LoggerMessage(EventId = 5245, Level = LogLevel.Information, Message = "Rebalancing moved tailnet {Tailnet} from {From} to {To} (load {Score:0.#})")]
    public static partial void RebalanceMoved(ILogger logger, string tailnet, string from, string to, double score);

    [LoggerMessage(EventId = 5246, Level = LogLevel.Information, Message = "Moving tailnet {Tailnet} from {From} to {To} ({Cause})")]
    public static partial void TailnetMoving(ILogger logger, string tailnet, string from, string to, string cause);

    [LoggerMessage(EventId = 5247, Level = LogLevel.Information, Message = "Rebalancing cycle: {Moves} moves in {Rounds} rounds; loads {Loads}")]
    public static partial void RebalancePlanned(ILogger logger, int moves, int rounds, string loads);

    [LoggerMessage(EventId = 5248, Level = LogLevel.Debug, Message = "Rebalancing cycle: 0 moves, balanced; loads {Loads}")]
    public static partial void RebalanceBalanced(ILogger logger, string loads);
}
