namespace MeshNet.TestSupport;

/// <summary>
/// Gives the test host's thread pool room for the many nodes a test runs in process.
/// </summary>
/// <remarks>
/// <para>The test host parks two thread-pool threads for the whole run (vstest's message loop
/// polls its socket on one, xunit waits for the assembly's tests on another). The pool's minimum
/// is one thread per core, so on a two-core machine those two use up every slot the pool hands out
/// without delay: once the pool has shrunk back after a quiet spell, the next burst of work (dozens
/// of nodes following a redirect at once) waits for the pool's starvation injector, which adds one
/// thread per half second. Measured here: the test process stopped running continuations for
/// 0.8–1.0 s while its servers were idle, and a node counted that as a control gap. Applications
/// do not park pool threads like this; the tests raise the minimum instead of measuring the host.</para>
/// <para>Process-wide and idempotent: the minimum is only ever raised.</para>
/// </remarks>
public static class TestHostThreadPool
{
    /// <summary>Raises the pool's minimum worker threads to at least four per core (and at least 16).</summary>
    public static void Reserve()
    {
        int wanted = Math.Max(16, Environment.ProcessorCount * 4);
        ThreadPool.GetMinThreads(out int workers, out int completionPorts);
        if (workers < wanted)
        {
            ThreadPool.SetMinThreads(wanted, completionPorts);
        }
    }
}
