using System.Security.Cryptography;
using MeshNet.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace MeshNet;

/// <summary>
/// An <see cref="IMeshStateStore"/> in one file: a versioned JSON document (see the remarks)
/// readable only by its owner.
/// </summary>
/// <remarks>
/// <para><b>Writing</b> is atomic: the new state goes to a temporary file in the same
/// directory (created with mode 0600 on Unix), is flushed to disk, and then renamed over the
/// old file, so a crash leaves either the old or the new state, never a mix. A missing
/// directory is created (mode 0700 on Unix). Temporary files left by a process that died while
/// writing are removed by the next save.</para>
/// <para><b>Integrity</b>: the document (version 2) ends with an HMAC-SHA256 over the rest of
/// it, keyed from the node's private key (see <c>StateFileFormat</c>), so an edited or
/// damaged file is detected even when it still parses. Version 1 files (without it) are still
/// read, and written as version 2 by the next save. The document also keeps
/// <see cref="MeshNodeIdentity.ListenPort"/>.</para>
/// <para><b>Reading</b> a file that is not a valid state file (truncated, edited, failing its
/// integrity check, another format) does not fail the node and does not overwrite the file: the
/// file is renamed aside with a timestamp suffix (<c>state.json.corrupt-20250101T120000Z</c>,
/// never overwriting an earlier one), a warning is logged, and the node starts with a new
/// identity. A file written by a newer MeshNet (a higher format
/// version) and a file that cannot be read at all (permissions, I/O errors) fail with
/// <see cref="MeshErrorCode.StateStoreFailed"/> instead, so that an identity is never discarded
/// by mistake. A file others can read is used, with a warning.</para>
/// <para><b>Secrets</b>: the private key is held as bytes and zeroed after use; it never
/// appears in logs, exception messages or <see cref="ToString"/>.</para>
/// <para>Thread-safe; one store (and one file) serves one node at a time.</para>
/// </remarks>
public sealed class FileStateStore : IMeshStateStore
{
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _gate = new(1, 1);

    /// <summary>Creates a store for the file at <paramref name="path"/> (it need not exist yet).</summary>
    /// <param name="path">The state file.</param>
    /// <param name="loggerFactory">Where warnings (a corrupt file renamed aside, loose permissions) go; default none.</param>
    /// <param name="timeProvider">The clock for the timestamp of a corrupt file's new name; default <see cref="TimeProvider.System"/>.</param>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty or names a directory.</exception>
    public FileStateStore(string path, ILoggerFactory? loggerFactory = null, TimeProvider? timeProvider = null)
    {
        Path = AtomicFile.FullPath(path, nameof(path));
        _logger = loggerFactory?.CreateLogger<FileStateStore>() ?? (ILogger)NullLogger.Instance;
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>The full path of the state file.</summary>
    public string Path { get; }

    /// <inheritdoc/>
    public async ValueTask<MeshNodeIdentity?> LoadAsync(CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            StoredFile? stored;
            try
            {
                stored = await AtomicFile.ReadAsync(Path, StateFileFormat.MaxFileSize, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new MeshException(MeshErrorCode.StateStoreFailed, $"The node state file '{Path}' cannot be read: {e.Message}", e);
            }
            if (stored is null)
            {
                return null;
            }
            if (stored.LooseMode is { } mode)
            {
                MeshLog.StateFilePermissive(_logger, Path, mode);
            }
            if (stored.TooLarge)
            {
                return SetAside($"the file is larger than {StateFileFormat.MaxFileSize} bytes");
            }
            try
            {
                return StateFileFormat.Deserialize(stored.Content);
            }
            catch (StateFileCorruptException e)
            {
                return SetAside(e.Message);
            }
            catch (StateFileVersionException e)
            {
                throw new MeshException(MeshErrorCode.StateStoreFailed,
                    $"The node state file '{Path}' was written by a newer version of MeshNet ({e.Message}); it is left untouched.");
            }
            finally
            {
                CryptographicOperations.ZeroMemory(stored.Content);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <inheritdoc/>
    public async ValueTask SaveAsync(MeshNodeIdentity identity, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(identity);
        var buffer = StateFileFormat.Serialize(identity);
        try
        {
            await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            CryptographicOperations.ZeroMemory(buffer.GetBuffer());
            throw;
        }
        try
        {
            await AtomicFile.WriteAsync(Path, buffer.GetBuffer().AsMemory(0, (int)buffer.Length), cancellationToken).ConfigureAwait(false);
            MeshLog.StateSaved(_logger, Path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new MeshException(MeshErrorCode.StateStoreFailed, $"The node state file '{Path}' cannot be written: {e.Message}", e);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(buffer.GetBuffer());
            _gate.Release();
        }
    }

    /// <summary>Moves an unusable file out of the way (keeping it for inspection) and reports it.</summary>
    private MeshNodeIdentity? SetAside(string problem)
    {
        string aside;
        try
        {
            aside = AtomicFile.SetAside(Path, _time);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new MeshException(MeshErrorCode.StateStoreFailed,
                $"The node state file '{Path}' is corrupt ({problem}) and could not be moved aside: {e.Message}", e);
        }
        MeshLog.StateFileCorrupt(_logger, Path, problem, aside);
        return null;
    }

    /// <summary>The path; never the contents.</summary>
    public override string ToString() => $"FileStateStore({Path})";
}
