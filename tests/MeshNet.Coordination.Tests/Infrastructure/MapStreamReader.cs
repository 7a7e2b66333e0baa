using Grpc.Core;
using MeshNet.Control.V1;

namespace MeshNet.Coordination.Tests.Infrastructure;

/// <summary>Reads a map stream with a timeout, so a missing message fails the test instead of hanging it.</summary>
internal sealed class MapStreamReader : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    public MapStreamReader(AsyncServerStreamingCall<MapResponse> call) => Call = call;

    public AsyncServerStreamingCall<MapResponse> Call { get; }

    public string Session { get; private set; } = "";

    public ulong LastSequence { get; private set; }

    /// <summary>The tailnet revision of the last message read.</summary>
    public ulong LastRevision { get; private set; }

    /// <summary>The highest epoch read.</summary>
    public ulong Epoch { get; private set; }

    public async Task<MapResponse> NextAsync()
    {
        using var timeout = new CancellationTokenSource(Timeout);
        if (!await Call.ResponseStream.MoveNext(timeout.Token))
        {
            throw new InvalidOperationException("The map stream ended.");
        }
        var message = Call.ResponseStream.Current;
        message.Sequence.Should().BeGreaterThan(LastSequence, "sequences are strictly increasing");
        LastSequence = message.Sequence;
        message.Epoch.Should().BeGreaterThanOrEqualTo(Epoch, "a stream never goes back to an older epoch");
        Epoch = message.Epoch;
        LastRevision = message.Revision;
        if (message.Session.Length > 0)
        {
            Session = message.Session;
        }
        return message;
    }

    /// <summary>The next message that is not a keep-alive.</summary>
    public async Task<MapResponse> NextChangeAsync()
    {
        while (true)
        {
            var message = await NextAsync();
            if (message.BodyCase != MapResponse.BodyOneofCase.KeepAlive)
            {
                return message;
            }
        }
    }

    public async Task<MapDelta> NextDeltaAsync()
    {
        var message = await NextChangeAsync();
        message.BodyCase.Should().Be(MapResponse.BodyOneofCase.Delta, "after the full netmap only deltas come");
        return message.Delta;
    }

    /// <summary>Reads until the stream ends with an error and returns it.</summary>
    public async Task<RpcException> FailureAsync()
    {
        try
        {
            while (true)
            {
                await NextAsync();
            }
        }
        catch (RpcException exception)
        {
            return exception;
        }
    }

    public void Dispose() => Call.Dispose();
}
