using System.Globalization;

namespace MeshNet.Bench.Failover;

/// <summary>Command-line options of the failover benchmark.</summary>
internal sealed record FailoverOptions
{
    public const string Usage = """
        usage: dotnet run -c Release --project bench/MeshNet.Bench.Failover -- [options]

        A throwaway PostgreSQL cluster and --servers coordination servers (child processes, default
        lease settings unless --ttl is given); --nodes nodes (the real control client, no data
        plane) in --tailnets tailnets spread over the servers. Then:
          reference  a policy save: time until the last node of the tailnet applied it (an
                     ordinary change reaching every node), --moves times
          moves      --moves planned migrations (MoveTailnet) of a tailnet: each node's control
                     gap (its stream's end to the first message on the target); target p99 < 250 ms
          renewals   lease renewals and heartbeats per second on PostgreSQL, over 20 s of quiet
          kills      --kills times kill -9 of the server serving the most tailnets: time from the
                     kill to the last of its nodes resumed on a standby; target <= TTL + 2 s
        and the blast radius of each fault, from the incident records (Admin ListIncidents).
        Needs PostgreSQL (initdb, pg_ctl): apt-get install postgresql.

        options:
          --nodes N       nodes (default 1000)
          --tailnets N    tailnets (default 10)
          --servers N     coordination servers (default 3)
          --moves N       planned migrations (default 6)
          --kills N       servers killed, one at a time (default 5)
          --ttl SECONDS   lease TTL (default: the service's default, 5 s)
          --help          this text
        """;

    public int Nodes { get; init; } = 1_000;

    public int Tailnets { get; init; } = 10;

    public int Servers { get; init; } = 3;

    public int Moves { get; init; } = 6;

    public int Kills { get; init; } = 5;

    /// <summary>The lease TTL; null: the service's default.</summary>
    public TimeSpan? Ttl { get; init; }

    public bool Help { get; init; }

    /// <summary>Parses the command line; throws <see cref="ArgumentException"/> with a message for bad input.</summary>
    public static FailoverOptions Parse(IReadOnlyList<string> args)
    {
        var options = new FailoverOptions();
        for (int i = 0; i < args.Count; i++)
        {
            string Value() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
            options = args[i] switch
            {
                "--nodes" => options with { Nodes = Positive(Value(), "--nodes") },
                "--tailnets" => options with { Tailnets = Positive(Value(), "--tailnets") },
                "--servers" => options with { Servers = Positive(Value(), "--servers") },
                "--moves" => options with { Moves = Positive(Value(), "--moves") },
                "--kills" => options with { Kills = Positive(Value(), "--kills") },
                "--ttl" => options with { Ttl = TimeSpan.FromSeconds(Positive(Value(), "--ttl")) },
                "--help" or "-h" or "help" => options with { Help = true },
                _ => throw new ArgumentException($"Unknown option '{args[i]}'."),
            };
        }
        if (options.Servers < 2)
        {
            throw new ArgumentException("--servers must be at least 2 (a standby takes over).");
        }
        if (options.Tailnets > options.Nodes)
        {
            throw new ArgumentException("--tailnets must not exceed --nodes.");
        }
        return options;
    }

    private static int Positive(string text, string name) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int value) && value > 0
            ? value
            : throw new ArgumentException($"{name} takes a positive whole number, not '{text}'.");
}
