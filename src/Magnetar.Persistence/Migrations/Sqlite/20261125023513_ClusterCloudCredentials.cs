using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Magnetar.Persistence.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class ClusterCloudCredentials : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "cluster_cloud_credentials",
                columns: table => new
                {
                    Id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    ClusterUuid = table.Column<string>(type: "TEXT", nullable: false),
                    CredentialId = table.Column<string>(type: "TEXT", nullable: false),
                    UserId = table.Column<string>(type: "TEXT", nullable: false),
                    ProtectedSecret = table.Column<string>(type: "TEXT", nullable: false),
                    CreatedAt = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_cluster_cloud_credentials", x => x.Id);
                });

            migrationBuilder.CreateIndex(
                name: "IX_cluster_cloud_credentials_ClusterUuid",
                table: "cluster_cloud_credentials",
                column: "ClusterUuid",
                unique: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "cluster_cloud_credentials");
        }
    }
}
