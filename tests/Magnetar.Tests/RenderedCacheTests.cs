using System.Text.Json.Nodes;
using Magnetar.Api;
using Magnetar.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Magnetar.Tests;

/// <summary>
/// Rendered cluster lists and shows (<see cref="RenderedCache"/>) are served again only while nothing they show has
/// changed: writes through the API, writes by another replica, and SQL by hand (an older release, an operator) all make
/// them stale at once, through the database's list version (triggers). Bookkeeping writes do not.
/// </summary>
public sealed class RenderedCacheTests
{
    public static TheoryData<string> Databases => new() { "sqlite", "postgres" };

    [Theory]
    [MemberData(nameof(Databases))]
    public async Task Pages_are_served_again_until_a_shown_column_changes_whoever_writes_it(string database)
    {
        await using var host = await TestHost.StartAsync(database == "sqlite" ? Db.Sqlite : Db.Postgres);
        var admin = await host.ClientAsync("admin");
        var cache = host.App.Services.GetRequiredService<RenderedCache>();
        var factory = host.App.Services.GetRequiredService<IDbContextFactory<MagnetarDbContext>>();
        async Task<long> Version()
        {
            await using var db = await factory.CreateDbContextAsync();
            return await db.ListVersions.Where(v => v.Name == ListVersion.Clusters).Select(v => v.Version).SingleAsync();
        }
        async Task Sql(string sql)
        {
            await using var db = await factory.CreateDbContextAsync();
            // ExecuteSqlRaw formats its text: the braces of JSON are escaped.
            Assert.True(await db.Database.ExecuteSqlRawAsync(sql.Replace("{", "{{").Replace("}", "}}")) > 0, sql);
        }

        var t = await Clusters.CreateTemplateAsync(admin);
        var uuid = await Clusters.CreateClusterAsync(admin, t["uuid"]!.GetValue<string>(), extra: ", \"labels\": {\"b\": \"1\"}, \"merge_labels\": true");
        await Clusters.WaitForStatusAsync(admin, uuid, "CREATE_COMPLETE");

        async Task<(JsonNode Summary, JsonNode Detail, JsonNode Show)> Read()
        {
            var list = await admin.GetAsync("/v1/clusters").ExpectAsync(200);
            var detail = await admin.GetAsync("/v1/clusters/detail").ExpectAsync(200);
            var show = await admin.GetAsync($"/v1/clusters/{uuid}").ExpectAsync(200);
            JsonNode Find(JsonNode page) => page["clusters"]!.AsArray().Single(c => c!["uuid"]!.GetValue<string>() == uuid)!;
            return (Find(list), Find(detail), show);
        }

        // 1. Unchanged: the second read of each is served from the cache, and says the same. (The conductor may still be
        //    writing the create's last bookkeeping or health: a pair of reads with a version change between is tried again.)
        for (var attempt = 1; ; attempt++)
        {
            var first = await Read();
            var version0 = await Version();
            var before = cache.Counters;
            var again = await Read();
            if (await Version() != version0 && attempt < 20) { await Task.Delay(200); continue; }
            Assert.Equal(before.Hits + 3, cache.Counters.Hits);
            Assert.True(JsonNode.DeepEquals(first.Show, again.Show));
            Assert.True(JsonNode.DeepEquals(first.Summary, again.Summary));
            break;
        }

        // 2. Bookkeeping the lists do not show (the conductor's schedule) does not bump the version.
        var version = await Version();
        await Sql($"UPDATE clusters SET \"NextReconcileAt\" = NULL, \"ObservedGeneration\" = \"ObservedGeneration\" WHERE \"Uuid\" = '{uuid}'");
        Assert.Equal(version, await Version());

        // 3. SQL by hand on a shown column (what an older replica or an operator may do): every view shows it next time.
        await Sql($"UPDATE clusters SET \"Name\" = 'renamed-by-hand' WHERE \"Uuid\" = '{uuid}'");
        Assert.True(await Version() > version);
        var renamed = await Read();
        Assert.Equal("renamed-by-hand", renamed.Summary["name"]!.GetValue<string>());
        Assert.Equal("renamed-by-hand", renamed.Detail["name"]!.GetValue<string>());
        Assert.Equal("renamed-by-hand", renamed.Show["name"]!.GetValue<string>());
        Assert.Equal("renamed-by-hand", (await admin.GetAsync("/v1/clusters/renamed-by-hand").ExpectAsync(200))["name"]!.GetValue<string>());

        // 4. A nodegroup row, even rewritten with the same value, and a template's labels (the detail's labels_added).
        version = await Version();
        await Sql($"UPDATE nodegroups SET \"NodeCount\" = \"NodeCount\" WHERE \"ClusterId\" = '{uuid}'");
        Assert.True(await Version() > version);
        Assert.Equal("1", renamed.Detail["labels_added"]!["b"]!.GetValue<string>());
        await Sql($"UPDATE cluster_templates SET \"Labels\" = '{{\"kube_tag\":\"v1.31.1\",\"b\":\"0\"}}' WHERE \"Uuid\" = '{t["uuid"]}'");
        var relabelled = await Read();
        Assert.Null(relabelled.Detail["labels_added"]!["b"]);
        Assert.Equal("0", relabelled.Detail["labels_overridden"]!["b"]!.GetValue<string>());

        // 5. Writes through the API: a resize shows its node count, a new nodegroup counts, a delete removes the cluster.
        await admin.PostJson($"/v1/clusters/{uuid}/actions/resize", """{"node_count": 2}""").ExpectAsync(202);
        Assert.Equal(2, (await Read()).Summary["node_count"]!.GetValue<int>());
        await Clusters.WaitForStatusAsync(admin, uuid, "UPDATE_COMPLETE");
        await admin.PostJson($"/v1/clusters/{uuid}/nodegroups", """{"name": "extra", "node_count": 3}""").ExpectAsync(202);
        var grown = await Read();
        Assert.Equal(5, grown.Summary["node_count"]!.GetValue<int>());
        Assert.Equal(5, grown.Show["node_count"]!.GetValue<int>());
        await Clusters.WaitForStatusAsync(admin, uuid, "UPDATE_COMPLETE");
        await admin.DeleteAsync($"/v1/clusters/{uuid}");
        await Clusters.WaitForGoneAsync(admin, uuid);
        var gone = await admin.GetAsync("/v1/clusters").ExpectAsync(200);
        Assert.DoesNotContain(gone["clusters"]!.AsArray(), c => c!["uuid"]!.GetValue<string>() == uuid);
    }

