using Microsoft.Extensions.Logging;

namespace MeshNet.Diagnostics;

/// <summary>The log messages of <see cref="FileNetmapStore"/> (event ids 4170-4179, part of the state-store range).</summary>
internal static partial class MeshLog
{
    [LoggerMessage(EventId = 4170, Level = LogLevel.Debug, Message = "Netmap cache saved to {Path}: sequence {Sequence}, {Peers} peers, {Bytes} bytes")]
    public static partial void NetmapCacheFileSaved(ILogger logger, string path, ulong sequence, int peers, int bytes);

    [LoggerMessage(EventId = 4171, Level = LogLevel.Warning, Message = "Netmap cache file {Path} is unusable ({Problem}); moved aside to {Aside}, the node starts from the coordination service")]
    public static partial void NetmapCacheFileUnusable(ILogger logger, string path, string problem, string aside);

    [LoggerMessage(EventId = 4172, Level = LogLevel.Warning, Message = "Netmap cache file {Path} is accessible to other users (mode {Mode}); it decides whom the node talks to")]
    public static partial void NetmapCacheFilePermissive(ILogger logger, string path, string mode);

    [LoggerMessage(EventId = 4173, Level = LogLevel.Debug, Message = "Netmap cache file {Path} deleted")]
    public static partial void NetmapCacheFileDeleted(ILogger logger, string path);
}
