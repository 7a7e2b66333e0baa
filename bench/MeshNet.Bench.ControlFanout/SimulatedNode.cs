using System.Runtime.CompilerServices;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;
using MeshNet.Control;
using MeshNet.Control.V1;
using MeshNet.Netmap;
using MeshNet.Userspace.Crypto;

namespace MeshNet.Bench.ControlFanout;

/// <summary>
/// A node without a data plane: a node key, a proof-of-key signer, and a map stream whose
/// messages it applies to a netmap snapshot exactly as <see cref="MeshNode"/> does. When the
/// current wave's delta arrives it reports it. Reconnects (resuming its session) when the
/// stream ends. Owns its key and signer; <see cref="DisposeAsync"/> stops the stream.
/// </summary>
internal sealed class SimulatedNode : IAsyncDisposable
{
    private readonly WireGuardPrivateKey _key = WireGuardPrivateKey.Generate();
    private readonly ControlSigner _signer;
    private readonly Control.V1.Control.ControlClient _client;
    private readonly StrongBox<FanoutWave?> _wave;
    private readonly bool _participant;
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _fullMap = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _stream = Task.CompletedTask;
    private NetmapSnapshot? _map;

    public SimulatedNode(GrpcChannel channel, byte[] serverKey, StrongBox<FanoutWave?> wave, bool participant)
    {
        _signer = ControlSigner.Create(_key, serverKey, TimeProvider.System) ?? throw new InvalidOperationException("The server key is not usable.");
        _client = new Control.V1.Control.ControlClient(channel.Intercept(new ProofInterceptor(() => _signer)));
        _wave = wave;
        _participant = participant;
    }

    public ulong Id { get; private set; }

    /// <summary>Completes when the first full netmap was applied.</summary>
    public Task FullMapApplied => _fullMap.Task;

    /// <summary>Peers in the current netmap.</summary>
    public int PeerCount => _map?.Peers.Count ?? 0;

    public int Reconnects { get; private set; }

    public async Task RegisterAsync(string authKey, string hostname, CancellationToken cancellationToken)
    {
        var response = await _client.RegisterAsync(new RegisterRequest
        {
            NodeKey = ByteString.CopyFrom(_key.PublicKey.AsSpan()),
            AuthKey = authKey,
            Hostname = hostname,
        }, cancellationToken: cancellationToken);
        Id = response.Self.Id;
    }

    /// <summary>Reports new endpoints (a patch every peer that sees this node receives).</summary>
    public Task UpdateEndpointsAsync(string endpoint, CancellationToken cancellationToken)
    {
        var request = new UpdateEndpointsRequest { NodeKey = ByteString.CopyFrom(_key.PublicKey.AsSpan()) };
        request.Endpoints.Add(endpoint);
        return _client.UpdateEndpointsAsync(request, cancellationToken: cancellationToken).ResponseAsync;
    }

    public void StartStream() => _stream = Task.Run(() => RunStreamAsync(_stop.Token));

    private async Task RunStreamAsync(CancellationToken cancellationToken)
    {
        string session = "";
        ulong last = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var request = new MapRequest { NodeKey = ByteString.CopyFrom(_key.PublicKey.AsSpan()), Session = session, LastSequence = last };
                using var call = _client.Map(request, cancellationToken: cancellationToken);
                await foreach (var message in call.ResponseStream.ReadAllAsync(cancellationToken))
                {
                    if (message.Session.Length > 0)
                    {
                        session = message.Session;
                    }
                    switch (message.BodyCase)
                    {
                        case MapResponse.BodyOneofCase.Full:
                            _map = NetmapApplier.ApplyFull(message.Full, session, message.Sequence);
                            _fullMap.TrySetResult();
                            break;
                        case MapResponse.BodyOneofCase.Delta when _map is not null:
                            _map = NetmapApplier.ApplyDelta(_map, message.Delta, message.Sequence, out _);
                            if (_participant && _wave.Value is { } wave)
                            {
                                wave.TryArrive(message.Delta, message.CalculateSize());
                            }
                            break;
                    }
                    last = message.Sequence;
                }
            }
            catch (Exception e) when (e is RpcException or IOException && !cancellationToken.IsCancellationRequested)
            {
                Reconnects++;
                await Task.Delay(TimeSpan.FromMilliseconds(200), cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (RpcException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        try
        {
            await _stream.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        _stop.Dispose();
        _signer.Dispose();
        _key.Dispose();
    }
}
