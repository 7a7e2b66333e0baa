using System.Net;

namespace MeshNet.Userspace.WireGuard;

// STUB: to be implemented (helper "tables").
internal sealed class AllowedIps<T>
    where T : class
{
    public void Insert(IPNetwork prefix, T value) => throw new NotImplementedException();

    public bool Remove(IPNetwork prefix, T value) => throw new NotImplementedException();

    public int RemoveByValue(T value) => throw new NotImplementedException();

    public T? Lookup(ReadOnlySpan<byte> address) => throw new NotImplementedException();

    public IReadOnlyList<IPNetwork> PrefixesOf(T value) => throw new NotImplementedException();
}
