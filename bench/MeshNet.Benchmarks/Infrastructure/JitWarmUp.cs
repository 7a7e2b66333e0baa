using System.Diagnostics;

namespace MeshNet.Benchmarks.Infrastructure;

/// <summary>
/// Runs code paths long enough, with pauses, for the tiered JIT to replace them with optimized
/// (tier-1, PGO) code before BenchmarkDotNet measures them. Needed for benchmarks with an
/// [IterationSetup]: those run one short invocation per iteration, so BenchmarkDotNet's warm-up
/// can end before the background compiler has promoted the hot methods (observed: the decrypt
/// path measured about 15 % slow for its first ~50 iterations).
/// </summary>
internal static class JitWarmUp
{
    public static void Run(params Action[] actions)
    {
        for (int round = 0; round < 4; round++)
        {
            long start = Stopwatch.GetTimestamp();
            while (Stopwatch.GetElapsedTime(start) < TimeSpan.FromMilliseconds(150))
            {
                foreach (var action in actions)
                {
                    action();
                }
            }
            // Tier-1 promotion happens on a background thread after a quiet period.
            Thread.Sleep(150);
        }
    }
}
