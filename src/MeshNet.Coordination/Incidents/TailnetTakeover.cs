namespace MeshNet.Coordination.Incidents;

/// <summary>A tailnet this server has just taken on from another owner: what the incident record needs.</summary>
/// <param name="Tailnet">The tailnet.</param>
/// <param name="Epoch">The epoch it is served under now.</param>
/// <param name="Cause">One of <see cref="IncidentCauses"/>.</param>
/// <param name="IncidentId">The incident it belongs to (shared by every server handling a part of it).</param>
/// <param name="Subject">The server (or tailnet) the incident is about.</param>
/// <param name="GapStarted">When the nodes lost their control (monotonic timestamp of this server).</param>
/// <param name="StartedAt">The same moment by the wall clock (the incident's start).</param>
/// <param name="TimeToDetect">From the fault to this server taking the tailnet on.</param>
internal sealed record TailnetTakeover(string Tailnet, ulong Epoch, string Cause, string IncidentId, string Subject, long GapStarted,
    DateTimeOffset StartedAt, TimeSpan TimeToDetect);
