using System.IO.Pipelines;
using System.Net.Sockets;
using System.Security.Cryptography;
using MeshNet.Userspace.Stack;

namespace MeshNet.Userspace.Tests.Tcp;

/// <summary>The public connection API over two real stacks: Stream and IDuplexPipe, cancellation, disposal, errors.</summary>
[Trait("Category", "Unit")]
public sealed class TcpConnectionApiTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    private static async Task<byte[]> ReadToEndAsync(Stream stream)
    {
        using var memory = new MemoryStream();
        await stream.CopyToAsync(memory);
        return memory.ToArray();
    }

    [Fact]
    public async Task DataFlowsBothWaysAtOnceAndEndsWithEof()
    {
        using var link = new TcpLoopback();
        var (client, server) = await link.ConnectAsync();
        var up = RandomNumberGenerator.GetBytes(3 << 20);
        var down = RandomNumberGenerator.GetBytes(2 << 20);
        async Task Send(TcpConnection connection, byte[] data)
        {
            for (int offset = 0; offset < data.Length; offset += 100_000)
            {
                await connection.WriteAsync(data.AsMemory(offset, Math.Min(100_000, data.Length - offset)));
            }
            await connection.ShutdownWriteAsync();
        }
        var sending = Task.WhenAll(Send(client, up), Send(server, down));
        var receivedUp = ReadToEndAsync(server);
        var receivedDown = ReadToEndAsync(client);
        await Task.WhenAll(sending, receivedUp, receivedDown).WaitAsync(Timeout);
        (await receivedUp).Should().Equal(up);
        (await receivedDown).Should().Equal(down);
        client.LocalEndPoint.Should().Be(server.RemoteEndPoint);
        server.LocalEndPoint.Port.Should().Be(7000);
        await client.DisposeAsync();
        await server.DisposeAsync();
    }

    [Fact]
    public async Task SynchronousReadAndWriteWorkOnThreads()
    {
        using var link = new TcpLoopback();
        var (client, server) = await link.ConnectAsync();
        var data = RandomNumberGenerator.GetBytes(1 << 20);
        var writer = Task.Run(() =>
        {
            client.Write(data, 0, data.Length);
            client.Dispose();
        });
        var received = await Task.Run(() =>
        {
            using var memory = new MemoryStream();
            var buffer = new byte[7000];
            int n;
            while ((n = server.Read(buffer, 0, buffer.Length)) > 0)
            {
                memory.Write(buffer, 0, n);
            }
            return memory.ToArray();
        }).WaitAsync(Timeout);
        await writer;
        received.Should().Equal(data);
        server.Dispose();
    }

    [Fact]
    public async Task AZeroByteReadWaitsForDataWithoutConsumingIt()
    {
        using var link = new TcpLoopback();
        var (client, server) = await link.ConnectAsync();
        var wait = server.ReadAsync(Memory<byte>.Empty);
        await Task.Delay(50);
        wait.IsCompleted.Should().BeFalse();
        await client.WriteAsync(new byte[] { 1, 2, 3 });
        (await wait.AsTask().WaitAsync(Timeout)).Should().Be(0);
        server.DataAvailable.Should().BeTrue();
        var buffer = new byte[10];
        (await server.ReadAsync(buffer)).Should().Be(3);
    }

    [Fact]
    public async Task ACancelledReadLosesNoData()
    {
        using var link = new TcpLoopback();
        var (client, server) = await link.ConnectAsync();
        using var cts = new CancellationTokenSource();
        var buffer = new byte[100];
        var read = server.ReadAsync(buffer, cts.Token);
        cts.Cancel();
        var act = async () => await read;
        await act.Should().ThrowAsync<OperationCanceledException>();
        await client.WriteAsync(new byte[] { 7, 8, 9 });
        (await server.ReadAsync(buffer).AsTask().WaitAsync(Timeout)).Should().Be(3);
        buffer[..3].Should().Equal(7, 8, 9);
    }

    [Fact]
    public async Task ContinuationsDoNotRunUnderTheConnectionLock()
    {
        using var link = new TcpLoopback();
        var (client, server) = await link.ConnectAsync();
        var buffer = new byte[10];
        var read = server.ReadAsync(buffer);
        await client.WriteAsync(new byte[] { 1 });
        await read;
        Monitor.IsEntered(server.ControlBlock.Sync).Should().BeFalse();
        Monitor.IsEntered(client.ControlBlock.Sync).Should().BeFalse();
    }

    [Fact]
    public async Task DisposingFailsPendingOperationsAndTheDisposeIsIdempotent()
    {
        using var link = new TcpLoopback();
        var (client, server) = await link.ConnectAsync();
        var read = server.ReadAsync(new byte[10]);
        server.Dispose();
        var act = async () => await read;
        await act.Should().ThrowAsync<ObjectDisposedException>();
        server.Dispose();
        await server.DisposeAsync();
        var readAfter = async () => await server.ReadAsync(new byte[1]);
        await readAfter.Should().ThrowAsync<ObjectDisposedException>();
        (await client.ReadAsync(new byte[10]).AsTask().WaitAsync(Timeout)).Should().Be(0, "the server closed gracefully: the client sees EOF");
    }

    [Fact]
    public async Task APeerResetFailsReadsAndWritesWithConnectionReset()
    {
        using var link = new TcpLoopback();
        var (client, server) = await link.ConnectAsync();
        var read = server.ReadAsync(new byte[10]);
        client.Abort();
        var act = async () => await read;
        (await act.Should().ThrowAsync<IOException>()).WithInnerException<SocketException>()
            .Which.SocketErrorCode.Should().Be(SocketError.ConnectionReset);
        var write = async () => await server.WriteAsync(new byte[10]);
        (await write.Should().ThrowAsync<IOException>()).WithInnerException<SocketException>()
            .Which.SocketErrorCode.Should().Be(SocketError.ConnectionReset);
        server.State.Should().Be(TcpState.Closed);
    }

    [Fact]
    public async Task HalfCloseLetsThePeerAnswerAfterEof()
    {
        using var link = new TcpLoopback();
        var (client, server) = await link.ConnectAsync();
        await client.WriteAsync("question"u8.ToArray());
        await client.ShutdownWriteAsync();
        var question = await ReadToEndAsync(server).WaitAsync(Timeout);
        question.Should().Equal("question"u8.ToArray());
        await server.WriteAsync("answer"u8.ToArray());
        await server.DisposeAsync();
        (await ReadToEndAsync(client).WaitAsync(Timeout)).Should().Equal("answer"u8.ToArray());
        var write = async () => await client.WriteAsync(new byte[1]);
        (await write.Should().ThrowAsync<IOException>()).WithInnerException<SocketException>()
            .Which.SocketErrorCode.Should().Be(SocketError.Shutdown);
    }

    [Fact]
    public async Task AWriteBlockedByAFullBufferCanBeCancelled()
    {
        using var link = new TcpLoopback(configure: o => { o.MaxSendBuffer = 64 * 1024; o.MaxReceiveBuffer = 64 * 1024; });
        var (client, server) = await link.ConnectAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        var act = async () =>
        {
            while (true)
            {
                await client.WriteAsync(new byte[16 * 1024], cts.Token);
            }
        };
        await act.Should().ThrowAsync<OperationCanceledException>();
        var buffer = new byte[1 << 20];
        (await server.ReadAsync(buffer)).Should().BeGreaterThan(0, "the connection still works");
    }

    [Fact]
    public async Task PipesMoveDataWithoutAStreamInBetween()
    {
        using var link = new TcpLoopback();
        var (client, server) = await link.ConnectAsync();
        var data = RandomNumberGenerator.GetBytes(4 << 20);
        var echo = Task.Run(async () =>
        {
            while (true)
            {
                var result = await server.Input.ReadAsync();
                foreach (var segment in result.Buffer)
                {
                    await server.Output.WriteAsync(segment);
                }
                server.Input.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted)
                {
                    break;
                }
            }
            await server.Output.CompleteAsync();
        });
        var writer = Task.Run(async () =>
        {
            for (int offset = 0; offset < data.Length; offset += 50_000)
            {
                int length = Math.Min(50_000, data.Length - offset);
                data.AsSpan(offset, length).CopyTo(client.Output.GetSpan(length));
                client.Output.Advance(length);
                await client.Output.FlushAsync();
            }
            await client.Output.CompleteAsync();
        });
        var echoed = await ReadToEndAsync(client).WaitAsync(Timeout);
        await Task.WhenAll(echo, writer);
        echoed.Should().Equal(data);
    }

    [Fact]
    public async Task ThePipeReaderKeepsUnexaminedDataAndHonoursCancelPendingRead()
    {
        using var link = new TcpLoopback();
        var (client, server) = await link.ConnectAsync();
        await client.WriteAsync(new byte[] { 1, 2, 3, 4 });
        var result = await server.Input.ReadAsync().AsTask().WaitAsync(Timeout);
        while (result.Buffer.Length < 4)
        {
            server.Input.AdvanceTo(result.Buffer.Start, result.Buffer.End);
            result = await server.Input.ReadAsync().AsTask().WaitAsync(Timeout);
        }
        server.Input.AdvanceTo(result.Buffer.GetPosition(1), result.Buffer.GetPosition(2));
        result = await server.Input.ReadAsync().AsTask().WaitAsync(Timeout);
        System.Buffers.BuffersExtensions.ToArray(result.Buffer).Should().Equal(2, 3, 4);
        server.Input.AdvanceTo(result.Buffer.End);

        var pending = server.Input.ReadAsync();
        server.Input.CancelPendingRead();
        var canceled = await pending.AsTask().WaitAsync(Timeout);
        canceled.IsCanceled.Should().BeTrue();
        server.Input.AdvanceTo(canceled.Buffer.Start);
        await client.WriteAsync(new byte[] { 5 });
        result = await server.Input.ReadAsync().AsTask().WaitAsync(Timeout);
        result.IsCanceled.Should().BeFalse("a cancellation applies to one read");
        System.Buffers.BuffersExtensions.ToArray(result.Buffer).Should().Equal(5);
        server.Input.AdvanceTo(result.Buffer.End);
    }

    [Fact]
    public async Task NoDelayIsAPerConnectionSetting()
    {
        using var link = new TcpLoopback();
        var (client, _) = await link.ConnectAsync();
        client.NoDelay.Should().BeFalse();
        client.NoDelay = true;
        client.NoDelay.Should().BeTrue();
        client.ToString().Should().Contain("Established");
    }
}
