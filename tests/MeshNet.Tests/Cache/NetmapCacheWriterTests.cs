using MeshNet.Netmap;
using MeshNet.State;
using MeshNet.Tests.Support;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace MeshNet.Tests.Cache;

/// <summary>
/// The netmap cache writer on a fake clock: one save per write interval however many changes,
/// the latest netmap saved, failures reported and retried at the next change, a forbidden
/// netmap deleted, the pending netmap flushed on dispose, never two store calls at once.
/// </summary>
[Trait("Category", "Unit")]
public sealed class NetmapCacheWriterTests : IDisposable
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly MeshNodeIdentity _identity = MeshNodeIdentity.Generate();
    private readonly RecordingStore _store = new();

    public void Dispose() => _identity.Dispose();

    private NetmapCacheWriter NewWriter() => new(_store, () => _identity, Interval, _time, NullLogger.Instance);

    private static NetmapSnapshot Map(ulong sequence, bool forbidden = false)
    {
        var full = TestNodes.Full(TestNodes.Node(1), TestNodes.Node(2));
        full.NetmapCacheForbidden = forbidden;
        return NetmapApplier.ApplyFull(full, "s1", sequence);
    }

    [Fact]
    public async Task ABurstOfChangesGivesOneSavePerIntervalOfTheLatestNetmap()
    {
        await using var writer = NewWriter();
        writer.OnNetmap(Map(1), "acme", _time.GetUtcNow());
        await _store.WaitForSavesAsync(1);

        for (ulong sequence = 2; sequence <= 10; sequence++)
        {
            writer.OnNetmap(Map(sequence), "acme", _time.GetUtcNow());
        }
        _time.Advance(Interval - TimeSpan.FromSeconds(1));
        await Task.Delay(50);
        _store.Saves.Should().Be(1, "the interval has not passed");

        _time.Advance(TimeSpan.FromSeconds(1));
        await _store.WaitForSavesAsync(2);
        (await _store.LoadAsync(_identity))!.Sequence.Should().Be(10, "the latest netmap is the one saved");

        _time.Advance(Interval * 3);
        await Task.Delay(50);
        _store.Saves.Should().Be(2, "nothing changed since");
        _store.MaxConcurrent.Should().Be(1);
    }

    [Fact]
    public async Task NoStoreCallStartsWhileASaveIsInProgressAndTheLatestNetmapIsWrittenAfterIt()
    {
        await using var writer = NewWriter();
        _store.HoldSaves();
        writer.OnNetmap(Map(1), "acme", _time.GetUtcNow());
        await Eventually.WaitAsync(() => _store.InProgress == 1, "the first save to start");

        // While it is held: more netmaps, the clock well past the write interval, a forbidden
        // netmap (a delete is due) and allowed ones again.
        writer.OnNetmap(Map(2), "acme", _time.GetUtcNow());
        _time.Advance(Interval * 2);
        writer.OnNetmap(Map(3, forbidden: true), "acme", _time.GetUtcNow());
        writer.OnNetmap(Map(4), "acme", _time.GetUtcNow());
        writer.OnNetmap(Map(5), "acme", _time.GetUtcNow());
        _time.Advance(Interval * 2);
        await Task.Delay(50);
        _store.Started.Should().Be(1, "no save or delete starts while the first save is in progress");
        _store.InProgress.Should().Be(1);
        _store.Saves.Should().Be(0);
        _store.Deletes.Should().Be(0);

        // Released: the first save returns, then the delete runs, then the latest netmap waits for
        // the write interval counted from the end of the first save.
        _store.ReleaseSaves();
        await Eventually.WaitAsync(() => _store.Deletes == 1, "the delete after the first save");
        _store.Saves.Should().Be(1);
        _store.HasNetmap.Should().BeFalse("the delete ran after the first save");
        _time.Advance(Interval);
        await _store.WaitForSavesAsync(2);
        (await _store.LoadAsync(_identity))!.Sequence.Should().Be(5, "the latest netmap is written after the held save");
        _store.Started.Should().Be(3, "one save, one delete, one save");
        _store.MaxConcurrent.Should().Be(1);
    }

    [Fact]
    public async Task AFailedSaveIsReportedAndTheNextChangeIsSaved()
    {
        await using var writer = NewWriter();
        _store.FailNext = true;
        writer.OnNetmap(Map(1), "acme", _time.GetUtcNow());
        await Eventually.WaitAsync(() => writer.LastError is not null, "the failure to be reported");
        writer.LastError.Should().Contain("disk full");

        _time.Advance(Interval);
        await Task.Delay(50);
        _store.Saves.Should().Be(1, "the failed netmap is not retried by itself");
        writer.OnNetmap(Map(2), "acme", _time.GetUtcNow());
        await _store.WaitForSavesAsync(2);
        await Eventually.WaitAsync(() => writer.LastError is null, "the error to clear"); // cleared once the save has returned to the writer
        (await _store.LoadAsync(_identity))!.Sequence.Should().Be(2);
    }

    [Fact]
    public async Task AForbiddenNetmapDeletesTheCopyAndNothingIsSavedUntilAllowedAgain()
    {
        await using var writer = NewWriter();
        writer.OnNetmap(Map(1), "acme", _time.GetUtcNow());
        await _store.WaitForSavesAsync(1);

        writer.OnNetmap(Map(2, forbidden: true), "acme", _time.GetUtcNow());
        await Eventually.WaitAsync(() => _store.Deletes == 1, "the delete");
        _store.HasNetmap.Should().BeFalse();
        writer.OnNetmap(Map(3, forbidden: true), "acme", _time.GetUtcNow());
        _time.Advance(Interval * 2);
        await Task.Delay(50);
        _store.Saves.Should().Be(1);
        _store.Deletes.Should().Be(1, "the copy is deleted once");

        writer.OnNetmap(Map(4), "acme", _time.GetUtcNow());
        await _store.WaitForSavesAsync(2);
        (await _store.LoadAsync(_identity))!.Sequence.Should().Be(4);
    }

    [Fact]
    public async Task DisposingFlushesThePendingNetmapAndLaterNetmapsAreIgnored()
    {
        var writer = NewWriter();
        writer.OnNetmap(Map(1), "acme", _time.GetUtcNow());
        await _store.WaitForSavesAsync(1);
        writer.OnNetmap(Map(2), "acme", _time.GetUtcNow());

        await writer.DisposeAsync();
        _store.Saves.Should().Be(2);
        (await _store.LoadAsync(_identity))!.Sequence.Should().Be(2);
        writer.OnNetmap(Map(3), "acme", _time.GetUtcNow());
        _time.Advance(Interval * 2);
        await Task.Delay(50);
        _store.Saves.Should().Be(2);
    }

    /// <summary>
    /// An <see cref="InMemoryNetmapStore"/> that counts calls, detects overlapping ones (saves and
    /// deletes alike), holds saves on request, and fails on request.
    /// </summary>
    private sealed class RecordingStore : IMeshNetmapStore
    {
        private readonly InMemoryNetmapStore _inner = new();
        private TaskCompletionSource _gate = Released();
        private int _started;
        private int _saves;
        private int _deletes;
        private int _concurrent;
        private int _maxConcurrent;

        public bool FailNext { get; set; }

        /// <summary>Saves and deletes that started.</summary>
        public int Started => Volatile.Read(ref _started);

        /// <summary>Saves and deletes started and not yet returned.</summary>
        public int InProgress => Volatile.Read(ref _concurrent);

        /// <summary>Saves that returned (successfully or not).</summary>
        public int Saves => Volatile.Read(ref _saves);

        /// <summary>Deletes that returned.</summary>
        public int Deletes => Volatile.Read(ref _deletes);

        public int MaxConcurrent => Volatile.Read(ref _maxConcurrent);

        public bool HasNetmap => _inner.HasNetmap;

        public Task WaitForSavesAsync(int count) => Eventually.WaitAsync(() => Saves >= count, $"{count} saves");

        /// <summary>Saves that start from now on wait (in progress) until <see cref="ReleaseSaves"/>.</summary>
        public void HoldSaves() => Volatile.Write(ref _gate, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

        public void ReleaseSaves() => Volatile.Read(ref _gate).TrySetResult();

        public ValueTask<MeshCachedNetmap?> LoadAsync(MeshNodeIdentity identity, CancellationToken cancellationToken = default) =>
            _inner.LoadAsync(identity, cancellationToken);

        public async ValueTask SaveAsync(MeshNodeIdentity identity, MeshCachedNetmap netmap, CancellationToken cancellationToken = default)
        {
            Enter();
            try
            {
                await Task.Yield();
                await Volatile.Read(ref _gate).Task;
                if (FailNext)
                {
                    FailNext = false;
                    Interlocked.Increment(ref _saves);
                    throw new MeshException(MeshErrorCode.StateStoreFailed, "disk full");
                }
                await _inner.SaveAsync(identity, netmap, cancellationToken);
                Interlocked.Increment(ref _saves); // counted once the netmap can be loaded
            }
            finally
            {
                Interlocked.Decrement(ref _concurrent);
            }
        }

        public async ValueTask DeleteAsync(CancellationToken cancellationToken = default)
        {
            Enter();
            try
            {
                await Task.Yield();
                await _inner.DeleteAsync(cancellationToken);
                Interlocked.Increment(ref _deletes); // counted once the netmap is gone
            }
            finally
            {
                Interlocked.Decrement(ref _concurrent);
            }
        }

        private static TaskCompletionSource Released()
        {
            var gate = new TaskCompletionSource();
            gate.SetResult();
            return gate;
        }

        private void Enter()
        {
            Interlocked.Increment(ref _started);
            InterlockedMax(ref _maxConcurrent, Interlocked.Increment(ref _concurrent));
        }

        private static void InterlockedMax(ref int target, int value)
        {
            int current;
            while ((current = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, current) != current)
            {
            }
        }
    }
}
