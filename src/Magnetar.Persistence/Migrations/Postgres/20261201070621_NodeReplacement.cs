using System;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql.EntityFrameworkCore.PostgreSQL.Metadata;

#nullable disable

namespace Magnetar.Persistence.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class NodeReplacement : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "KubeletVersion",
                table: "node_states",
                type: "character varying(64)",
                maxLength: 64,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "KubernetesVersion",
                table: "node_states",
                type: "character varying(64)",
                maxLength: 64,
                nullable: true);

            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "LastSeenAt",
                table: "node_states",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "RetireReason",
                table: "node_states",
                type: "character varying(512)",
                maxLength: 512,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "RetireStep",
                table: "node_states",
                type: "character varying(16)",
                maxLength: 16,
                nullable: true);

            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "RetireStepAt",
                table: "node_states",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "Revision",
                table: "node_states",
                type: "character varying(512)",
                maxLength: 512,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "UnhealthyReason",
                table: "node_states",
                type: "character varying(512)",
                maxLength: 512,
                nullable: true);

            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "UnhealthySince",
                table: "node_states",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "LastHealAt",
                table: "clusters",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "ProgressAt",
                table: "clusters",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "UpgradeMaxBatchSize",
                table: "clusters",
                type: "integer",
                nullable: true);

            migrationBuilder.CreateTable(
                name: "singleton_leases",
                columns: table => new
                {
                    Id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    Name = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    Owner = table.Column<string>(type: "character varying(256)", maxLength: 256, nullable: true),
                    ExpiresAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_singleton_leases", x => x.Id);
                });

            migrationBuilder.CreateIndex(
                name: "IX_singleton_leases_Name",
                table: "singleton_leases",
                column: "Name",
                unique: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "singleton_leases");

            migrationBuilder.DropColumn(
                name: "KubeletVersion",
                table: "node_states");

            migrationBuilder.DropColumn(
                name: "KubernetesVersion",
                table: "node_states");

            migrationBuilder.DropColumn(
                name: "LastSeenAt",
                table: "node_states");

            migrationBuilder.DropColumn(
                name: "RetireReason",
                table: "node_states");

            migrationBuilder.DropColumn(
                name: "RetireStep",
                table: "node_states");

            migrationBuilder.DropColumn(
                name: "RetireStepAt",
                table: "node_states");

            migrationBuilder.DropColumn(
                name: "Revision",
                table: "node_states");

            migrationBuilder.DropColumn(
                name: "UnhealthyReason",
                table: "node_states");

            migrationBuilder.DropColumn(
                name: "UnhealthySince",
                table: "node_states");

            migrationBuilder.DropColumn(
                name: "LastHealAt",
                table: "clusters");

            migrationBuilder.DropColumn(
                name: "ProgressAt",
                table: "clusters");

            migrationBuilder.DropColumn(
                name: "UpgradeMaxBatchSize",
                table: "clusters");
        }
    }
}
