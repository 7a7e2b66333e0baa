namespace MeshNet.Coordination.Tests.Infrastructure;

/// <summary>Waits for an assertion to hold: retried on each failure until a deadline, when its last failure is rethrown.</summary>
internal static class Eventually
{
    public static async Task Async(Func<Task> assertion, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                await assertion();
                return;
            }
            catch (Exception) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(20);
            }
        }
    }
}
