namespace MeshNet.Userspace.WireGuard;

// STUB: to be implemented (helper "tables").
internal sealed class ReplayFilter
{
    public const int WindowSize = 8128;

    public void Reset() => throw new NotImplementedException();

    public bool ValidateCounter(ulong counter, ulong limit) => throw new NotImplementedException();
}
