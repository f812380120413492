using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Magnetar.Persistence.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class AutoscalerNodeIds : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "ServerId",
                table: "node_states",
                type: "text",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "ServerStatus",
                table: "node_states",
                type: "text",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "ServerId",
                table: "node_states");

            migrationBuilder.DropColumn(
                name: "ServerStatus",
                table: "node_states");
        }
    }
}
