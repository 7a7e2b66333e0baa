using System.Globalization;

namespace Coordinator;

/// <summary>A small parser for "--name value", "--flag" and positional arguments.</summary>
internal sealed class CommandLine
{
    private static readonly HashSet<string> Flags = ["reusable", "ephemeral", "undrain"];

    private readonly List<string> _positional = [];
    private readonly List<(string Name, string? Value)> _options = [];

    public static CommandLine Parse(IReadOnlyList<string> args)
    {
        var parsed = new CommandLine();
        for (int i = 0; i < args.Count; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal))
            {
                parsed._positional.Add(args[i]);
                continue;
            }
            var name = args[i][2..];
            if (Flags.Contains(name))
            {
                parsed._options.Add((name, null));
            }
            else if (i + 1 < args.Count)
            {
                parsed._options.Add((name, args[++i]));
            }
            else
            {
                throw new InvalidOperationException($"--{name} needs a value.");
            }
        }
        return parsed;
    }

    public string Positional(string what) =>
        _positional.Count == 1 ? _positional[0] : throw new InvalidOperationException($"expected one argument, {what}.");

    public bool Flag(string name) => _options.Any(option => option.Name == name);

    public string? Value(string name) => _options.LastOrDefault(option => option.Name == name).Value;

    public IEnumerable<string> Values(string name) => _options.Where(option => option.Name == name && option.Value is not null).Select(option => option.Value!);

    public string Required(string name) => Value(name) ?? throw new InvalidOperationException($"--{name} is required.");

    /// <summary>"90s", "30m", "24h", "7d", or a TimeSpan ("1.12:00:00").</summary>
    public static TimeSpan ParseDuration(string text)
    {
        if (text.Length > 1 && double.TryParse(text[..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out var number))
        {
            switch (text[^1])
            {
                case 's': return TimeSpan.FromSeconds(number);
                case 'm': return TimeSpan.FromMinutes(number);
                case 'h': return TimeSpan.FromHours(number);
                case 'd': return TimeSpan.FromDays(number);
            }
        }
        return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var span)
            ? span
            : throw new InvalidOperationException($"'{text}' is not a duration (use 90s, 30m, 24h, 7d).");
    }
}
