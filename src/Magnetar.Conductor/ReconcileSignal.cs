namespace Magnetar.Conductor;

/// <summary>
/// Lets the API wake the in-process conductor right after it wrote new desired state, instead of waiting for the
/// next poll. Purely an optimisation: the database remains the queue, so a replica that is not poked still finds
/// the work on its next poll.
/// </summary>
public sealed class ReconcileSignal
{
    private readonly SemaphoreSlim _signal = new(0, 1);

    public void Poke()
    {
        try { _signal.Release(); } catch (SemaphoreFullException) { /* already poked */ }
    }

    public Task<bool> WaitAsync(TimeSpan timeout, CancellationToken ct) => _signal.WaitAsync(timeout, ct);
}
