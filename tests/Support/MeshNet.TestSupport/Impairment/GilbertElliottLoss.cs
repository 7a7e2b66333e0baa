namespace MeshNet.TestSupport.Impairment;

/// <summary>
/// The Gilbert-Elliott two-state loss model: a Markov chain with a Good and a Bad state,
/// stepped once per datagram; each state drops with its own probability.
/// </summary>
/// <remarks>
/// With p = <see cref="GoodToBad"/>, r = <see cref="BadToGood"/>: the chain spends a fraction
/// p / (p + r) of datagrams in Bad, a stay in Bad lasts 1 / r datagrams on average (geometric),
/// and the loss rate is (r · LossInGood + p · LossInBad) / (p + r). With LossInGood = 0 and
/// LossInBad = 1 (the "simple Gilbert" model) every stay in Bad is one burst of losses.
/// </remarks>
/// <param name="GoodToBad">p: probability of moving from Good to Bad at each datagram.</param>
/// <param name="BadToGood">r: probability of moving from Bad to Good at each datagram.</param>
/// <param name="LossInGood">1 - k: loss probability in Good.</param>
/// <param name="LossInBad">1 - h: loss probability in Bad.</param>
public sealed record GilbertElliottLoss(double GoodToBad, double BadToGood, double LossInGood = 0, double LossInBad = 1)
{
    /// <summary>
    /// The profile the TCP interop tests use: p = 0.002, r = 0.25, lossless Good, lossy Bad:
    /// about 0.79% of datagrams lost, in bursts of 4 on average (random loss at that rate gives
    /// runs of 1.008), no burst longer than 20 ms.
    /// </summary>
    public static GilbertElliottLoss Bursty { get; } = new(0.002, 0.25) { MaxBadDuration = TimeSpan.FromMilliseconds(20) };

    /// <summary>
    /// The longest a Bad spell lasts in time (null: no bound). The chain moves once per datagram,
    /// so on a quiet link (a sender backing off, one datagram a second) a run of 4 datagrams would
    /// last seconds, which no burst of real loss does: each timeout's lone retransmission or ACK
    /// would meet a Bad link with probability 1 - r, and a transfer stall for minutes. With a
    /// bound, the first datagram after it finds the link Good.
    /// </summary>
    public TimeSpan? MaxBadDuration { get; init; }

    /// <summary>The long-run fraction of datagrams dropped.</summary>
    public double LossRate => (BadToGood * LossInGood + GoodToBad * LossInBad) / (GoodToBad + BadToGood);

    /// <summary>The mean number of consecutive datagrams spent in Bad.</summary>
    public double MeanBadRun => 1 / BadToGood;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid parameter.</summary>
    public void Validate(string name)
    {
        foreach (var (value, property) in new[] { (GoodToBad, nameof(GoodToBad)), (BadToGood, nameof(BadToGood)), (LossInGood, nameof(LossInGood)), (LossInBad, nameof(LossInBad)) })
        {
            if (!(value >= 0 && value <= 1))
            {
                throw new ArgumentException($"{name}.{property} must be a probability in [0, 1], not {value}.", name);
            }
        }
        if (BadToGood == 0)
        {
            throw new ArgumentException($"{name}.{nameof(BadToGood)} must be positive (or the link stays Bad forever).", name);
        }
        if (MaxBadDuration is { } longest && longest <= TimeSpan.Zero)
        {
            throw new ArgumentException($"{name}.{nameof(MaxBadDuration)} must be positive when set.", name);
        }
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"Gilbert-Elliott p={GoodToBad} r={BadToGood} loss(G)={LossInGood} loss(B)={LossInBad} (rate {LossRate:P2}, Bad runs {MeanBadRun:0.#}" +
        (MaxBadDuration is { } longest ? $", at most {longest.TotalMilliseconds:0.##} ms)" : ")");
}
