namespace Magnetar.Domain;

/// <summary>
/// An error the API reports to the client in Magnum's error format. The messages follow
/// magnum/common/exception.py so that clients and scripts that match on them keep working.
/// </summary>
public class MagnumError : Exception
{
    public int StatusCode { get; }
    public string Code { get; }

    public MagnumError(int statusCode, string message, string? code = null) : base(message)
    {
        StatusCode = statusCode;
        Code = code ?? (statusCode >= 500 ? "server" : "client");
    }

    public static MagnumError BadRequest(string message) => new(400, message);
    public static MagnumError NotFound(string message) => new(404, message);
    public static MagnumError Conflict(string message) => new(409, message);
    public static MagnumError Forbidden(string message) => new(403, message);

    public static MagnumError ClusterNotFound(string ident) => NotFound($"Cluster {ident} could not be found.");
    public static MagnumError ClusterTemplateNotFound(string ident) => NotFound($"ClusterTemplate {ident} could not be found.");
    public static MagnumError NodeGroupNotFound(string ident) => NotFound($"Nodegroup {ident} could not be found.");
    public static MagnumError PolicyNotAuthorized(string action) => Forbidden($"Policy doesn't allow {action} to be performed.");
    public static MagnumError NotAuthorized() => Forbidden("Not authorized.");
}
