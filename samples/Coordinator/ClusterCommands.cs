using System.Globalization;
using Grpc.Core;
using MeshNet.Control.V1;
using AdminApi = MeshNet.Control.V1.Admin;

namespace Coordinator;

/// <summary>The admin subcommands of a deployment of several servers: servers, leases, moves, drains, incidents.</summary>
internal static class ClusterCommands
{
    private static readonly string[] Commands =
        ["list-servers", "list-leases", "move-tailnet", "drain-server", "incidents", "release-quarantine", "rebalancer"];

    public static bool IsCommand(string name) => Commands.Contains(name);

    public static async Task<int> RunAsync(string command, CommandLine options, AdminApi.AdminClient admin, Metadata headers)
    {
        switch (command)
        {
            case "list-servers":
                var servers = await admin.ListServersAsync(new ListServersRequest(), headers);
                Console.WriteLine($"{"id",-10} {"url",-28} {"live",-5} {"draining",-9} {"tailnets",-9} load");
                foreach (var server in servers.Servers)
                {
                    Console.WriteLine($"{server.Id,-10} {server.Url,-28} {(server.Live ? "yes" : "no"),-5} {(server.Draining ? "yes" : "no"),-9} {server.Tailnets,-9} {server.Load}");
                }
                return 0;
            case "list-leases":
                var leases = await admin.ListLeasesAsync(new ListLeasesRequest(), headers);
                Console.WriteLine($"{"tailnet",-16} {"owner",-10} {"epoch",-6} {"expires in",-11} {"revision",-9} state");
                foreach (var lease in leases.Leases)
                {
                    string state = lease.Quarantined ? $"quarantined: {lease.QuarantineReason}" : lease.ExpiresIn.ToTimeSpan() > TimeSpan.Zero ? "served" : "expired";
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{lease.Tailnet,-16} {(lease.Owner.Length == 0 ? "-" : lease.Owner),-10} {lease.Epoch,-6} {lease.ExpiresIn.ToTimeSpan().TotalSeconds,-11:0.0} {lease.Revision,-9} {state}"));
                }
                return 0;
            case "move-tailnet":
                var moved = await admin.MoveTailnetAsync(new MoveTailnetRequest { Tailnet = options.Positional("TAILNET"), TargetServer = options.Value("to") ?? "" },
                    headers);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"Moved from {moved.FromServer} to {moved.ToServer} (epoch {moved.Epoch}): frozen {moved.Frozen.ToTimeSpan().TotalMilliseconds:0} ms, {moved.StreamsRedirected} streams redirected"));
                return 0;
            case "drain-server":
                var drained = await admin.DrainServerAsync(new DrainServerRequest { Server = options.Positional("SERVER"), Undrain = options.Flag("undrain") },
                    headers);
                foreach (var move in drained.Moved)
                {
                    Console.WriteLine($"Moved tailnet {move.Tailnet} from {move.FromServer} to {move.ToServer} (epoch {move.Epoch}, {move.StreamsRedirected} streams)");
                }
                foreach (var failure in drained.Failed)
                {
                    Console.Error.WriteLine($"Not moved: {failure}");
                }
                Console.WriteLine(options.Flag("undrain") ? "Server takes tailnets again" : $"Drained: {drained.Moved.Count} tailnets moved, {drained.Failed.Count} failed");
                return drained.Failed.Count == 0 ? 0 : 1;
            case "incidents":
                var limit = uint.Parse(options.Value("limit") ?? "20", CultureInfo.InvariantCulture);
                var incidents = await admin.ListIncidentsAsync(new ListIncidentsRequest { Limit = limit }, headers);
                foreach (var incident in incidents.Incidents)
                {
                    Print(incident);
                }
                if (incidents.Incidents.Count == 0)
                {
                    Console.WriteLine("No incidents.");
                }
                return 0;
            case "release-quarantine":
                await admin.ReleaseQuarantineAsync(new ReleaseQuarantineRequest { Tailnet = options.Positional("TAILNET") }, headers);
                Console.WriteLine("Released: the tailnet is served again");
                return 0;
            case "rebalancer":
                var verb = options.Positional("pause|resume");
                if (verb is not ("pause" or "resume"))
                {
                    throw new InvalidOperationException("rebalancer takes pause or resume.");
                }
                await admin.SetRebalancerAsync(new SetRebalancerRequest { Paused = verb == "pause" }, headers);
                Console.WriteLine(verb == "pause" ? "Rebalancer paused" : "Rebalancer resumed");
                return 0;
            default:
                throw new InvalidOperationException($"unknown command {command}");
        }
    }

    /// <summary>An incident: cause, blast radius, times, node-seconds of control gap, severity, then a line per tailnet.</summary>
    private static void Print(Incident incident)
    {
        string mitigate = incident.TimeToMitigate is { } value ? $"{value.ToTimeSpan().TotalSeconds:0.000} s" : "not yet";
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{incident.Started.ToDateTimeOffset():u} {incident.Cause} of {incident.Subject} [{incident.Severity}]: tailnets {incident.TailnetsAffected}/{incident.TailnetsTotal}, " +
            $"nodes {incident.NodesAffected}/{incident.NodesTotal}, detected in {incident.MaxTimeToDetect.ToTimeSpan().TotalSeconds:0.000} s, mitigated in {mitigate}, " +
            $"{incident.GapNodeSeconds:0.0} node-seconds of control gap"));
        foreach (var part in incident.Tailnets)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"    {part.Tailnet} -> {part.Server} (epoch {part.Epoch}): {part.NodesResumed}/{part.NodesAffected} nodes back, gap median {part.MedianGap.ToTimeSpan().TotalMilliseconds:0} ms, " +
                $"max {part.MaxGap.ToTimeSpan().TotalMilliseconds:0} ms, {part.RefusedWrites} writes refused, {part.Severity}{(part.Closed ? "" : " (measuring)")}"));
        }
    }
}
