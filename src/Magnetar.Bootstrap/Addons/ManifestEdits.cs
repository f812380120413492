using System.Reflection;
using System.Text;
using k8s;
using k8s.Models;

namespace Magnetar.Bootstrap.Addons;

/// <summary>
/// The objects of one addon file: pinned upstream documents, of which the ones an edit asks for are materialised as
/// fresh typed objects (the others are written from the per-process cache unchanged), plus objects Magnetar adds.
/// </summary>
internal sealed class ManifestSet
{
    private sealed class Entry(PinnedManifests.CachedDocument? source, IKubernetesObject<V1ObjectMeta>? obj)
    {
        public PinnedManifests.CachedDocument? Source { get; } = source;
        public IKubernetesObject<V1ObjectMeta>? Object { get; set; } = obj;
        public string Kind => Object?.Kind ?? Source!.Kind;

        public IKubernetesObject<V1ObjectMeta> Materialise() =>
            Object ??= (IKubernetesObject<V1ObjectMeta>)KubernetesYaml.LoadAllFromString(Source!.Yaml, strict: true).Single();
    }

    private readonly List<Entry> entries;

    private ManifestSet(List<Entry> entries) => this.entries = entries;

    public static ManifestSet Empty() => new([]);

    public static ManifestSet Load(params IEnumerable<string> paths) =>
        new(paths.SelectMany(PinnedManifests.Documents).Select(d => new Entry(d, null)).ToList());

    /// <summary>The one object of kind <typeparamref name="T"/> with this name (and namespace); throws unless exactly one.</summary>
    public T Get<T>(string name, string? ns = null) where T : class, IKubernetesObject<V1ObjectMeta>
    {
        var kind = typeof(T).GetCustomAttribute<KubernetesEntityAttribute>()?.Kind
            ?? throw new InvalidOperationException($"{typeof(T).Name} is not a Kubernetes entity type.");
        var found = entries.Where(e => e.Kind == kind && Name(e) == name && (ns is null || Namespace(e) == ns)).ToList();
        return found.Count == 1
            ? found[0].Materialise() as T ?? throw new InvalidOperationException($"{kind} {name} did not parse as {typeof(T).Name}.")
            : throw new InvalidOperationException($"Pinned manifest: expected one {kind} {ns}/{name}, found {found.Count}.");
    }

    /// <summary>The pod templates of every DaemonSet and Deployment.</summary>
    public IEnumerable<V1PodSpec> PodSpecs() =>
        entries.Where(e => e.Kind is "DaemonSet" or "Deployment").Select(e => ManifestEdits.PodSpec(e.Materialise())).ToList();

    public void Add(IKubernetesObject<V1ObjectMeta> obj) => entries.Add(new Entry(null, obj));

    /// <summary>The file: a comment header, then each object as its own YAML document.</summary>
    public string ToYaml(string header)
    {
        var sb = new StringBuilder();
        foreach (var line in header.Split('\n')) sb.Append("# ").Append(line).Append('\n');
        foreach (var entry in entries)
        {
            string yaml;
            if (entry.Object is { } o)
            {
                if (string.IsNullOrEmpty(o.ApiVersion) || string.IsNullOrEmpty(o.Kind))
                    throw new InvalidOperationException($"Object {o.Metadata?.Name} has no apiVersion/kind.");
                yaml = KubernetesYaml.Serialize(o);
            }
            else yaml = entry.Source!.Yaml;
            sb.Append("---\n").Append(yaml);
            if (!yaml.EndsWith('\n')) sb.Append('\n');
        }
        return sb.ToString();
    }

    private static string? Name(Entry e) => e.Object?.Metadata?.Name ?? e.Source?.Name;
    private static string? Namespace(Entry e) => e.Object is { } o ? o.Metadata?.NamespaceProperty : e.Source?.Namespace;
}

/// <summary>
/// Edits on parsed upstream objects. Every edit names what it expects to find and throws
/// <see cref="InvalidOperationException"/> when the pinned manifest does not have it, so a version bump that moves
/// something fails the tests instead of silently rendering the upstream default.
/// </summary>
internal static class ManifestEdits
{
    public static IEnumerable<V1Container> AllContainers(V1PodSpec spec) =>
        (spec.InitContainers ?? []).Concat(spec.Containers ?? []);

