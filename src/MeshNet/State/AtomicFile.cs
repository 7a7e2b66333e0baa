using System.Globalization;
using System.Security.Cryptography;

namespace MeshNet;

/// <summary>
/// The file mechanics the file stores share (<see cref="FileStateStore"/>, <see cref="FileNetmapStore"/>):
/// reading a bounded file, replacing it atomically with owner-only permissions, setting a bad
/// file aside under a unique name, and removing temporary files a crash left behind.
/// </summary>
/// <remarks>
/// <para>Stateless; the callers serialize access to one path (one store serves one node at a
/// time). Errors are <see cref="IOException"/> or <see cref="UnauthorizedAccessException"/>,
/// except where a method says otherwise: each store turns them into its own
/// <see cref="MeshException"/>, naming its file.</para>
/// <para>A temporary file is <c>.NAME.XXXXXXXXXXXX.tmp</c> (twelve random hex digits) next to
/// the file NAME. Since one file serves one node at a time, any such file present when a save
/// or delete starts was left by a process that died while writing; it is removed then.</para>
/// </remarks>
internal static class AtomicFile
{
    /// <summary>Mode 0600: read and write for the owner only.</summary>
    public const UnixFileMode OwnerOnlyFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>Mode 0700: a directory only its owner may list and enter.</summary>
    public const UnixFileMode OwnerOnlyDirectory = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    private const UnixFileMode GroupOrOthers =
        UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite;

    private const int RandomHexDigits = 12;

