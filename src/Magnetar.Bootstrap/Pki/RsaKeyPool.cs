using System.Collections.Concurrent;
using System.Security.Cryptography;

namespace Magnetar.Bootstrap.Pki;

/// <summary>
/// RSA-2048 keys made ahead of need. A cluster costs four of them (its CA, the etcd and front-proxy CAs, the
/// service-account key: ≈ 130–200 ms of CPU each, bench/results-pki.md), and the first is made inside
/// <c>POST /v1/clusters</c>. Kubernetes' CAs stay RSA — kubeadm's default, what every client and the older kubeadm
/// releases Magnetar bootstraps accept — but their generation moves out of the request: a background filler keeps up to
/// <see cref="Target"/> keys in memory and <see cref="Take"/> hands one out, or makes one at once when the pool is empty.
/// A pooled key is used once and never written anywhere before it is taken; the pool dies with the process.
/// </summary>
public sealed class RsaKeyPool
{
    /// <summary>The pool <see cref="ClusterPki"/> draws from. Empty, and never filled, until something calls <see cref="Start"/>.</summary>
    public static RsaKeyPool Shared { get; } = new();

    private readonly ConcurrentQueue<RSA> keys = new();
    private readonly SemaphoreSlim wake = new(0, int.MaxValue);
    private int started;
    private long taken, missed, made;

    /// <summary>Keys kept ready (0 turns the pool off: every key is made when it is needed).</summary>
    public int Target { get; private set; }

    public int Available => keys.Count;

    /// <summary>Keys handed out from the pool, and keys that had to be made in the caller's time because it was empty.</summary>
    public (long Taken, long Missed, long Made) Counters => (Interlocked.Read(ref taken), Interlocked.Read(ref missed), Interlocked.Read(ref made));

    /// <summary>A key of 2048 bits, the caller's to dispose.</summary>
    public RSA Take()
    {
        if (keys.TryDequeue(out var key))
        {
            Interlocked.Increment(ref taken);
            wake.Release();
            return key;
        }
        Interlocked.Increment(ref missed);
        if (Target > 0) wake.Release();
        return RSA.Create(2048);
    }

    /// <summary>
    /// Starts the one filler thread of the process (later calls only raise the target). It waits <paramref name="delay"/>
    /// first, so that a starting server does not spend its first seconds on keys; once the pool is full it sleeps until
    /// a key is taken. It is a background thread: it ends with the process.
    /// </summary>
    public void Start(int target, TimeSpan delay)
    {
        if (target <= 0) return;
        lock (keys) Target = Math.Max(Target, target);
        if (Interlocked.Exchange(ref started, 1) == 1) { wake.Release(); return; }
        new Thread(() => Fill(delay)) { IsBackground = true, Name = "rsa-key-pool", Priority = ThreadPriority.BelowNormal }.Start();
    }

    private void Fill(TimeSpan delay)
    {
        if (delay > TimeSpan.Zero) Thread.Sleep(delay);
        while (true)
        {
            while (keys.Count < Target)
            {
                keys.Enqueue(Generate());
                Interlocked.Increment(ref made);
            }
            wake.Wait();
        }
    }

    private static RSA Generate()
    {
        var key = RSA.Create(2048);
        // RSA.Create defers generation on some platforms until the key is first used: make it now, on this thread.
        _ = key.ExportParameters(false);
        return key;
    }
}
