using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Magnetar.Domain;

namespace Magnetar.Api;

/// <summary>
/// JSON-patch (RFC 6902 add/replace/remove) as Magnum applies it to its objects (magnum/api/utils.py apply_jsonpatch
/// and controllers/v1/types.py JsonPatchType): internal attributes cannot be touched, mandatory ones cannot be
/// removed, "add" of an existing top-level attribute is refused, and a label dict may come as a Python literal string.
/// </summary>
public static partial class JsonPatch
{
    [GeneratedRegex(@"^(/[\w-]+)+$")]
    private static partial Regex PathPattern();

    private static readonly string[] CommonInternal = ["/created_at", "/id", "/links", "/updated_at", "/uuid", "/project_id", "/user_id"];

    /// <summary>
    /// Checks the shape of a JSON-patch document before the target is looked up, as wsme does in Magnum: a
    /// malformed patch is a 400 even when the object does not exist.
    /// </summary>
    public static void EnsureWellFormed(JsonNode? patchBody)
    {
        foreach (var op in Operations(patchBody)) Parse(op);
    }

    private static JsonArray Operations(JsonNode? patchBody)
        => patchBody as JsonArray ?? throw MagnumError.BadRequest("The request body must be a JSON-patch document: a list of operations.");

    /// <summary>One operation's op and path, checked as Magnum's JsonPatchType does.</summary>
    private static (string Op, string Path, JsonObject Node) Parse(JsonNode? opNode)
    {
        if (opNode is not JsonObject op) throw MagnumError.BadRequest("Each JSON-patch operation must be an object.");
        foreach (var (key, _) in op)
            if (key is not ("op" or "path" or "value"))
                throw MagnumError.BadRequest($"Unknown attribute for argument patch: {key}");
        var name = (op["op"] as JsonValue)?.TryGetValue<string>(out var o) == true ? o : null;
        var path = (op["path"] as JsonValue)?.TryGetValue<string>(out var p) == true ? p : null;
        if (path is null || !PathPattern().IsMatch(path))
            throw MagnumError.BadRequest($"Invalid input for field/attribute path. Value: '{op["path"]?.ToJsonString() ?? "None"}'. Value should match the pattern ^(/[\\w-]+)+$");
        if (name is not ("add" or "replace" or "remove"))
            throw MagnumError.BadRequest($"Invalid input for field/attribute op. Value: '{op["op"]?.ToJsonString() ?? "None"}'. Value should be one of: add, replace, remove");
        return (name, path, op);
    }

    public static JsonObject Apply(JsonObject document, JsonNode? patchBody, IEnumerable<string> internalAttributes, IEnumerable<string> nonRemovable)
    {
        var ops = Operations(patchBody);
        var internalSet = CommonInternal.Concat(internalAttributes).ToHashSet();
        var nonRemovableSet = nonRemovable.ToHashSet();
        var doc = (JsonObject)document.DeepClone();
        foreach (var opNode in ops)
        {
            var (opName, path, op) = Parse(opNode);
            var top = "/" + path.Split('/', StringSplitOptions.RemoveEmptyEntries)[0];
            if (internalSet.Contains(path) || internalSet.Contains(top))
                throw MagnumError.BadRequest($"'{path}' is an internal attribute and can not be updated");
            if (opName == "remove" && nonRemovableSet.Contains(path))
                throw MagnumError.BadRequest($"'{path}' is a mandatory attribute and can not be removed");
            var hasValue = op.TryGetPropertyValue("value", out var value) && value is not null;
            if (opName != "remove" && !hasValue)
                throw MagnumError.BadRequest("'add' and 'replace' operations needs value");

            var segments = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
            var attr = segments[0];
            if (segments.Length == 1)
            {
                if (!doc.ContainsKey(attr))
                {
                    if (opName == "add") throw MagnumError.BadRequest($"Adding a new attribute {path} to the root of the resource is not allowed.");
                    throw MagnumError.BadRequest($"Couldn't apply patch '{ops.ToJsonString()}'. Reason: can't remove/replace a non-existent object '{attr}'");
                }
                if (opName == "add" && doc[attr] is not null)
                    throw MagnumError.BadRequest($"The attribute {path} has existed, please use 'replace' operation instead.");
                if (opName == "remove") doc[attr] = null;
                else doc[attr] = NormalizeDictLiteral(attr, value!.DeepClone(), ops);
            }
            else if (segments.Length == 2)
            {
                // e.g. /labels/kube_tag
                if (doc[attr] is not JsonObject inner)
                {
                    if (doc[attr] is null && opName == "add") { inner = new JsonObject(); doc[attr] = inner; }
                    else throw MagnumError.BadRequest($"Couldn't apply patch '{ops.ToJsonString()}'. Reason: member '{attr}' is not an object");
                }
                var key = segments[1];
                if (opName == "remove")
                {
                    if (!inner.Remove(key)) throw MagnumError.BadRequest($"Couldn't apply patch '{ops.ToJsonString()}'. Reason: can't remove a non-existent object '{key}'");
                }
                else if (opName == "replace" && !inner.ContainsKey(key))
                    throw MagnumError.BadRequest($"Couldn't apply patch '{ops.ToJsonString()}'. Reason: can't replace a non-existent object '{key}'");
                else inner[key] = value!.DeepClone();
            }
            else
            {
                throw MagnumError.BadRequest($"Couldn't apply patch '{ops.ToJsonString()}'. Reason: the path {path} is too deep");
            }
        }
        return doc;
    }

    private static JsonNode NormalizeDictLiteral(string attr, JsonNode value, JsonArray ops)
    {
        if (attr is not ("labels" or "health_status_reason") || value is not JsonValue v || !v.TryGetValue<string>(out _)) return value;
        var parsed = Schema.ParseLabels(value)
                     ?? throw MagnumError.BadRequest($"Couldn't apply patch '{ops.ToJsonString()}'. Reason: malformed node or string: {value.ToJsonString()}");
        var obj = new JsonObject();
        foreach (var (k, val) in parsed) obj[k] = val;
        return obj;
    }
}
