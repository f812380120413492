using Magnetar.Domain;
using Magnetar.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Magnetar.Tests;

/// <summary>The conductor resumes work after a restart and takes over clusters whose lease holder died.</summary>
public sealed class ConductorTests
{
    [Fact]
    public async Task Restart_mid_create_and_mid_delete_converges()
    {
        var host = await TestHost.StartAsync(Db.Sqlite, settings: new() { ["Magnetar:Cloud:Simulated:StepDelayMs"] = "150" });
        try
        {
            var demo = await host.ClientAsync("demo");
            var t = await Clusters.CreateTemplateAsync(demo, extra: ", \"master_lb_enabled\": true");
            var uuid = await Clusters.CreateClusterAsync(demo, t["uuid"]!.GetValue<string>(), extra: ", \"master_count\": 3, \"node_count\": 2");
            await WaitForResourcesAsync(host, uuid, atLeast: 3);
            host = await host.RestartAsync();
            demo = await host.ClientAsync("demo");
            var done = await Clusters.WaitForStatusAsync(demo, uuid, "CREATE_COMPLETE", 60);
            Assert.Equal(3, done["master_addresses"]!.AsArray().Count);
            Assert.Equal(2, done["node_addresses"]!.AsArray().Count);
            // No duplicates: a pass after the restart adopted what the first run had created.
            await using (var scope = host.App.Services.CreateAsyncScope())
            {
                var db = scope.ServiceProvider.GetRequiredService<MagnetarDbContext>();
                Assert.Equal(5, await db.SimulatedResources.CountAsync(r => r.ClusterUuid == uuid && r.Kind == "server"));
            }

            await demo.DeleteAsync($"/v1/clusters/{uuid}").ExpectAsync(204);
            await Task.Delay(200);
            host = await host.RestartAsync();
            demo = await host.ClientAsync("demo");
            await Clusters.WaitForGoneAsync(demo, uuid, 60);
            await using (var scope = host.App.Services.CreateAsyncScope())
            {
                var db = scope.ServiceProvider.GetRequiredService<MagnetarDbContext>();
                Assert.Equal(0, await db.SimulatedResources.CountAsync(r => r.ClusterUuid == uuid));
            }
        }
        finally { await host.DisposeAsync(); }
    }

    [Fact]
    public async Task A_lease_left_by_a_dead_conductor_expires_and_the_work_is_taken_over()
    {
        var host = await TestHost.StartAsync(Db.Sqlite, settings: new() { ["Magnetar:Conductor:LeaseSeconds"] = "2" });
        try
        {
            var demo = await host.ClientAsync("demo");
            var t = await Clusters.CreateTemplateAsync(demo);
            var uuid = await Clusters.CreateClusterAsync(demo, t["uuid"]!.GetValue<string>());
            await Clusters.WaitForStatusAsync(demo, uuid, "CREATE_COMPLETE");
            // A replica that died while holding the lease: scale request written, lease held for 2 s by "dead".
            await using (var scope = host.App.Services.CreateAsyncScope())
            {
                var db = scope.ServiceProvider.GetRequiredService<MagnetarDbContext>();
                var now = DateTimeOffset.UtcNow;
                var c = await db.Clusters.Include(x => x.NodeGroups).SingleAsync(x => x.Uuid == uuid);
                c.NodeGroups.Single(n => n.Name == "default-worker").NodeCount = 2;
                c.Status = ClusterStatus.UpdateInProgress;
                c.Operation = ClusterOperations.Update;
                c.OperationStartedAt = now;
                c.NextReconcileAt = now;
                c.LeaseOwner = "dead-replica";
                c.LeaseExpiresAt = now.AddSeconds(2);
                await db.SaveChangesAsync();
            }
            var started = DateTime.UtcNow;
            await Task.Delay(1000);
            var mid = await demo.GetAsync($"/v1/clusters/{uuid}").ExpectAsync(200);
            Assert.Equal("UPDATE_IN_PROGRESS", mid["status"]!.GetValue<string>()); // nobody touches it while the lease holds
            var done = await Clusters.WaitForStatusAsync(demo, uuid, "UPDATE_COMPLETE", 20);
            Assert.True(DateTime.UtcNow - started >= TimeSpan.FromSeconds(1.5));
            Assert.Equal(2, done["node_addresses"]!.AsArray().Count);
        }
        finally { await host.DisposeAsync(); }
    }

    private static async Task WaitForResourcesAsync(TestHost host, string uuid, int atLeast)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (DateTime.UtcNow < deadline)
        {
            await using var scope = host.App.Services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<MagnetarDbContext>();
            if (await db.SimulatedResources.CountAsync(r => r.ClusterUuid == uuid) >= atLeast) return;
            await Task.Delay(30);
        }
        throw new Xunit.Sdk.XunitException("the simulated cloud never saw the cluster's resources");
    }
}
