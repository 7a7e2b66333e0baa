namespace MeshNet.Interop.Tests;

/// <summary>
/// Tests that measure timing-sensitive behaviour (the relay's delays and jitter, spurious
/// retransmissions under reordering, handshakes under an initiation flood) run alone, after the
/// parallel ones, so that other tests competing for the two cores do not disturb what they
/// measure.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MeasurementCollection
{
    public const string Name = "Measurements";
}
