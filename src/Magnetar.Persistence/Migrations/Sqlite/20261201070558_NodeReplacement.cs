using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Magnetar.Persistence.Migrations.Sqlite
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
                type: "TEXT",
                maxLength: 64,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "KubernetesVersion",
                table: "node_states",
                type: "TEXT",
                maxLength: 64,
                nullable: true);

            migrationBuilder.AddColumn<long>(
                name: "LastSeenAt",
                table: "node_states",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "RetireReason",
                table: "node_states",
                type: "TEXT",
                maxLength: 512,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "RetireStep",
                table: "node_states",
                type: "TEXT",
                maxLength: 16,
                nullable: true);

            migrationBuilder.AddColumn<long>(
                name: "RetireStepAt",
                table: "node_states",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "Revision",
                table: "node_states",
                type: "TEXT",
                maxLength: 512,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "UnhealthyReason",
                table: "node_states",
                type: "TEXT",
                maxLength: 512,
                nullable: true);

            migrationBuilder.AddColumn<long>(
                name: "UnhealthySince",
                table: "node_states",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<long>(
                name: "LastHealAt",
                table: "clusters",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<long>(
                name: "ProgressAt",
                table: "clusters",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "UpgradeMaxBatchSize",
                table: "clusters",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.CreateTable(
                name: "singleton_leases",
                columns: table => new
                {
                    Id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    Name = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    Owner = table.Column<string>(type: "TEXT", maxLength: 256, nullable: true),
                    ExpiresAt = table.Column<long>(type: "INTEGER", nullable: true)
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
