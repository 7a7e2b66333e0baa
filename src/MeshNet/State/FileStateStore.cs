using System.Globalization;
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
/// directory is created (mode 0700 on Unix).</para>
/// <para><b>Reading</b> a file that is not a valid state file (truncated, edited, another
/// format) does not fail the node and does not overwrite the file: the file is renamed aside
/// with a timestamp suffix (<c>state.json.corrupt-20250101T120000Z</c>), a warning is logged,
/// and the node starts with a new identity. A file written by a newer MeshNet (a higher format
/// version) and a file that cannot be read at all (permissions, I/O errors) fail with
/// <see cref="MeshErrorCode.StateStoreFailed"/> instead, so that an identity is never discarded
/// by mistake. A file others can read is used, with a warning.</para>
/// <para><b>Secrets</b>: the private key is held as bytes and zeroed after use; it never
/// appears in logs, exception messages or <see cref="ToString"/>.</para>
/// <para>Thread-safe; one store (and one file) serves one node at a time.</para>
/// </remarks>
public sealed class FileStateStore : IMeshStateStore
{
    private const UnixFileMode FileMode0600 = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode DirectoryMode0700 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

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
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        Path = System.IO.Path.GetFullPath(path);
        if (System.IO.Path.EndsInDirectorySeparator(Path) || Directory.Exists(Path))
        {
            throw new ArgumentException("The state file path names a directory.", nameof(path));
        }
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
            byte[] content;
            try
            {
                if (!File.Exists(Path))
                {
                    return null;
                }
                var info = new FileInfo(Path);
                if (info.Length > StateFileFormat.MaxFileSize)
                {
                    return SetAside($"the file is larger than {StateFileFormat.MaxFileSize} bytes");
                }
                WarnIfReadableByOthers();
                content = await File.ReadAllBytesAsync(Path, cancellationToken).ConfigureAwait(false);
            }
            catch (FileNotFoundException)
            {
                return null;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new MeshException(MeshErrorCode.StateStoreFailed, $"The node state file '{Path}' cannot be read: {e.Message}", e);
            }
            try
            {
                return StateFileFormat.Deserialize(content);
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
                CryptographicOperations.ZeroMemory(content);
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
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        string? temporary = null;
        var buffer = StateFileFormat.Serialize(identity);
        try
        {
            string directory = System.IO.Path.GetDirectoryName(Path)!;
            if (!Directory.Exists(directory))
            {
                if (OperatingSystem.IsWindows())
                {
                    Directory.CreateDirectory(directory);
                }
                else
                {
                    Directory.CreateDirectory(directory, DirectoryMode0700);
                }
            }
            temporary = System.IO.Path.Combine(directory,
                $".{System.IO.Path.GetFileName(Path)}.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6))}.tmp");
            var options = new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                Share = FileShare.None,
            };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = FileMode0600;
            }
            await using (var file = new FileStream(temporary, options))
            {
                await file.WriteAsync(buffer.GetBuffer().AsMemory(0, (int)buffer.Length), cancellationToken).ConfigureAwait(false);
                file.Flush(flushToDisk: true);
            }
            File.Move(temporary, Path, overwrite: true);
            temporary = null;
            MeshLog.StateSaved(_logger, Path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new MeshException(MeshErrorCode.StateStoreFailed, $"The node state file '{Path}' cannot be written: {e.Message}", e);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(buffer.GetBuffer());
            if (temporary is not null)
            {
                TryDelete(temporary);
            }
            _gate.Release();
        }
    }

    /// <summary>Moves an unusable file out of the way (keeping it for inspection) and reports it.</summary>
    private MeshNodeIdentity? SetAside(string problem)
    {
        string stamp = _time.GetUtcNow().ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture);
        string aside = $"{Path}.corrupt-{stamp}";
        for (int n = 2; File.Exists(aside); n++)
        {
            aside = $"{Path}.corrupt-{stamp}-{n}";
        }
        try
        {
            File.Move(Path, aside);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new MeshException(MeshErrorCode.StateStoreFailed,
                $"The node state file '{Path}' is corrupt ({problem}) and could not be moved aside: {e.Message}", e);
        }
        MeshLog.StateFileCorrupt(_logger, Path, problem, aside);
        return null;
    }

    private void WarnIfReadableByOthers()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }
        var mode = File.GetUnixFileMode(Path);
        const UnixFileMode Others = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite;
        if ((mode & Others) != 0)
        {
            MeshLog.StateFilePermissive(_logger, Path, Convert.ToString((int)mode, 8));
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    /// <summary>The path; never the contents.</summary>
    public override string ToString() => $"FileStateStore({Path})";
}
