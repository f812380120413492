using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Magnetar.Persistence.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class NodeAgent : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "ControlPlaneCertificatesExpireAt",
                table: "node_states",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "RotationFailure",
                table: "node_states",
                type: "character varying(9216)",
                maxLength: 9216,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "RotationStep",
                table: "node_states",
                type: "character varying(16)",
                maxLength: 16,
                nullable: true);

            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "ServingCertificateExpiresAt",
                table: "node_states",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "CaRotationProgressAt",
                table: "clusters",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "CaRotationStep",
                table: "clusters",
                type: "character varying(16)",
                maxLength: 16,
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "ControlPlaneCertificatesExpireAt",
                table: "node_states");

            migrationBuilder.DropColumn(
                name: "RotationFailure",
                table: "node_states");

            migrationBuilder.DropColumn(
                name: "RotationStep",
                table: "node_states");

            migrationBuilder.DropColumn(
                name: "ServingCertificateExpiresAt",
                table: "node_states");

            migrationBuilder.DropColumn(
                name: "CaRotationProgressAt",
                table: "clusters");

            migrationBuilder.DropColumn(
                name: "CaRotationStep",
                table: "clusters");
        }
    }
}
