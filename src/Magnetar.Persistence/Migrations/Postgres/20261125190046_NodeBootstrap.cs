using System;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql.EntityFrameworkCore.PostgreSQL.Metadata;

#nullable disable

namespace Magnetar.Persistence.Migrations.Postgres
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
                type: "text",
                nullable: true);

            migrationBuilder.CreateTable(
                name: "node_credentials",
                columns: table => new
                {
                    Id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    TokenId = table.Column<string>(type: "character varying(32)", maxLength: 32, nullable: false),
                    SecretHash = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    Kind = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    ClusterUuid = table.Column<string>(type: "text", nullable: false),
                    NodeName = table.Column<string>(type: "text", nullable: false),
                    CreatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    ExpiresAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    UsedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_node_credentials", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "node_states",
                columns: table => new
                {
                    Id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    ClusterUuid = table.Column<string>(type: "text", nullable: false),
                    NodeName = table.Column<string>(type: "text", nullable: false),
                    NodeGroup = table.Column<string>(type: "text", nullable: false),
                    Role = table.Column<string>(type: "text", nullable: false),
                    Phase = table.Column<string>(type: "character varying(32)", maxLength: 32, nullable: false),
                    Failed = table.Column<bool>(type: "boolean", nullable: false),
                    ExitCode = table.Column<int>(type: "integer", nullable: true),
                    LogTail = table.Column<string>(type: "character varying(8192)", maxLength: 8192, nullable: true),
                    CreatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    LastReportAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true)
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
