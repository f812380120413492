using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Magnetar.Persistence.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class NodeAgent : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<long>(
                name: "ControlPlaneCertificatesExpireAt",
                table: "node_states",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "RotationFailure",
                table: "node_states",
                type: "TEXT",
                maxLength: 9216,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "RotationStep",
                table: "node_states",
                type: "TEXT",
                maxLength: 16,
                nullable: true);

            migrationBuilder.AddColumn<long>(
                name: "ServingCertificateExpiresAt",
                table: "node_states",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<long>(
                name: "CaRotationProgressAt",
                table: "clusters",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "CaRotationStep",
                table: "clusters",
                type: "TEXT",
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
