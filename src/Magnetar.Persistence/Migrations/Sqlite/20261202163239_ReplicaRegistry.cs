using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Magnetar.Persistence.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class ReplicaRegistry : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "replicas",
                columns: table => new
                {
                    Id = table.Column<string>(type: "TEXT", maxLength: 128, nullable: false),
                    Host = table.Column<string>(type: "TEXT", maxLength: 256, nullable: false),
                    Pid = table.Column<int>(type: "INTEGER", nullable: false),
                    Version = table.Column<string>(type: "TEXT", maxLength: 256, nullable: false),
                    SchemaNewest = table.Column<string>(type: "TEXT", maxLength: 150, nullable: false),
                    SchemaOldest = table.Column<string>(type: "TEXT", maxLength: 150, nullable: false),
                    StartedAt = table.Column<long>(type: "INTEGER", nullable: false),
                    HeartbeatAt = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_replicas", x => x.Id);
                });

            migrationBuilder.CreateIndex(
                name: "IX_replicas_HeartbeatAt",
                table: "replicas",
                column: "HeartbeatAt");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "replicas");
        }
    }
}
