using MeshNet;

namespace MeshNet.NodeHost;

/// <summary>
/// A minimal file-backed <see cref="IMeshNetmapStore"/> for this host: the bytes of
/// <see cref="MeshCachedNetmap.Serialize"/>, written to a temporary file and renamed over the
/// old one (atomic on one file system). Stands in for the library's <c>FileNetmapStore</c>
/// until that is available here. A file that cannot be read as this node's netmap is ignored.
/// </summary>
internal sealed class HostFileNetmapStore(string path) : IMeshNetmapStore
{
    public async ValueTask<MeshCachedNetmap?> LoadAsync(MeshNodeIdentity identity, CancellationToken cancellationToken = default)
    {
        byte[] bytes;
        try
        {
            bytes = await File.ReadAllBytesAsync(path, cancellationToken);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
        try
        {
            return MeshCachedNetmap.Deserialize(bytes, identity);
        }
        catch (InvalidDataException e)
        {
            Console.Error.WriteLine($"netmap cache {path} unusable: {e.Message}");
            return null;
        }
    }

    public async ValueTask SaveAsync(MeshNodeIdentity identity, MeshCachedNetmap netmap, CancellationToken cancellationToken = default)
    {
        var temporary = path + ".tmp";
        try
        {
            await using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 4096, FileOptions.WriteThrough))
            {
                await file.WriteAsync(netmap.Serialize(identity), cancellationToken);
            }
            File.Move(temporary, path, overwrite: true);
        }
        catch (IOException e)
        {
            throw new MeshException(MeshErrorCode.StateStoreFailed, $"The netmap cache {path} could not be written: {e.Message}", e);
        }
    }

    public ValueTask DeleteAsync(CancellationToken cancellationToken = default)
    {
        File.Delete(path);
        return ValueTask.CompletedTask;
    }
}