    [Fact]
    public async Task A_replica_serves_what_another_replica_wrote()
    {
        if (TestHost.PostgresConnectionString is null) throw new InvalidOperationException("MAGNETAR_TEST_POSTGRES is not set (scripts/test starts PostgreSQL)");
        var database = "magnetar_test_" + Guid.NewGuid().ToString("N")[..12];
        await using var a = await TestHost.StartAsync(Db.Postgres, pgDatabase: database);
        await using var b = await TestHost.StartAsync(Db.Postgres, dataDir: a.DataDir, pgDatabase: database);
        var onA = await a.ClientAsync("demo");
        var onB = await b.ClientAsync("demo");
        async Task<JsonArray> ListOnA() => (await onA.GetAsync("/v1/clusters").ExpectAsync(200))["clusters"]!.AsArray();
        var cacheA = a.App.Services.GetRequiredService<RenderedCache>();

        var t = await Clusters.CreateTemplateAsync(onB);
        Assert.Empty(await ListOnA());
        await ListOnA();
        var hits = cacheA.Counters.Hits;
        Assert.True(hits > 0, "A's second read of an unchanged list is served from its cache");

        var uuid = await Clusters.CreateClusterAsync(onB, t["uuid"]!.GetValue<string>());
        Assert.Equal(uuid, Assert.Single(await ListOnA())!["uuid"]!.GetValue<string>());
        await Clusters.WaitForStatusAsync(onB, uuid, "CREATE_COMPLETE");
        Assert.Equal("CREATE_COMPLETE", (await onA.GetAsync($"/v1/clusters/{uuid}").ExpectAsync(200))["status"]!.GetValue<string>());
        Assert.Equal("CREATE_COMPLETE", Assert.Single(await ListOnA())!["status"]!.GetValue<string>());

        await onB.PostJson($"/v1/clusters/{uuid}/actions/resize", """{"node_count": 3}""").ExpectAsync(202);
        Assert.Equal(3, Assert.Single(await ListOnA())!["node_count"]!.GetValue<int>());
        await Clusters.WaitForStatusAsync(onA, uuid, "UPDATE_COMPLETE");
        await onB.DeleteAsync($"/v1/clusters/{uuid}");
        await Clusters.WaitForGoneAsync(onB, uuid);
        Assert.Empty(await ListOnA());
        Assert.Equal(404, (int)(await onA.GetAsync($"/v1/clusters/{uuid}")).StatusCode);
    }
}
