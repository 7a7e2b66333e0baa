namespace MeshNet.TestSupport.Impairment;

/// <summary>A snapshot of <see cref="ImpairmentCounters"/>.</summary>
public sealed record ImpairmentStats(
    long Received,
    long Forwarded,
    long Dropped,
    long DroppedLarge,
    long LossBursts,
    long Duplicated,
    long Reordered,
    long Delayed,
    long NoPeer,
    long SendErrors)
{
    /// <summary>The mean length of a run of consecutive drops; 0 when nothing was dropped.</summary>
    public double MeanLossBurst => LossBursts == 0 ? 0 : (double)Dropped / LossBursts;

    /// <summary>The difference <c>this - earlier</c>, counter by counter.</summary>
    public ImpairmentStats Minus(ImpairmentStats earlier) => new(
        Received - earlier.Received,
        Forwarded - earlier.Forwarded,
        Dropped - earlier.Dropped,
        DroppedLarge - earlier.DroppedLarge,
        LossBursts - earlier.LossBursts,
        Duplicated - earlier.Duplicated,
        Reordered - earlier.Reordered,
        Delayed - earlier.Delayed,
        NoPeer - earlier.NoPeer,
        SendErrors - earlier.SendErrors);

    /// <inheritdoc />
    public override string ToString() =>
        $"received={Received} forwarded={Forwarded} dropped={Dropped} (large {DroppedLarge}, bursts {LossBursts}) " +
        $"duplicated={Duplicated} reordered={Reordered} delayed={Delayed} noPeer={NoPeer} sendErrors={SendErrors}";
}
