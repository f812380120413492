using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Magnetar.Persistence.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class ListVersions : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "list_versions",
                columns: table => new
                {
                    Name = table.Column<string>(type: "character varying(32)", maxLength: 32, nullable: false),
                    Version = table.Column<long>(type: "bigint", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_list_versions", x => x.Name);
                });
            migrationBuilder.InsertData(table: "list_versions", columns: ["Name", "Version"], values: new object[] { ListVersion.Clusters, 0L });
            // Triggers that add a write to this new table only: an older replica's writes fire them and go on as before.
            foreach (var sql in ListVersionTriggers.PostgresUp()) migrationBuilder.Sql(sql);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            foreach (var sql in ListVersionTriggers.PostgresDown()) migrationBuilder.Sql(sql);
            migrationBuilder.DropTable(
                name: "list_versions");
        }
    }
}
