using System.Globalization;
using System.Text.Json;

namespace MeshNet.Coordination.Sharding;

/// <summary>
/// The load a server reports with its heartbeat (stored as JSON, so the store needs no schema for
/// it): tailnets served, map streams, the change rate (committed changes per second, an EWMA)
/// weighted by the nodes each change reaches, and CPU use of the process.
/// </summary>
/// <param name="Tailnets">Tailnets served.</param>
/// <param name="Streams">Open map streams.</param>
/// <param name="WeightedChangeRate">Σ over tailnets of changes per second × nodes.</param>
/// <param name="Cpu">The process's CPU use as a fraction of one core (0.5: half a core).</param>
/// <param name="FencedWrites">Writes of this server refused by their fence so far (a stale owner's late writes).</param>
internal sealed record ServerLoad(int Tailnets, long Streams, double WeightedChangeRate, double Cpu, long FencedWrites = 0)
{
    public static readonly ServerLoad Empty = new(0, 0, 0, 0);

    public string ToJson()
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteNumber("tailnets", Tailnets);
            writer.WriteNumber("streams", Streams);
            writer.WriteNumber("weightedChangeRate", Math.Round(WeightedChangeRate, 3));
            writer.WriteNumber("cpu", Math.Round(Cpu, 3));
            writer.WriteNumber("fencedWrites", FencedWrites);
            writer.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>The load in <paramref name="json"/>; <see cref="Empty"/> when it is empty or malformed (a server that has not reported yet).</summary>
    public static ServerLoad Parse(string json)
    {
        if (string.IsNullOrWhiteSpace(json))
        {
            return Empty;
        }
        try
        {
            using var document = JsonDocument.Parse(json);
            var root = document.RootElement;
            return new ServerLoad(Int(root, "tailnets"), (long)Number(root, "streams"), Number(root, "weightedChangeRate"), Number(root, "cpu"),
                (long)Number(root, "fencedWrites"));
        }
        catch (JsonException)
        {
            return Empty;
        }
    }

    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"tailnets {Tailnets}, streams {Streams}, weighted change rate {WeightedChangeRate:0.##}/s, cpu {Cpu:P0}");

    private static double Number(JsonElement root, string name) =>
        root.ValueKind == JsonValueKind.Object && root.TryGetProperty(name, out var value) && value.TryGetDouble(out var number) ? number : 0;

    private static int Int(JsonElement root, string name) => (int)Math.Clamp(Number(root, name), 0, int.MaxValue);
}
