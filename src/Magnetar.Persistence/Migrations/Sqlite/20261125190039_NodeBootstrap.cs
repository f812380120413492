using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Magnetar.Persistence.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class NodeBootstrap : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "UserData",
                table: "simulated_resources",
                type: "TEXT",
                nullable: true);

            migrationBuilder.CreateTable(
                name: "node_credentials",
                columns: table => new
                {
                    Id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    TokenId = table.Column<string>(type: "TEXT", maxLength: 32, nullable: false),
                    SecretHash = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    Kind = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    ClusterUuid = table.Column<string>(type: "TEXT", nullable: false),
                    NodeName = table.Column<string>(type: "TEXT", nullable: false),
                    CreatedAt = table.Column<long>(type: "INTEGER", nullable: false),
                    ExpiresAt = table.Column<long>(type: "INTEGER", nullable: false),
                    UsedAt = table.Column<long>(type: "INTEGER", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_node_credentials", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "node_states",
                columns: table => new
                {
                    Id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    ClusterUuid = table.Column<string>(type: "TEXT", nullable: false),
                    NodeName = table.Column<string>(type: "TEXT", nullable: false),
                    NodeGroup = table.Column<string>(type: "TEXT", nullable: false),
                    Role = table.Column<string>(type: "TEXT", nullable: false),
                    Phase = table.Column<string>(type: "TEXT", maxLength: 32, nullable: false),
                    Failed = table.Column<bool>(type: "INTEGER", nullable: false),
                    ExitCode = table.Column<int>(type: "INTEGER", nullable: true),
                    LogTail = table.Column<string>(type: "TEXT", maxLength: 8192, nullable: true),
                    CreatedAt = table.Column<long>(type: "INTEGER", nullable: false),
                    LastReportAt = table.Column<long>(type: "INTEGER", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_node_states", x => x.Id);
                });

            migrationBuilder.CreateIndex(
                name: "IX_node_credentials_ClusterUuid_NodeName",
                table: "node_credentials",
                columns: new[] { "ClusterUuid", "NodeName" });

            migrationBuilder.CreateIndex(
                name: "IX_node_credentials_TokenId",
                table: "node_credentials",
                column: "TokenId",
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_node_states_ClusterUuid_NodeName",
                table: "node_states",
                columns: new[] { "ClusterUuid", "NodeName" },
                unique: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "node_credentials");

            migrationBuilder.DropTable(
                name: "node_states");

            migrationBuilder.DropColumn(
                name: "UserData",
                table: "simulated_resources");
        }
    }
}
