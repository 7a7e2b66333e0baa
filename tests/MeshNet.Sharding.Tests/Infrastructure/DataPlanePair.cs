using System.Net;
using System.Security.Cryptography;

namespace MeshNet.Sharding.Tests.Infrastructure;

/// <summary>
/// Two real <see cref="MeshNode"/>s of a tailnet (WireGuard on loopback, the userspace stack) and a
/// TCP transfer between them, hashed at both ends: the data plane whose traffic must not notice
/// what happens to the control plane.
/// </summary>
internal sealed class DataPlanePair : IAsyncDisposable
{
    private DataPlanePair(MeshNode sender, MeshNode receiver)
    {
        Sender = sender;
        Receiver = receiver;
    }

    public MeshNode Sender { get; }

    public MeshNode Receiver { get; }

    public static async Task<DataPlanePair> StartAsync(ShardedDeployment deployment, string authKey)
    {
        MeshNode? sender = null;
        try
        {
            sender = await MeshNode.StartAsync(Options(deployment, authKey, "sender"));
            var receiver = await MeshNode.StartAsync(Options(deployment, authKey, "receiver"));
            return new DataPlanePair(sender, receiver);
        }
        catch
        {
            if (sender is not null)
            {
                await sender.DisposeAsync();
            }
            throw;
        }
    }

    /// <summary>
    /// Sends <paramref name="bytes"/> pseudo-random bytes from the sender to the receiver, paced
    /// over about <paramref name="duration"/>; returns the SHA-256 of what was sent and of what
    /// arrived, and the longest time the receiver waited for data once the first bytes arrived.
    /// </summary>
    public async Task<Transfer> TransferAsync(long bytes, TimeSpan duration, CancellationToken cancellationToken)
    {
        await using var listener = await Receiver.ListenAsync(5001);
        var accepting = listener.AcceptAsync(cancellationToken).AsTask();
        await using var outgoing = await Sender.DialAsync("receiver", 5001, cancellationToken);
        await using var incoming = await accepting;
        var receiving = Task.Run(async () =>
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[64 * 1024];
            long total = 0;
            long last = 0;
            var longest = TimeSpan.Zero;
            while (total < bytes)
            {
                int read = await incoming.ReadAsync(buffer, cancellationToken);
                if (read == 0)
                {
                    break;
                }
                long now = TimeProvider.System.GetTimestamp();
                if (last != 0 && TimeProvider.System.GetElapsedTime(last, now) > longest)
                {
                    longest = TimeProvider.System.GetElapsedTime(last, now);
                }
                last = now;
                hash.AppendData(buffer, 0, read);
                total += read;
            }
            return (hash.GetHashAndReset(), longest);
        }, cancellationToken);
        using var sent = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var random = new Random(1234);
        var chunk = new byte[64 * 1024];
        long chunks = (bytes + chunk.Length - 1) / chunk.Length;
        var pause = duration / Math.Max(1, chunks);
        for (long offset = 0; offset < bytes; offset += chunk.Length)
        {
            random.NextBytes(chunk);
            int length = (int)Math.Min(chunk.Length, bytes - offset);
            sent.AppendData(chunk, 0, length);
            await outgoing.WriteAsync(chunk.AsMemory(0, length), cancellationToken);
            if (pause > TimeSpan.FromMilliseconds(1))
            {
                await Task.Delay(pause, cancellationToken);
            }
        }
        var (received, stall) = await receiving;
        return new Transfer(sent.GetHashAndReset(), received, stall);
    }

    /// <summary>What a transfer sent and received (SHA-256 each), and its longest wait for data.</summary>
    public sealed record Transfer(byte[] Sent, byte[] Received, TimeSpan LongestStall);

    public async ValueTask DisposeAsync()
    {
        await Sender.DisposeAsync();
        await Receiver.DisposeAsync();
    }

    private static MeshNodeOptions Options(ShardedDeployment deployment, string authKey, string name) => new()
    {
        ControlUrl = deployment.Urls[0],
        ControlUrls = [.. deployment.Urls.Skip(1)],
        AuthKey = authKey,
        Hostname = name,
        BindAddress = IPAddress.Loopback,
        StartTimeout = TimeSpan.FromSeconds(60),
        ControlReconnectMinDelay = TimeSpan.FromMilliseconds(50),
        ControlReconnectMaxDelay = TimeSpan.FromSeconds(2),
    };
}
