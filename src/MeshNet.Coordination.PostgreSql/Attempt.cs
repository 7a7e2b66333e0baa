namespace MeshNet.Coordination.PostgreSql;

/// <summary>
/// One attempt of an operation run by <see cref="PostgresConnections.RunAsync{T}"/>: records when
/// its <c>COMMIT</c> was sent (<see cref="PostgresCommands.CommitAsync"/>), after which a broken
/// connection is never retried. Used by the one attempt's caller only; not thread-safe.
/// </summary>
internal sealed class Attempt
{
    /// <summary>Whether the attempt's <c>COMMIT</c> was sent: its outcome is unknown if the connection breaks from now on.</summary>
    public bool CommitSent { get; set; }
}
