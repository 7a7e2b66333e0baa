using System.Net;
using Microsoft.Extensions.Logging;

namespace MeshNet.Diagnostics;

/// <summary>
/// The node's log messages. Event ids 4000-4199 belong to <c>MeshNet</c> and are stable:
/// 4000-4049 the node's lifecycle, 4050-4099 the control client, 4100-4149 the data plane
/// (peers, connections), 4150-4199 state stores. Keys appear only as short public-key
/// prefixes; private keys and auth keys never appear.
/// </summary>
internal static partial class MeshLog
{
    // ------------------------------------------------------------------ node (4000-4049)

    [LoggerMessage(EventId = 4000, Level = LogLevel.Information, Message = "Node starting: control {ControlUrl}, host name {Hostname}")]
    public static partial void NodeStarting(ILogger logger, Uri controlUrl, string hostname);

    [LoggerMessage(EventId = 4001, Level = LogLevel.Information, Message = "Node {Name} started: addresses {Addresses}, WireGuard port {Port}, {Peers} peers, in {ElapsedMs} ms")]
    public static partial void NodeStarted(ILogger logger, string name, string addresses, ushort port, int peers, long elapsedMs);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Warning, Message = "Node failed to start ({Code}): {Reason}")]
    public static partial void StartFailed(ILogger logger, MeshErrorCode code, string reason);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Information, Message = "Node {Name} stopped")]
    public static partial void NodeStopped(ILogger logger, string name);

    [LoggerMessage(EventId = 4004, Level = LogLevel.Information, Message = "New node identity {PublicKey}")]
    public static partial void IdentityCreated(ILogger logger, string publicKey);

    [LoggerMessage(EventId = 4005, Level = LogLevel.Information, Message = "Loaded node identity {PublicKey} (node {NodeId})")]
    public static partial void IdentityLoaded(ILogger logger, string publicKey, string nodeId);

    [LoggerMessage(EventId = 4006, Level = LogLevel.Warning, Message = "The saved registration belongs to {SavedUrl}, not {ControlUrl}: registering anew")]
    public static partial void ControlUrlChanged(ILogger logger, Uri? savedUrl, Uri controlUrl);

    [LoggerMessage(EventId = 4007, Level = LogLevel.Warning, Message = "The service changed this node's addresses to {Addresses}; the node keeps {Current} until it is restarted")]
    public static partial void SelfAddressesChanged(ILogger logger, string addresses, string current);

    [LoggerMessage(EventId = 4008, Level = LogLevel.Information, Message = "Node key rotated from {OldKey} to {NewKey}")]
    public static partial void KeyRotated(ILogger logger, string oldKey, string newKey);

    [LoggerMessage(EventId = 4011, Level = LogLevel.Information, Message = "The node key expired: re-authenticating with the configured auth key")]
    public static partial void Reauthenticating(ILogger logger);

    [LoggerMessage(EventId = 4012, Level = LogLevel.Error, Message = "The node key expired and no auth key is configured: the node cannot reconnect until it is restarted with one (MeshNodeOptions.AuthKey)")]
    public static partial void KeyExpiredWithoutAuthKey(ILogger logger);

    [LoggerMessage(EventId = 4010, Level = LogLevel.Error, Message = "The rotated node key could not be saved ({Reason}); the node keeps running, but a restart will not find the new key")]
    public static partial void IdentitySaveFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 4013, Level = LogLevel.Information, Message = "Netmap cache not used: {Reason}; starting from the coordination service")]
    public static partial void NetmapCacheNotUsed(ILogger logger, string reason);

    [LoggerMessage(EventId = 4014, Level = LogLevel.Warning, Message = "Netmap cache not used: {Reason}; starting from the coordination service")]
    public static partial void NetmapCacheRefused(ILogger logger, string reason);

    [LoggerMessage(EventId = 4015, Level = LogLevel.Information, Message = "Node {Name} started from its cached netmap (received {ReceivedAt:O}, {Peers} peers) in {ElapsedMs} ms; connecting to the coordination service in the background")]
    public static partial void StartedFromCache(ILogger logger, string name, DateTimeOffset receivedAt, int peers, long elapsedMs);

    [LoggerMessage(EventId = 4016, Level = LogLevel.Warning, Message = "Running on the cached netmap: the coordination service refused or failed the node ({Code}, transient: {Transient}); retrying: {Reason}")]
    public static partial void CachedStartControlFailed(ILogger logger, MeshErrorCode code, string reason, bool transient);

    [LoggerMessage(EventId = 4017, Level = LogLevel.Information, Message = "The first live netmap replaced the cached one ({Peers} peers)")]
    public static partial void LiveNetmapReplacedCache(ILogger logger, int peers);

    [LoggerMessage(EventId = 4018, Level = LogLevel.Information, Message = "WireGuard port {Port} of the previous run is taken: bound {Bound} instead")]
    public static partial void PreviousPortTaken(ILogger logger, int port, int bound);

    [LoggerMessage(EventId = 4019, Level = LogLevel.Warning, Message = "The node's identity could not be saved ({Reason}); the node keeps running")]
    public static partial void IdentityUpdateNotSaved(ILogger logger, string reason);

    [LoggerMessage(EventId = 4009, Level = LogLevel.Warning, Message = "Error while stopping the node ({Step})")]
    public static partial void DisposeStepFailed(ILogger logger, Exception exception, string step);

    // ------------------------------------------------------------------ control (4050-4099)

    [LoggerMessage(EventId = 4050, Level = LogLevel.Debug, Message = "Coordination service {ControlUrl}: version {Version}, protocol {Protocol}")]
    public static partial void ServerInfo(ILogger logger, Uri controlUrl, string version, uint protocol);

    [LoggerMessage(EventId = 4051, Level = LogLevel.Information, Message = "Registered as {Name} (node {NodeId}) in tailnet {Tailnet}: {Addresses}")]
    public static partial void Registered(ILogger logger, string name, ulong nodeId, string tailnet, string addresses);

    [LoggerMessage(EventId = 4052, Level = LogLevel.Warning, Message = "Control call failed during start ({Code}): {Reason}; retrying in {Delay}")]
    public static partial void StartRetry(ILogger logger, MeshErrorCode code, string reason, TimeSpan delay);

    [LoggerMessage(EventId = 4053, Level = LogLevel.Debug, Message = "Opening the netmap stream to {ControlUrl} (resume: {Resume}, last sequence {LastSequence})")]
    public static partial void MapStreamOpening(ILogger logger, Uri controlUrl, bool resume, ulong lastSequence);

    [LoggerMessage(EventId = 4054, Level = LogLevel.Information, Message = "Netmap stream from {ControlUrl} ended by the service")]
    public static partial void MapStreamEnded(ILogger logger, Uri controlUrl);

    [LoggerMessage(EventId = 4055, Level = LogLevel.Warning, Message = "Nothing heard from {ControlUrl} for {Timeout}: reconnecting")]
    public static partial void MapStreamSilent(ILogger logger, Uri controlUrl, TimeSpan timeout);

    [LoggerMessage(EventId = 4056, Level = LogLevel.Warning, Message = "Netmap stream failed ({Code}, transient: {Transient}): {Reason}")]
    public static partial void MapStreamFailed(ILogger logger, MeshErrorCode code, string reason, bool transient);

    [LoggerMessage(EventId = 4057, Level = LogLevel.Debug, Message = "Reconnecting to the coordination service in {Delay}")]
    public static partial void MapStreamReconnecting(ILogger logger, TimeSpan delay);

    [LoggerMessage(EventId = 4058, Level = LogLevel.Information, Message = "The service started a new netmap session (the previous one could not be resumed)")]
    public static partial void MapSessionReplaced(ILogger logger);

    [LoggerMessage(EventId = 4059, Level = LogLevel.Debug, Message = "Ignored map message {Sequence}: not after {LastSequence}")]
    public static partial void MapMessageIgnored(ILogger logger, ulong sequence, ulong lastSequence);

    [LoggerMessage(EventId = 4060, Level = LogLevel.Debug, Message = "Full netmap {Sequence} applied: {Peers} peers")]
    public static partial void FullMapApplied(ILogger logger, ulong sequence, int peers);

    [LoggerMessage(EventId = 4061, Level = LogLevel.Debug, Message = "{Count} patches of map message {Sequence} name unknown peers; ignored")]
    public static partial void PatchesIgnored(ILogger logger, int count, ulong sequence);

    [LoggerMessage(EventId = 4062, Level = LogLevel.Information, Message = "Local endpoints changed: {Endpoints}")]
    public static partial void EndpointsChanged(ILogger logger, string endpoints);

    [LoggerMessage(EventId = 4063, Level = LogLevel.Debug, Message = "Reported {Count} endpoints to the service")]
    public static partial void EndpointsReported(ILogger logger, int count);

    [LoggerMessage(EventId = 4064, Level = LogLevel.Warning, Message = "Reporting endpoints failed ({Code}): {Reason}; retrying")]
    public static partial void EndpointReportFailed(ILogger logger, MeshErrorCode code, string reason);

    [LoggerMessage(EventId = 4065, Level = LogLevel.Warning, Message = "Reading the local endpoints failed; keeping the previous ones")]
    public static partial void EndpointDiscoveryFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 4066, Level = LogLevel.Information, Message = "The service rejected the proof of key: fetching its key again")]
    public static partial void RefetchingServerKey(ILogger logger);

    [LoggerMessage(EventId = 4067, Level = LogLevel.Information, Message = "The coordination server {ControlUrl} does not serve this tailnet: following the redirect to {Owner}")]
    public static partial void MapStreamRedirected(ILogger logger, Uri controlUrl, Uri owner);

    [LoggerMessage(EventId = 4068, Level = LogLevel.Warning, Message = "Refused a map message of epoch {Received} from {ControlUrl}: epoch {Seen} was seen before (a server that lost the tailnet); reconnecting elsewhere")]
    public static partial void StaleEpochRefused(ILogger logger, Uri controlUrl, ulong received, ulong seen);

    // ------------------------------------------------------------------ data plane (4100-4149)

    [LoggerMessage(EventId = 4105, Level = LogLevel.Debug, Message = "Peer {NodeId} ({PublicKey}) advertises a new endpoint: its WireGuard session is restarted")]
    public static partial void PeerSessionReset(ILogger logger, ulong nodeId, string publicKey);

    [LoggerMessage(EventId = 4106, Level = LogLevel.Debug, Message = "Peer {NodeId} ({PublicKey}) restarted (a new run id): starting a WireGuard handshake with it")]
    public static partial void PeerRestarted(ILogger logger, ulong nodeId, string publicKey);

    [LoggerMessage(EventId = 4100, Level = LogLevel.Debug, Message = "Peer {NodeId} ({PublicKey}) configured, endpoint {Endpoint}")]
    public static partial void PeerConfigured(ILogger logger, ulong nodeId, string publicKey, IPEndPoint? endpoint);

    [LoggerMessage(EventId = 4101, Level = LogLevel.Debug, Message = "Peer {PublicKey} removed")]
    public static partial void PeerRemoved(ILogger logger, string publicKey);

    [LoggerMessage(EventId = 4102, Level = LogLevel.Warning, Message = "Peer {NodeId} could not be configured: {Reason}")]
    public static partial void PeerRejected(ILogger logger, ulong nodeId, string reason);

    [LoggerMessage(EventId = 4103, Level = LogLevel.Information, Message = "Netmap {Sequence}: {Set} peers added or changed, {Removed} removed, {Total} configured")]
    public static partial void PeersApplied(ILogger logger, ulong sequence, int set, int removed, int total);

    [LoggerMessage(EventId = 4104, Level = LogLevel.Warning, Message = "Connection from {Remote} refused: the address belongs to no node of the netmap")]
    public static partial void ConnectionFromUnknownPeer(ILogger logger, IPEndPoint remote);

    // ------------------------------------------------------------------ packet filter (4130-4139)

    [LoggerMessage(EventId = 4130, Level = LogLevel.Information, Message = "Packet filter: policy {Enforcement}, version {PolicyVersion}, {Rules} rules")]
    public static partial void FilterUpdated(ILogger logger, string enforcement, ulong policyVersion, int rules);

    [LoggerMessage(EventId = 4131, Level = LogLevel.Warning, Message = "Packet filter: {Invalid} prefixes, port ranges or protocols of policy version {PolicyVersion} cannot be used and were skipped")]
    public static partial void FilterInvalidEntries(ILogger logger, int invalid, ulong policyVersion);

    [LoggerMessage(EventId = 4132, Level = LogLevel.Debug, Message = "Packet denied by policy ({Reason}): {Flow}; {Suppressed} more denials not logged since the last message")]
    public static partial void PacketDenied(ILogger logger, MeshPolicyDenialReason reason, string flow, long suppressed);

    // ------------------------------------------------------------------ state stores (4150-4199)

    [LoggerMessage(EventId = 4160, Level = LogLevel.Debug, Message = "Netmap cache saved (sequence {Sequence}, {Peers} peers)")]
    public static partial void NetmapCacheSaved(ILogger logger, ulong sequence, int peers);

    [LoggerMessage(EventId = 4161, Level = LogLevel.Warning, Message = "The netmap cache could not be written ({Reason}); retrying at the next change ({Suppressed} more failures not logged since the last message)")]
    public static partial void NetmapCacheSaveFailed(ILogger logger, string reason, long suppressed);

    [LoggerMessage(EventId = 4162, Level = LogLevel.Information, Message = "The netmap cache was deleted ({Reason})")]
    public static partial void NetmapCacheDeleted(ILogger logger, string reason);

    [LoggerMessage(EventId = 4163, Level = LogLevel.Warning, Message = "The netmap cache could not be deleted ({Reason})")]
    public static partial void NetmapCacheDeleteFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 4150, Level = LogLevel.Debug, Message = "Node state saved to {Path}")]
    public static partial void StateSaved(ILogger logger, string path);

    [LoggerMessage(EventId = 4151, Level = LogLevel.Warning, Message = "Node state file {Path} is corrupt ({Problem}); moved aside to {Aside}, starting with a new identity")]
    public static partial void StateFileCorrupt(ILogger logger, string path, string problem, string aside);

    [LoggerMessage(EventId = 4152, Level = LogLevel.Warning, Message = "Node state file {Path} is accessible to other users (mode {Mode}); it holds the node's private key")]
    public static partial void StateFilePermissive(ILogger logger, string path, string mode);
}
