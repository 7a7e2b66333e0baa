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

    /// <summary>An <see cref="InMemoryNetmapStore"/> that counts calls, detects overlapping ones, and fails on request.</summary>
    private sealed class RecordingStore : IMeshNetmapStore
    {
        private readonly InMemoryNetmapStore _inner = new();
        private int _saves;
        private int _deletes;
        private int _concurrent;
        private int _maxConcurrent;

        public bool FailNext { get; set; }

        /// <summary>Saves that returned (successfully or not).</summary>
        public int Saves => Volatile.Read(ref _saves);

        public int Deletes => Volatile.Read(ref _deletes);

        public int MaxConcurrent => Volatile.Read(ref _maxConcurrent);

        public bool HasNetmap => _inner.HasNetmap;

        public Task WaitForSavesAsync(int count) => Eventually.WaitAsync(() => Saves >= count, $"{count} saves");

        public ValueTask<MeshCachedNetmap?> LoadAsync(MeshNodeIdentity identity, CancellationToken cancellationToken = default) =>
            _inner.LoadAsync(identity, cancellationToken);

        public async ValueTask SaveAsync(MeshNodeIdentity identity, MeshCachedNetmap netmap, CancellationToken cancellationToken = default)
        {
            int now = Interlocked.Increment(ref _concurrent);
            InterlockedMax(ref _maxConcurrent, now);
            try
            {
                await Task.Yield();
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

        public ValueTask DeleteAsync(CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref _deletes);
            return _inner.DeleteAsync(cancellationToken);
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
