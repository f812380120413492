using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Magnetar.Domain;
using Microsoft.AspNetCore.Http;

namespace Magnetar.Api;

public enum FieldKind { String, Int, Bool, Labels, StringList, StringMap }

/// <summary>One attribute of a Magnum API object, with the constraints Magnum's wsme types declare for it.</summary>
public sealed record Field(string Name, FieldKind Kind)
{
    public int MinLength { get; init; }
    public int? MaxLength { get; init; }
    public long? Minimum { get; init; }
    public long? Maximum { get; init; }
    public IReadOnlyCollection<string>? Allowed { get; init; }
    public Regex? Pattern { get; init; }
    public bool ReadOnly { get; init; }
    public bool Mandatory { get; init; }
    /// <summary>Null is accepted and means "unset".</summary>
    public bool Nullable { get; init; } = true;
    /// <summary>An empty string means "unset" (used for keypairs: a tenant without SSH access sends "").</summary>
    public bool EmptyIsNull { get; init; }

    public static Field Str(string name, int min = 1, int? max = 255) => new(name, FieldKind.String) { MinLength = min, MaxLength = max };
    public static Field Int(string name, long? min = null, long? max = null) => new(name, FieldKind.Int) { Minimum = min, Maximum = max };
    public static Field Bool(string name) => new(name, FieldKind.Bool);
    public static Field Ro(string name) => new(name, FieldKind.String) { ReadOnly = true, MaxLength = null, MinLength = 0 };
}

/// <summary>The attributes of one API object type; validates request bodies and patched documents against them.</summary>
public sealed class Schema(string argumentName, params Field[] fields)
{
    private readonly Dictionary<string, Field> _fields = fields.ToDictionary(f => f.Name);
    public string ArgumentName { get; } = argumentName;
    public IEnumerable<Field> Fields => _fields.Values;
    public bool Has(string name) => _fields.ContainsKey(name);
    public Field? Get(string name) => _fields.GetValueOrDefault(name);

    /// <summary>
    /// Validates a JSON object: unknown attributes, wrong types and constraint violations are 400s with wsme's
    /// wording; read-only attributes are ignored (as wsme does). Returns the typed values of the attributes present.
    /// </summary>
    public Dictionary<string, object?> Validate(JsonObject body, bool enforceMandatory = true)
    {
        var values = new Dictionary<string, object?>();
        foreach (var (name, node) in body)
        {
            if (!_fields.TryGetValue(name, out var field))
                throw MagnumError.BadRequest($"Unknown attribute for argument {ArgumentName}: {name}");
            if (field.ReadOnly) continue;
            values[name] = Convert(field, node);
        }
        if (enforceMandatory)
        {
            foreach (var f in _fields.Values.Where(f => f.Mandatory))
                if (!values.TryGetValue(f.Name, out var v) || v is null)
                    throw MagnumError.BadRequest($"Invalid input for field/attribute {f.Name}. Value: None. Mandatory field missing.");
        }
        return values;
    }

    private static MagnumError Invalid(Field f, JsonNode? node, string why)
        => MagnumError.BadRequest($"Invalid input for field/attribute {f.Name}. Value: '{Show(node)}'. {why}");

    private static string Show(JsonNode? node)
    {
        var s = node?.ToJsonString() ?? "None";
        return s.Length > 100 ? s[..100] + "…" : s;
    }

    public static object? Convert(Field f, JsonNode? node)
    {
        if (node is null)
        {
            if (f.Nullable && !f.Mandatory) return null;
            throw Invalid(f, node, "Value must not be null.");
        }
        switch (f.Kind)
        {
            case FieldKind.String:
            {
                if (node is not JsonValue v || !v.TryGetValue<string>(out var s))
                    throw Invalid(f, node, "Wrong type. Expected 'str'.");
                if (f.EmptyIsNull && s.Length == 0) return null;
                if (f.Allowed is not null && !f.Allowed.Contains(s))
                    throw Invalid(f, node, $"Value should be one of: {string.Join(", ", f.Allowed)}");
                if (s.Length < f.MinLength) throw Invalid(f, node, $"Value should have a minimum character requirement of {f.MinLength}");
                if (f.MaxLength is { } max && s.Length > max) throw Invalid(f, node, $"Value should have a maximum character requirement of {max}");
                if (f.Pattern is not null && !f.Pattern.IsMatch(s)) throw Invalid(f, node, $"Value should match the pattern {f.Pattern}");
                if (s.Contains('\0')) throw Invalid(f, node, "Value must not contain NUL characters.");
                return s;
            }
            case FieldKind.Int:
            {
                long n;
                if (node is JsonValue v0 && v0.TryGetValue<int>(out var i32)) n = i32;
                else if (node is JsonValue v && v.TryGetValue<long>(out var l)) n = l;
                else if (node is JsonValue v2 && v2.TryGetValue<double>(out var d) && d == Math.Floor(d) && Math.Abs(d) < 1e15) n = (long)d;
                else if (node is JsonValue v3 && v3.TryGetValue<string>(out var str) && long.TryParse(str, NumberStyles.Integer, CultureInfo.InvariantCulture, out var p)) n = p;
                else throw Invalid(f, node, "Wrong type. Expected 'int'.");
                if (f.Minimum is { } min && n < min) throw Invalid(f, node, $"Value should be greater or equal to {min}");
                if (f.Maximum is { } max && n > max) throw Invalid(f, node, $"Value should be lower or equal to {max}");
                if (n > int.MaxValue || n < int.MinValue) throw Invalid(f, node, "Value out of range.");
                return (int)n;
            }
            case FieldKind.Bool:
                return ParseBool(node) ?? throw Invalid(f, node, "Wrong type. Expected 'bool'.");
            case FieldKind.Labels:
                return ParseLabels(node) ?? throw Invalid(f, node, "Wrong type. Expected a dict of labels.");
            case FieldKind.StringMap:
            {
                if (node is not JsonObject o) throw Invalid(f, node, "Wrong type. Expected 'dict'.");
                var map = new Dictionary<string, string>();
                foreach (var (k, v) in o)
                {
                    if (v is not JsonValue jv || !jv.TryGetValue<string>(out var s)) throw Invalid(f, node, "Wrong type. Expected a dict of strings.");
                    map[k] = s;
                }
                return map;
            }
            case FieldKind.StringList:
            {
                if (node is not JsonArray a) throw Invalid(f, node, "Wrong type. Expected 'list'.");
                var list = new List<string>();
                foreach (var item in a)
                {
                    if (item is not JsonValue jv || !jv.TryGetValue<string>(out var s) || s.Length == 0 || s.Length > 255)
                        throw Invalid(f, node, "Wrong type. Expected a list of non-empty strings.");
                    list.Add(s);
                }
                return list;
            }
            default:
                throw new InvalidOperationException(f.Kind.ToString());
        }
    }