    /// <summary>
    /// The full form of a store's <paramref name="path"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The path is empty or names a directory.</exception>
    public static string FullPath(string path, string parameterName)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path, parameterName);
        string full = Path.GetFullPath(path);
        if (Path.EndsInDirectorySeparator(full) || Directory.Exists(full))
        {
            throw new ArgumentException("The store's file path names a directory.", parameterName);
        }
        return full;
    }

    /// <summary>
    /// Reads <paramref name="path"/>: null when it does not exist; <see cref="StoredFile.TooLarge"/>
    /// (and no content read) when it is larger than <paramref name="maxSize"/> bytes. The caller
    /// owns (and, for secrets, zeroes) the content.
    /// </summary>
    public static async ValueTask<StoredFile?> ReadAsync(string path, long maxSize, CancellationToken cancellationToken)
    {
        FileStream file;
        try
        {
            file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.Asynchronous);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        await using (file.ConfigureAwait(false))
        {
            string? looseMode = LooseMode(file);
            long length = file.Length;
            if (length > maxSize)
            {
                return new StoredFile([], TooLarge: true, looseMode);
            }
            var content = new byte[length];
            int read = 0;
            while (read < content.Length)
            {
                int n = await file.ReadAsync(content.AsMemory(read), cancellationToken).ConfigureAwait(false);
                if (n == 0)
                {
                    // It shrank between the two looks: what is there is what we judge.
                    var shorter = content.AsSpan(0, read).ToArray();
                    CryptographicOperations.ZeroMemory(content);
                    return new StoredFile(shorter, TooLarge: false, looseMode);
                }
                read += n;
            }
            return new StoredFile(content, TooLarge: false, looseMode);
        }
    }

    /// <summary>
    /// Replaces <paramref name="path"/> with <paramref name="content"/> atomically: the bytes go
    /// to a new temporary file in the same directory (mode 0600 on Unix), are flushed to disk,
    /// and the temporary file is renamed over <paramref name="path"/>. A reader (or a crash at any
    /// moment) sees the old file or the new one, never a mix. Creates a missing directory (mode
    /// 0700 on Unix) and removes the temporary files earlier crashes left. On failure the new
    /// temporary file is removed and the old file is untouched.
    /// </summary>
    public static async ValueTask WriteAsync(string path, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        string directory = Path.GetDirectoryName(path)!;
        if (!Directory.Exists(directory))
        {
            if (OperatingSystem.IsWindows())
            {
                Directory.CreateDirectory(directory);
            }
            else
            {
                Directory.CreateDirectory(directory, OwnerOnlyDirectory);
            }
        }
        RemoveTemporaryFiles(path);
        string temporary = Path.Combine(directory,
            $".{Path.GetFileName(path)}.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(RandomHexDigits / 2))}.tmp");
        var options = new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            Share = FileShare.None,
        };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = OwnerOnlyFile;
        }
        bool moved = false;
        try
        {
            await using (var file = new FileStream(temporary, options))
            {
                await file.WriteAsync(content, cancellationToken).ConfigureAwait(false);
                file.Flush(flushToDisk: true);
            }
            File.Move(temporary, path, overwrite: true);
            moved = true;
        }
        finally
        {
            if (!moved)
            {
                TryDelete(temporary);
            }
        }
    }

    /// <summary>Removes <paramref name="path"/> and the temporary files crashes left beside it; a missing file (or directory) is fine.</summary>
    public static void Delete(string path)
    {
        if (!Directory.Exists(Path.GetDirectoryName(path)))
        {
            return;
        }
        RemoveTemporaryFiles(path);
        File.Delete(path);
    }

    /// <summary>
    /// Renames <paramref name="path"/> to <c>PATH.corrupt-yyyyMMddTHHmmssZ</c> (the time from
    /// <paramref name="time"/>), or <c>-2</c>, <c>-3</c>... after it when that name is taken:
    /// an earlier set-aside file is never overwritten. Returns the new name.
    /// </summary>
    public static string SetAside(string path, TimeProvider time)
    {
        string stamp = time.GetUtcNow().ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture);
        string first = $"{path}.corrupt-{stamp}";
        for (int n = 1; ; n++)
        {
            string aside = n == 1 ? first : $"{first}-{n}";
            if (File.Exists(aside))
            {
                continue;
            }
            try
            {
                File.Move(path, aside, overwrite: false);
                return aside;
            }
            catch (IOException) when (File.Exists(aside) && File.Exists(path) && n < 10_000)
            {
                // Taken between the look and the move: try the next name.
            }
        }
    }

    /// <summary>The names of the temporary files of <paramref name="path"/> present now.</summary>
    public static IReadOnlyList<string> TemporaryFiles(string path)
    {
        string directory = Path.GetDirectoryName(path)!;
        string prefix = $".{Path.GetFileName(path)}.";
        try
        {
            return [.. Directory.EnumerateFiles(directory, $"{prefix}*.tmp")
                .Where(file => IsTemporaryName(Path.GetFileName(file), prefix))];
        }
        catch (DirectoryNotFoundException)
        {
            return [];
        }
    }

    private static bool IsTemporaryName(string name, string prefix)
    {
        // .NAME.0123456789ab.tmp, exactly: never another file that happens to match the wildcard.
        if (name.Length != prefix.Length + RandomHexDigits + 4 || !name.StartsWith(prefix, StringComparison.Ordinal) || !name.EndsWith(".tmp", StringComparison.Ordinal))
        {
            return false;
        }
        return name.AsSpan(prefix.Length, RandomHexDigits).ContainsAnyExcept("0123456789abcdef") is false;
    }

    private static void RemoveTemporaryFiles(string path)
    {
        foreach (var temporary in TemporaryFiles(path))
        {
            TryDelete(temporary);
        }
    }

    /// <summary>The file's mode in octal when group or others may read or write it (Unix); otherwise null.</summary>
    private static string? LooseMode(FileStream file)
    {
        if (OperatingSystem.IsWindows())
        {
            return null;
        }
        var mode = File.GetUnixFileMode(file.SafeFileHandle);
        return (mode & GroupOrOthers) != 0 ? Convert.ToString((int)mode, 8) : null;
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Left for the next save to remove.
        }
    }
}

/// <summary>What <see cref="AtomicFile.ReadAsync"/> found.</summary>
/// <param name="Content">The bytes (empty when <paramref name="TooLarge"/>).</param>
/// <param name="TooLarge">The file is larger than the caller's limit; it was not read.</param>
/// <param name="LooseMode">The file's mode (octal) when group or others may read or write it; null when private.</param>
internal sealed record StoredFile(byte[] Content, bool TooLarge, string? LooseMode);
