using System.Globalization;

namespace MeshNet.Bench.EndToEnd;

/// <summary>Command-line options of the end-to-end benchmark.</summary>
internal sealed record BenchOptions
{
    public const string Usage = """
        usage: dotnet run -c Release --project bench/MeshNet.Bench.EndToEnd -- [scenarios] [options]

        scenarios (default: all, in this order):
          reference   iperf3 (Linux TCP) between two network namespaces over wireguard-go (needs root)
          memory      MeshNet stack <-> MeshNet stack over an in-memory link with its own 64 KiB MTU,
                      as Linux loopback has: the stack's ceiling (target >= 5 Gbit/s)
          memory-tunnel  the same at the tunnel MTU (--mtu): per-packet costs, for information
          wireguard   stack + MeshNet WireGuard device <-> the same, UDP over 127.0.0.1 (target >= 1 Gbit/s)

        options:
          --duration SECONDS   length of each run (default 10); iperf3 uses only this
          --bytes SIZE         cap on the bytes of each stack run, e.g. 512M, 1G (default 4G)
          --mtu BYTES          the tunnel MTU of the WireGuard and memory-tunnel runs (default 1420)
          --memory-mtu BYTES   the in-memory link's MTU in the memory run (default 65535)
          --tuned-reference    give the reference's wireguard-go 7 MiB socket buffers and a long TUN
                               queue, as current wireguard-go has (default: as shipped, 0.0.20220316)
          --help               this text
        """;

    public IReadOnlyList<string> Scenarios { get; init; } = ["reference", "memory", "memory-tunnel", "wireguard"];

    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(10);

    public long Bytes { get; init; } = 4L << 30;

    public int Mtu { get; init; } = 1420;

    public int MemoryMtu { get; init; } = 65535;

    public bool TunedReference { get; init; }

    public bool Help { get; init; }

    /// <summary>Parses the command line; throws <see cref="ArgumentException"/> with a message for bad input.</summary>
    public static BenchOptions Parse(IReadOnlyList<string> args)
    {
        var options = new BenchOptions();
        var scenarios = new List<string>();
        for (int i = 0; i < args.Count; i++)
        {
            string Value() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
            switch (args[i])
            {
                case "--help" or "-h":
                    options = options with { Help = true };
                    break;
                case "--duration":
                    options = options with { Duration = TimeSpan.FromSeconds(double.Parse(Value(), CultureInfo.InvariantCulture)) };
                    break;
                case "--bytes":
                    options = options with { Bytes = ParseSize(Value()) };
                    break;
                case "--mtu":
                    options = options with { Mtu = int.Parse(Value(), CultureInfo.InvariantCulture) };
                    break;
                case "--memory-mtu":
                    options = options with { MemoryMtu = int.Parse(Value(), CultureInfo.InvariantCulture) };
                    break;
                case "--tuned-reference":
                    options = options with { TunedReference = true };
                    break;
                case "all":
                    scenarios.AddRange(["reference", "memory", "memory-tunnel", "wireguard"]);
                    break;
                case "reference" or "memory" or "memory-tunnel" or "wireguard":
                    scenarios.Add(args[i]);
                    break;
                default:
                    throw new ArgumentException($"Unknown argument `{args[i]}`.");
            }
        }
        if (options.Duration <= TimeSpan.Zero || options.Bytes <= 0)
        {
            throw new ArgumentException("--duration and --bytes must be positive.");
        }
        return scenarios.Count == 0 ? options : options with { Scenarios = scenarios.Distinct().ToList() };
    }

    private static long ParseSize(string text)
    {
        long multiplier = char.ToUpperInvariant(text[^1]) switch { 'K' => 1L << 10, 'M' => 1L << 20, 'G' => 1L << 30, _ => 1 };
        var number = multiplier == 1 ? text : text[..^1];
        return (long)(double.Parse(number, CultureInfo.InvariantCulture) * multiplier);
    }
}
