using MeshNet.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace MeshNet;

/// <summary>
/// An <see cref="IMeshNetmapStore"/> in one file (for example <c>netmap.bin</c> next to the
/// <see cref="FileStateStore"/>'s <c>state.json</c>) holding exactly the bytes of
/// <see cref="MeshCachedNetmap.Serialize"/>, readable only by its owner.
/// </summary>
/// <remarks>
/// <para><b>Writing</b> is atomic: the netmap goes to a temporary file in the same directory
/// (created with mode 0600 on Unix), is flushed to disk, and then renamed over the old file, so
/// a crash at any moment leaves the old netmap or the new one, never a mix. A missing directory
/// is created (mode 0700 on Unix). Temporary files left by a process that died while writing
/// (<c>.netmap.bin.XXXXXXXXXXXX.tmp</c>) are removed by the next save or delete.</para>
/// <para><b>Reading</b> a file that <see cref="MeshCachedNetmap.Deserialize"/> refuses
/// (truncated, modified, written for another node key or by an unknown version, not a netmap
/// cache, larger than <see cref="MeshCachedNetmap.MaxSerializedSize"/>) does not fail the node
/// and does not delete the file: it is renamed aside with a timestamp suffix
/// (<c>netmap.bin.corrupt-20261127T120000Z</c>, never overwriting an earlier one), a warning
/// names the file, its new name and the reason, and <see cref="LoadAsync"/> returns null so that
/// the node starts from the coordination service. A file that cannot be read at all
/// (permissions, I/O errors) fails with <see cref="MeshErrorCode.StateStoreFailed"/>. A file
/// others can read or write is used, with a warning.</para>
/// <para>Thread-safe; one store (and one file) serves one node at a time.</para>
/// </remarks>
public sealed class FileNetmapStore : IMeshNetmapStore
{
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _gate = new(1, 1);

    /// <summary>Creates a store for the file at <paramref name="path"/> (it need not exist yet).</summary>
    /// <param name="path">The netmap cache file.</param>
    /// <param name="loggerFactory">Where warnings (an unusable file set aside, loose permissions) go; default none.</param>
    /// <param name="timeProvider">The clock for the timestamp of an unusable file's new name; default <see cref="TimeProvider.System"/>.</param>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty or names a directory.</exception>
    public FileNetmapStore(string path, ILoggerFactory? loggerFactory = null, TimeProvider? timeProvider = null)
    {
        Path = AtomicFile.FullPath(path, nameof(path));
        _logger = loggerFactory?.CreateLogger<FileNetmapStore>() ?? (ILogger)NullLogger.Instance;
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>The full path of the netmap cache file.</summary>
    public string Path { get; }

    /// <inheritdoc/>
    public async ValueTask<MeshCachedNetmap?> LoadAsync(MeshNodeIdentity identity, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(identity);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            StoredFile? stored;
            try
            {
                stored = await AtomicFile.ReadAsync(Path, MeshCachedNetmap.MaxSerializedSize, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new MeshException(MeshErrorCode.StateStoreFailed, $"The netmap cache file '{Path}' cannot be read: {e.Message}", e);
            }
            if (stored is null)
            {
                return null;
            }
            if (stored.LooseMode is { } mode)
            {
                MeshLog.NetmapCacheFilePermissive(_logger, Path, mode);
            }
            if (stored.TooLarge)
            {
                return SetAside($"the file is larger than {MeshCachedNetmap.MaxSerializedSize} bytes");
            }
            try
            {
                return MeshCachedNetmap.Deserialize(stored.Content, identity);
            }
            catch (InvalidDataException e)
            {
                return SetAside(e.Message);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <inheritdoc/>
    public async ValueTask SaveAsync(MeshNodeIdentity identity, MeshCachedNetmap netmap, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(identity);
        ArgumentNullException.ThrowIfNull(netmap);
        var bytes = netmap.Serialize(identity);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await AtomicFile.WriteAsync(Path, bytes, cancellationToken).ConfigureAwait(false);
            MeshLog.NetmapCacheFileSaved(_logger, Path, netmap.Sequence, netmap.PeerCount, bytes.Length);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new MeshException(MeshErrorCode.StateStoreFailed, $"The netmap cache file '{Path}' cannot be written: {e.Message}", e);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <inheritdoc/>
    public async ValueTask DeleteAsync(CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            AtomicFile.Delete(Path);
            MeshLog.NetmapCacheFileDeleted(_logger, Path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new MeshException(MeshErrorCode.StateStoreFailed, $"The netmap cache file '{Path}' cannot be deleted: {e.Message}", e);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Moves an unusable file out of the way (keeping it for inspection) and reports it.</summary>
    private MeshCachedNetmap? SetAside(string problem)
    {
        string aside;
        try
        {
            aside = AtomicFile.SetAside(Path, _time);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new MeshException(MeshErrorCode.StateStoreFailed,
                $"The netmap cache file '{Path}' is unusable ({problem}) and could not be moved aside: {e.Message}", e);
        }
        MeshLog.NetmapCacheFileUnusable(_logger, Path, problem, aside);
        return null;
    }

    /// <summary>The path.</summary>
    public override string ToString() => $"FileNetmapStore({Path})";
}
