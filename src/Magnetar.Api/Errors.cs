using System.Text.Json;
using Magnetar.Domain;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Magnetar.Api;

/// <summary>Writes errors the way Magnum's ParsableErrorMiddleware does: <c>{"errors": [{request_id, code, status, title, detail, links}]}</c>.</summary>
public static class MagnumErrors
{
    public static async Task WriteAsync(HttpContext http, int status, string detail, string? code = null, Action<Utf8JsonWriter>? extra = null)
    {
        if (http.Response.HasStarted) return;
        // Paths of another service this process answers for (standalone mode's Nova, Neutron, Glance and Heat views)
        // get that service's fault body: their clients cannot read Magnum's.
        if (http.RequestServices?.GetService(typeof(ServiceErrorFormats)) is ServiceErrorFormats formats && formats.For(http.Request.Path) is { } write)
        {
            await write(http, status, detail);
            return;
        }
        http.Response.StatusCode = status;
        http.Response.ContentType = "application/json";
        // Magnum's title is the first sentence of the message.
        var dot = detail.IndexOf(". ", StringComparison.Ordinal);
        var title = dot > 0 ? detail[..dot] : detail.TrimEnd('.');
        await using var w = new Utf8JsonWriter(http.Response.Body);
        w.WriteStartObject();
        w.WriteStartArray("errors");
        w.WriteStartObject();
        w.WriteString("request_id", http.Response.Headers["X-OpenStack-Request-Id"].ToString());
        w.WriteString("code", code ?? (status >= 500 ? "server" : "client"));
        w.WriteNumber("status", status);
        w.WriteString("title", title);
        w.WriteString("detail", detail);
        w.WriteStartArray("links");
        w.WriteEndArray();
        extra?.Invoke(w);
        w.WriteEndObject();
        w.WriteEndArray();
        w.WriteEndObject();
        await w.FlushAsync();
    }
}

/// <summary>
/// The fault bodies of other OpenStack services this process answers for, by path prefix; every error the middleware,
/// the rate limiter or the endpoints write through <see cref="MagnumErrors.WriteAsync"/> under such a prefix takes
/// that service's format.
/// </summary>
public sealed class ServiceErrorFormats(IEnumerable<(PathString Prefix, Func<HttpContext, int, string, Task> Write)> formats)
{
    private readonly List<(PathString Prefix, Func<HttpContext, int, string, Task> Write)> _formats = formats.ToList();

    public Func<HttpContext, int, string, Task>? For(PathString path)
        => _formats.FirstOrDefault(f => path.StartsWithSegments(f.Prefix)).Write;
}

/// <summary>
/// Turns every failure into a Magnum-format error: <see cref="MagnumError"/> with its code, oversize bodies into 413,
/// anything unexpected into a 500 that names the request id (the details go to the log, never to the client).
/// </summary>
public sealed class MagnumErrorMiddleware(RequestDelegate next, ILogger<MagnumErrorMiddleware> logger)
{
    public async Task InvokeAsync(HttpContext http)
    {
        var requestId = "req-" + Guid.NewGuid();
        http.Response.Headers["X-OpenStack-Request-Id"] = requestId;
        try
        {
            var limit = http.RequestServices.GetService(typeof(ApiOptions)) is ApiOptions o ? o.MaxRequestBodyBytes : 1024 * 1024;
            if (http.Request.ContentLength > limit)
                throw new MagnumError(413, $"Request body too large: the limit is {limit} bytes.");
            // Bodies without Content-Length (chunked) are cut off at the same limit while being read.
            if (http.Request.ContentLength is null && http.Request.Body.CanRead)
                http.Request.Body = new LengthLimitedStream(http.Request.Body, limit);
            await next(http);
        }
        catch (MagnumError e)
        {
            await MagnumErrors.WriteAsync(http, e.StatusCode, e.Message, e.Code);
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            await MagnumErrors.WriteAsync(http, 413, "Request body too large.");
        }
        catch (BadHttpRequestException e)
        {
            await MagnumErrors.WriteAsync(http, e.StatusCode, "Bad request: " + e.Message);
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            // client went away
        }
        catch (Exception e) when (DatabaseUnavailable(e))
        {
            // The database is down or failing over: the request changed nothing (its transaction never committed).
            // A 503 with Retry-After tells clients (keystoneauth retries 503s) what a 500 would not.
            logger.LogWarning("Database unavailable during {Method} {Path} ({RequestId}): {Error}", http.Request.Method, http.Request.Path, requestId,
                Innermost(e).Message);
            if (!http.Response.HasStarted) http.Response.Headers.RetryAfter = "5";
            await MagnumErrors.WriteAsync(http, 503, $"The service's database is unavailable; nothing was changed. Retry later (request {requestId}).", "server");
        }
        catch (Exception e)
        {
            logger.LogError(e, "Unhandled error in {Method} {Path} ({RequestId})", http.Request.Method, http.Request.Path, requestId);
            await MagnumErrors.WriteAsync(http, 500, $"An unknown exception occurred (request {requestId}).", "server");
        }
    }

    /// <summary>
    /// A transient database failure anywhere in the chain: what the providers mark transient (Npgsql: connection refused
    /// or reset, timeouts, server shutting down; SQLite: busy/locked), also under EF's retry-limit exception. Socket
    /// errors of calls to Keystone or the cloud are not this (they are not DbExceptions).
    /// </summary>
    internal static bool DatabaseUnavailable(Exception e)
    {
        for (var x = e; x is not null; x = x.InnerException)
            if (x is System.Data.Common.DbException { IsTransient: true }) return true;
        return false;
    }

    private static Exception Innermost(Exception e)
    {
        while (e.InnerException is not null) e = e.InnerException;
        return e;
    }
}

/// <summary>A read-only stream that fails with a 413 once more than <c>limit</c> bytes were read.</summary>
internal sealed class LengthLimitedStream(Stream inner, long limit) : Stream
{
    private long _read;
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => _read; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override int Read(byte[] buffer, int offset, int count) => Count(inner.Read(buffer, offset, count));
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default) => Count(await inner.ReadAsync(buffer, ct));
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) => ReadAsync(buffer.AsMemory(offset, count), ct).AsTask();
    private int Count(int n)
    {
        _read += n;
        if (_read > limit) throw new MagnumError(413, $"Request body too large: the limit is {limit} bytes.");
        return n;
    }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
