using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Magnetar.Persistence.Migrations.Postgres
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
                    Id = table.Column<string>(type: "character varying(128)", maxLength: 128, nullable: false),
                    Host = table.Column<string>(type: "character varying(256)", maxLength: 256, nullable: false),
                    Pid = table.Column<int>(type: "integer", nullable: false),
                    Version = table.Column<string>(type: "character varying(256)", maxLength: 256, nullable: false),
                    SchemaNewest = table.Column<string>(type: "character varying(150)", maxLength: 150, nullable: false),
                    SchemaOldest = table.Column<string>(type: "character varying(150)", maxLength: 150, nullable: false),
                    StartedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    HeartbeatAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
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
