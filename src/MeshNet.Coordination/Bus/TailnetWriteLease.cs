namespace MeshNet.Coordination.Bus;

/// <summary>
/// The held write gate of an open tailnet bus (<see cref="TailnetHub.LockAsync"/>): while it is
/// held, the holder's store writes and publishes are the tailnet's only ones. Dispose releases it.
/// </summary>
internal readonly struct TailnetWriteLease : IDisposable
{
    public TailnetWriteLease(TailnetBus bus) => Bus = bus;

    public TailnetBus Bus { get; }

    public void Dispose() => Bus.WriteGate.Release();
}
