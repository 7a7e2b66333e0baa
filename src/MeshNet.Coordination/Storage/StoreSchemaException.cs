namespace MeshNet.Coordination.Storage;

/// <summary>
/// The database's schema cannot be used: it is newer than this version of the service knows,
/// or a migration failed.
/// </summary>
public sealed class StoreSchemaException : Exception
{
    /// <summary>Creates the exception.</summary>
    public StoreSchemaException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception with its cause.</summary>
    public StoreSchemaException(string message, Exception innerException) : base(message, innerException)
    {
    }
}
