using System.Collections.Concurrent;
using System.Reflection;
using System.Text;
using k8s;
using k8s.Models;
using YamlDotNet.RepresentationModel;

namespace Magnetar.Bootstrap.Addons;

/// <summary>
/// The upstream manifests pinned under Addons/Manifests/ (embedded resources), read as text or as typed Kubernetes
/// objects. Paths use '/' whatever the build machine's separator was (the resource names carry MSBuild's RecursiveDir).
/// </summary>
public static class PinnedManifests
{
    private const string Prefix = "Magnetar.Bootstrap.Addons.";
    private static readonly Assembly Assembly = typeof(PinnedManifests).Assembly;

    private static readonly Lazy<IReadOnlyDictionary<string, string>> Resources = new(() =>
        Assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith(Prefix, StringComparison.Ordinal))
            .ToDictionary(n => n[Prefix.Length..].Replace('\\', '/'), n => n, StringComparer.Ordinal));

    /// <summary>Every pinned file, e.g. <c>calico/v3.29.7/calico.yaml</c>.</summary>
    public static IReadOnlyCollection<string> Paths => Resources.Value.Keys.Order(StringComparer.Ordinal).ToList();

    /// <summary>The pinned file's text, exactly as taken from upstream.</summary>
    public static string ReadText(string path)
    {
        if (!Resources.Value.TryGetValue(path, out var resource))
            throw new InvalidOperationException($"Pinned addon manifest '{path}' is not embedded in {Assembly.GetName().Name}.");
        using var stream = Assembly.GetManifestResourceStream(resource)!;
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }

    /// <summary>
    /// The pinned file as typed objects, parsed strictly (an unknown field or kind throws), with <c>v1/List</c> documents
    /// expanded into their items. Each call returns new objects, free to edit.
    /// </summary>
    public static List<IKubernetesObject<V1ObjectMeta>> Load(string path)
    {
        var text = ReadText(path);
        try
        {
            return KubernetesYaml.LoadAllFromString(ExpandLists(text), strict: true)
                .Select(o => o as IKubernetesObject<V1ObjectMeta>
                    ?? throw new InvalidOperationException($"{o.GetType().Name} has no object metadata"))
                .ToList();
        }
        catch (Exception e) when (e is not InvalidOperationException)
        {
            throw new InvalidOperationException($"Pinned addon manifest '{path}' does not parse into Kubernetes objects: {e.Message}", e);
        }
    }

    /// <summary>One object of a pinned file: its identity and its YAML as KubernetesClient writes it after a strict parse.</summary>
    internal sealed record CachedDocument(string Kind, string? Namespace, string Name, string Yaml);

    private static readonly ConcurrentDictionary<string, Lazy<IReadOnlyList<CachedDocument>>> Cache = new(StringComparer.Ordinal);

    /// <summary>
    /// The pinned file parsed once per process (Calico's CRDs alone are 300 KB): renders copy the objects they edit
    /// from these documents and write the others' cached YAML unchanged.
    /// </summary>
    internal static IReadOnlyList<CachedDocument> Documents(string path) =>
        Cache.GetOrAdd(path, p => new Lazy<IReadOnlyList<CachedDocument>>(() => Load(p)
            .Select(o => new CachedDocument(o.Kind, o.Metadata.NamespaceProperty, o.Metadata.Name, KubernetesYaml.Serialize(o)))
            .ToList())).Value;

    /// <summary>
    /// The YAML stream with every <c>kind: List</c> document replaced by one document per item; unchanged when it has
    /// none. (KubernetesClient knows no <c>v1/List</c> type.)
    /// </summary>
    internal static string ExpandLists(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        if (!stream.Documents.Any(IsList)) return yaml;

        var output = new YamlStream();
        foreach (var document in stream.Documents)
        {
            if (!IsList(document)) { output.Add(document); continue; }
            var items = ((YamlMappingNode)document.RootNode).Children.TryGetValue(new YamlScalarNode("items"), out var node) ? node : null;
            if (items is not YamlSequenceNode sequence)
                throw new InvalidOperationException("A kind: List document has no items sequence.");
            foreach (var item in sequence.Children) output.Add(new YamlDocument(item));
        }
        var writer = new StringWriter();
        output.Save(writer, assignAnchors: false);
        return writer.ToString();
    }

    private static bool IsList(YamlDocument document) =>
        document.RootNode is YamlMappingNode root
        && root.Children.TryGetValue(new YamlScalarNode("kind"), out var kind) && kind is YamlScalarNode { Value: "List" }
        && root.Children.TryGetValue(new YamlScalarNode("apiVersion"), out var api) && api is YamlScalarNode { Value: "v1" };
}
