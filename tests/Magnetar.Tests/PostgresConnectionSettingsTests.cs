using Magnetar.Persistence;
using Npgsql;

namespace Magnetar.Tests;

/// <summary>The Npgsql settings Magnetar adds to an operator's PostgreSQL connection string, and what it leaves alone.</summary>
public sealed class PostgresConnectionSettingsTests
{
    [Fact]
    public void Prepared_statements_and_no_reset_are_added_unless_the_operator_named_them()
    {
        var tuned = new NpgsqlConnectionStringBuilder(PersistenceServiceCollectionExtensions.Tuned("Host=db;Username=magnetar;Database=magnetar"));
        Assert.Equal(32, tuned.MaxAutoPrepare);
        Assert.True(tuned.NoResetOnClose);
        Assert.Equal("db", tuned.Host);

        // An operator's own choice wins, under either spelling Npgsql accepts, even when it is Npgsql's default.
        var own = new NpgsqlConnectionStringBuilder(PersistenceServiceCollectionExtensions.Tuned("Host=db;Max Auto Prepare=0;NoResetOnClose=false"));
        Assert.Equal(0, own.MaxAutoPrepare);
        Assert.False(own.NoResetOnClose);
        var spaced = new NpgsqlConnectionStringBuilder(PersistenceServiceCollectionExtensions.Tuned("Host=db;maxautoprepare=5;no reset on close=false"));
        Assert.Equal(5, spaced.MaxAutoPrepare);
        Assert.False(spaced.NoResetOnClose);
    }
}
