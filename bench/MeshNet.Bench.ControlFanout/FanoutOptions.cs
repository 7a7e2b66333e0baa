using System.Globalization;

namespace MeshNet.Bench.ControlFanout;

/// <summary>Command-line options of the control fan-out benchmark.</summary>
internal sealed record FanoutOptions
{
    public const string Usage = """
        usage: dotnet run -c Release --project bench/MeshNet.Bench.ControlFanout -- [options]

        For each N, a coordination server starts in a child process; N simulated nodes (map-stream
        clients, no data plane) register and keep their map streams open over a few HTTP/2
        connections. Nodes are tagged tag:client, except a few tag:server nodes; the policy lets
        clients reach the servers. Then:
          reference  a server reports new endpoints: time until every client applied the patch
                     (the bus's fan-out without a policy change), repeated --saves times
          policy     a policy save that gives every client a new filter chunk (servers may reach
                     clients on port 9100), then one that removes it, alternating --saves times:
                     time from the save to the last client applying its delta (target: p99 < 1 s
                     at 1,000 nodes), bytes per delta
        and the server's managed memory and working set per connected node.

        options:
          --nodes LIST        node counts, comma-separated (default 100,1000,10000)
          --servers N         tag:server nodes among them (default 10)
          --saves N           policy saves (and reference rounds) per node count (default 21)
          --connections N     HTTP/2 connections the simulated nodes share (default 8)
          --help              this text
        """;

    public IReadOnlyList<int> NodeCounts { get; init; } = [100, 1_000, 10_000];

    public int Servers { get; init; } = 10;

    public int Saves { get; init; } = 21;

    public int Connections { get; init; } = 8;

    public bool Help { get; init; }

    /// <summary>Parses the command line; throws <see cref="ArgumentException"/> with a message for bad input.</summary>
    public static FanoutOptions Parse(IReadOnlyList<string> args)
    {
        var options = new FanoutOptions();
        for (int i = 0; i < args.Count; i++)
        {
            string Value() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
            options = args[i] switch
            {
                "--nodes" => options with { NodeCounts = [.. Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(n => Positive(n, "--nodes"))] },
                "--servers" => options with { Servers = Positive(Value(), "--servers") },
                "--saves" => options with { Saves = Positive(Value(), "--saves") },
                "--connections" => options with { Connections = Positive(Value(), "--connections") },
                "--help" or "-h" or "help" => options with { Help = true },
                _ => throw new ArgumentException($"Unknown option '{args[i]}'."),
            };
        }
        if (options.NodeCounts.Count == 0)
        {
            throw new ArgumentException("--nodes needs at least one count.");
        }
        if (options.NodeCounts.Any(n => n <= options.Servers))
        {
            throw new ArgumentException($"Every node count must exceed --servers ({options.Servers}).");
        }
        return options;
    }

    private static int Positive(string text, string option) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int value) && value > 0
            ? value
            : throw new ArgumentException($"{option}: '{text}' is not a positive whole number.");
}