    /// <summary>Magnum's types.boolean: JSON booleans and the usual strings ("true", "1", "yes", "on" / …).</summary>
    public static bool? ParseBool(JsonNode? node)
    {
        if (node is not JsonValue v) return null;
        if (v.TryGetValue<bool>(out var b)) return b;
        if (v.TryGetValue<string>(out var s))
        {
            switch (s.Trim().ToLowerInvariant())
            {
                case "true" or "1" or "yes" or "y" or "on" or "t": return true;
                case "false" or "0" or "no" or "n" or "off" or "f": return false;
            }
        }
        if (v.TryGetValue<long>(out var n) && (n == 0 || n == 1)) return n == 1;
        return null;
    }

    /// <summary>Labels: a JSON object whose values are strings, numbers or booleans (stored as their string form).</summary>
    public static Dictionary<string, string>? ParseLabels(JsonNode? node)
    {
        if (node is JsonValue sv && sv.TryGetValue<string>(out var literal))
            return ParsePythonDictLiteral(literal);
        if (node is not JsonObject o) return null;
        var labels = new Dictionary<string, string>();
        foreach (var (k, v) in o)
        {
            if (k.Length == 0 || k.Length > 255) return null;
            if (v is not JsonValue jv) return null;
            string text;
            if (jv.TryGetValue<string>(out var s)) text = s;
            else if (jv.TryGetValue<bool>(out var b)) text = b ? "True" : "False";
            else if (jv.TryGetValue<double>(out _)) text = jv.ToJsonString();
            else return null;
            if (text.Length > 65535 || text.Contains('\0')) return null;
            labels[k] = text;
        }
        return labels;
    }

    /// <summary>
    /// Magnum accepts a label dict sent as a Python literal string in a JSON-patch "replace /labels" (ast.literal_eval);
    /// python-magnumclient sends such strings. Only flat {'k': 'v', …} dicts of string/number/bool scalars are accepted.
    /// </summary>
    private static Dictionary<string, string>? ParsePythonDictLiteral(string s)
    {
        var json = s.Trim();
        if (!json.StartsWith('{') || !json.EndsWith('}')) return null;
        // Convert single-quoted Python strings and True/False/None to JSON, character by character.
        var sb = new System.Text.StringBuilder();
        for (int i = 0; i < json.Length; i++)
        {
            var c = json[i];
            if (c == '\'' || c == '"')
            {
                var quote = c;
                sb.Append('"');
                for (i++; i < json.Length && json[i] != quote; i++)
                {
                    if (json[i] == '\\' && i + 1 < json.Length) { sb.Append(json[i]).Append(json[++i]); continue; }
                    if (json[i] == '"') sb.Append("\\\""); else sb.Append(json[i]);
                }
                if (i >= json.Length) return null;
                sb.Append('"');
            }
            else if (json.AsSpan(i).StartsWith("True")) { sb.Append("true"); i += 3; }
            else if (json.AsSpan(i).StartsWith("False")) { sb.Append("false"); i += 4; }
            else sb.Append(c);
        }
        try { return ParseLabels(JsonNode.Parse(sb.ToString())); }
        catch (JsonException) { return null; }
    }
}

public static class BodyReader
{
    /// <summary>Depth limit against nesting bombs; the same attribute twice in one object is malformed, not "last wins".</summary>
    private static readonly JsonDocumentOptions Options = new() { MaxDepth = 32, AllowDuplicateProperties = false };

    /// <summary>Reads the request body as one JSON value; malformed JSON, too-deep nesting or an empty body is a 400.</summary>
    public static async Task<JsonNode> ReadAsync(HttpRequest request, CancellationToken ct)
    {
        try
        {
            using var doc = await JsonDocument.ParseAsync(request.Body, Options, ct);
            return JsonNode.Parse(doc.RootElement.GetRawText(), documentOptions: Options)
                   ?? throw MagnumError.BadRequest("The request body is empty or null.");
        }
        catch (JsonException e)
        {
            throw MagnumError.BadRequest($"Invalid JSON in the request body: {e.Message}");
        }
        catch (ArgumentException e)
        {
            throw MagnumError.BadRequest($"Invalid JSON in the request body: {e.Message}");
        }
    }

    public static async Task<JsonObject> ReadObjectAsync(HttpRequest request, CancellationToken ct)
        => await ReadAsync(request, ct) as JsonObject ?? throw MagnumError.BadRequest("The request body must be a JSON object.");
}