    public static V1Container Container(V1PodSpec spec, string name) =>
        (spec.Containers ?? []).SingleOrDefault(c => c.Name == name)
        ?? throw new InvalidOperationException($"Pinned manifest: no container '{name}'.");

    public static V1PodSpec PodSpec(IKubernetesObject<V1ObjectMeta> workload) => workload switch
    {
        V1DaemonSet ds => ds.Spec.Template.Spec,
        V1Deployment d => d.Spec.Template.Spec,
        _ => throw new InvalidOperationException($"{workload.Kind} {workload.Metadata.Name} is not a DaemonSet or Deployment."),
    };

    /// <summary>Sets an existing environment variable's value (dropping any valueFrom); throws when it is absent.</summary>
    public static void ReplaceEnv(V1Container container, string name, string value)
    {
        var env = container.Env?.SingleOrDefault(e => e.Name == name)
            ?? throw new InvalidOperationException($"Pinned manifest: container '{container.Name}' has no env {name}.");
        env.Value = value;
        env.ValueFrom = null;
    }

    /// <summary>Adds an environment variable the pinned manifest must not already set.</summary>
    public static void AddEnv(V1Container container, string name, string value)
    {
        container.Env ??= [];
        if (container.Env.Any(e => e.Name == name))
            throw new InvalidOperationException($"Pinned manifest: container '{container.Name}' already sets env {name}.");
        container.Env.Add(new V1EnvVar { Name = name, Value = value });
    }

    public static string Env(V1Container container, string name) =>
        container.Env?.SingleOrDefault(e => e.Name == name)?.Value
        ?? throw new InvalidOperationException($"Pinned manifest: container '{container.Name}' has no env {name} with a value.");

    /// <summary>The tag the pinned manifest gives <paramref name="repository"/>; throws when no container runs it.</summary>
    public static string PinnedTag(ManifestSet set, string repository) =>
        set.PodSpecs().SelectMany(AllContainers).Select(c => ImageReference.Parse(c.Image))
            .Where(i => i.RepositoryEndsWith(repository)).Select(i => i.Tag).FirstOrDefault()
        ?? throw new InvalidOperationException($"Pinned manifest: no container runs a tagged {repository} image.");

    /// <summary>
    /// Gives every container whose image is <paramref name="repository"/> (its path without registry host, e.g.
    /// <c>calico/node</c>) the tag <paramref name="tag"/>; throws when none is found.
    /// </summary>
    public static int Retag(ManifestSet set, string repository, string tag)
    {
        var count = 0;
        foreach (var container in set.PodSpecs().SelectMany(AllContainers))
        {
            var image = ImageReference.Parse(container.Image);
            if (!image.RepositoryEndsWith(repository)) continue;
            container.Image = image.WithTag(tag).ToString();
            count++;
        }
        return count > 0 ? count : throw new InvalidOperationException($"Pinned manifest: no container runs image {repository}.");
    }
}

/// <summary>An OCI image reference split into repository, tag and digest; the registry host stays part of the repository.</summary>
internal readonly record struct ImageReference(string Repository, string? Tag, string? Digest)
{
    public static ImageReference Parse(string? image)
    {
        if (string.IsNullOrWhiteSpace(image)) throw new InvalidOperationException("Pinned manifest: a container has no image.");
        string? digest = null;
        var at = image.IndexOf('@');
        if (at >= 0) { digest = image[(at + 1)..]; image = image[..at]; }
        var slash = image.LastIndexOf('/');
        var colon = image.LastIndexOf(':');
        return colon > slash ? new(image[..colon], image[(colon + 1)..], digest) : new(image, null, digest);
    }

    /// <summary>True when the repository is <paramref name="path"/> or ends with '/' + <paramref name="path"/>.</summary>
    public bool RepositoryEndsWith(string path) =>
        Repository == path || Repository.EndsWith("/" + path, StringComparison.Ordinal);

    /// <summary>The same repository at another tag; a digest is dropped, since it pins the old tag's content.</summary>
    public ImageReference WithTag(string tag) => new(Repository, tag, null);

    public override string ToString() => Repository + (Tag is null ? "" : ":" + Tag) + (Digest is null ? "" : "@" + Digest);
}
