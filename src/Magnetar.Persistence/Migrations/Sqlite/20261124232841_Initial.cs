using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Magnetar.Persistence.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class Initial : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "cluster_cas",
                columns: table => new
                {
                    Id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    ClusterUuid = table.Column<string>(type: "TEXT", nullable: false),
                    CaType = table.Column<string>(type: "TEXT", nullable: false),
                    CertificatePem = table.Column<string>(type: "TEXT", nullable: false),
                    ProtectedPrivateKey = table.Column<string>(type: "TEXT", nullable: false),
                    CreatedAt = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_cluster_cas", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "cluster_events",
                columns: table => new
                {
                    Id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    ClusterUuid = table.Column<string>(type: "TEXT", nullable: false),
                    At = table.Column<long>(type: "INTEGER", nullable: false),
                    Type = table.Column<string>(type: "TEXT", nullable: false),
                    Reason = table.Column<string>(type: "TEXT", nullable: false),
                    Message = table.Column<string>(type: "TEXT", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_cluster_events", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "cluster_templates",
                columns: table => new
                {
                    Id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    Uuid = table.Column<string>(type: "TEXT", maxLength: 36, nullable: false),
                    Name = table.Column<string>(type: "TEXT", maxLength: 255, nullable: false),
                    ProjectId = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    UserId = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    Coe = table.Column<string>(type: "TEXT", nullable: false),
                    ImageId = table.Column<string>(type: "TEXT", nullable: false),
                    FlavorId = table.Column<string>(type: "TEXT", nullable: true),
                    MasterFlavorId = table.Column<string>(type: "TEXT", nullable: true),
                    DnsNameserver = table.Column<string>(type: "TEXT", nullable: true),
                    KeypairId = table.Column<string>(type: "TEXT", nullable: true),
                    ExternalNetworkId = table.Column<string>(type: "TEXT", nullable: true),
                    FixedNetwork = table.Column<string>(type: "TEXT", nullable: true),
                    FixedSubnet = table.Column<string>(type: "TEXT", nullable: true),
                    NetworkDriver = table.Column<string>(type: "TEXT", nullable: true),
                    VolumeDriver = table.Column<string>(type: "TEXT", nullable: true),
                    ApiserverPort = table.Column<int>(type: "INTEGER", nullable: true),
                    DockerVolumeSize = table.Column<int>(type: "INTEGER", nullable: true),
                    DockerStorageDriver = table.Column<string>(type: "TEXT", nullable: true),
                    ClusterDistro = table.Column<string>(type: "TEXT", nullable: true),
                    HttpProxy = table.Column<string>(type: "TEXT", nullable: true),
                    HttpsProxy = table.Column<string>(type: "TEXT", nullable: true),
                    NoProxy = table.Column<string>(type: "TEXT", nullable: true),
                    RegistryEnabled = table.Column<bool>(type: "INTEGER", nullable: false),
                    TlsDisabled = table.Column<bool>(type: "INTEGER", nullable: false),
                    Public = table.Column<bool>(type: "INTEGER", nullable: false),
                    Hidden = table.Column<bool>(type: "INTEGER", nullable: false),
                    ServerType = table.Column<string>(type: "TEXT", nullable: false),
                    InsecureRegistry = table.Column<string>(type: "TEXT", nullable: true),
                    MasterLbEnabled = table.Column<bool>(type: "INTEGER", nullable: false),
                    FloatingIpEnabled = table.Column<bool>(type: "INTEGER", nullable: false),
                    Tags = table.Column<string>(type: "TEXT", nullable: true),
                    Driver = table.Column<string>(type: "TEXT", nullable: true),
                    Labels = table.Column<string>(type: "TEXT", nullable: false),
                    CreatedAt = table.Column<long>(type: "INTEGER", nullable: false),
                    UpdatedAt = table.Column<long>(type: "INTEGER", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_cluster_templates", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "clusters",
                columns: table => new
                {
                    Id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    Uuid = table.Column<string>(type: "TEXT", maxLength: 36, nullable: false),
                    Name = table.Column<string>(type: "TEXT", maxLength: 255, nullable: false),
                    ProjectId = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    UserId = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    ClusterTemplateId = table.Column<string>(type: "TEXT", nullable: false),
                    Keypair = table.Column<string>(type: "TEXT", nullable: true),
                    DockerVolumeSize = table.Column<int>(type: "INTEGER", nullable: true),
                    Labels = table.Column<string>(type: "TEXT", nullable: false),
                    MasterFlavorId = table.Column<string>(type: "TEXT", nullable: true),
                    FlavorId = table.Column<string>(type: "TEXT", nullable: true),
                    CreateTimeout = table.Column<int>(type: "INTEGER", nullable: false),
                    StackId = table.Column<string>(type: "TEXT", nullable: true),
                    Status = table.Column<string>(type: "TEXT", maxLength: 32, nullable: false),
                    StatusReason = table.Column<string>(type: "TEXT", nullable: true),
                    HealthStatus = table.Column<string>(type: "TEXT", nullable: true),
                    HealthStatusReason = table.Column<string>(type: "TEXT", nullable: true),
                    DiscoveryUrl = table.Column<string>(type: "TEXT", nullable: true),
                    ApiAddress = table.Column<string>(type: "TEXT", nullable: true),
                    CoeVersion = table.Column<string>(type: "TEXT", nullable: true),
                    ContainerVersion = table.Column<string>(type: "TEXT", nullable: true),
                    FixedNetwork = table.Column<string>(type: "TEXT", nullable: true),
                    FixedSubnet = table.Column<string>(type: "TEXT", nullable: true),
                    FloatingIpEnabled = table.Column<bool>(type: "INTEGER", nullable: false),
                    MasterLbEnabled = table.Column<bool>(type: "INTEGER", nullable: false),
                    CreatedAt = table.Column<long>(type: "INTEGER", nullable: false),
                    UpdatedAt = table.Column<long>(type: "INTEGER", nullable: true),
                    Generation = table.Column<long>(type: "INTEGER", nullable: false),
                    ObservedGeneration = table.Column<long>(type: "INTEGER", nullable: false),
                    Operation = table.Column<string>(type: "TEXT", nullable: true),
                    OperationStartedAt = table.Column<long>(type: "INTEGER", nullable: true),
                    LeaseOwner = table.Column<string>(type: "TEXT", nullable: true),
                    LeaseExpiresAt = table.Column<long>(type: "INTEGER", nullable: true),
                    NextReconcileAt = table.Column<long>(type: "INTEGER", nullable: true),
                    Conditions = table.Column<string>(type: "TEXT", nullable: false),
                    UpgradeToTemplateId = table.Column<string>(type: "TEXT", nullable: true),
                    RowVersion = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_clusters", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "magnum_services",
                columns: table => new
                {
                    Id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    Host = table.Column<string>(type: "TEXT", nullable: false),
                    Binary = table.Column<string>(type: "TEXT", nullable: false),
                    Disabled = table.Column<bool>(type: "INTEGER", nullable: false),
                    DisabledReason = table.Column<string>(type: "TEXT", nullable: true),
                    LastSeenUp = table.Column<long>(type: "INTEGER", nullable: true),
                    ForcedDown = table.Column<bool>(type: "INTEGER", nullable: false),
                    ReportCount = table.Column<long>(type: "INTEGER", nullable: false),
                    CreatedAt = table.Column<long>(type: "INTEGER", nullable: false),
                    UpdatedAt = table.Column<long>(type: "INTEGER", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_magnum_services", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "quotas",
                columns: table => new
                {
                    Id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    ProjectId = table.Column<string>(type: "TEXT", nullable: false),
                    Resource = table.Column<string>(type: "TEXT", nullable: false),
                    HardLimit = table.Column<int>(type: "INTEGER", nullable: false),
                    CreatedAt = table.Column<long>(type: "INTEGER", nullable: false),
                    UpdatedAt = table.Column<long>(type: "INTEGER", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_quotas", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "simulated_resources",
                columns: table => new
                {
                    Id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    ClusterUuid = table.Column<string>(type: "TEXT", nullable: false),
                    Kind = table.Column<string>(type: "TEXT", nullable: false),
                    Name = table.Column<string>(type: "TEXT", nullable: false),
                    ResourceId = table.Column<string>(type: "TEXT", nullable: false),
                    NodeGroup = table.Column<string>(type: "TEXT", nullable: true),
                    Status = table.Column<string>(type: "TEXT", nullable: false),
                    Address = table.Column<string>(type: "TEXT", nullable: true),
                    FloatingAddress = table.Column<string>(type: "TEXT", nullable: true),
                    Detail = table.Column<string>(type: "TEXT", nullable: true),
                    CreatedAt = table.Column<long>(type: "INTEGER", nullable: false),
                    ReadyAt = table.Column<long>(type: "INTEGER", nullable: false),
                    DeleteRequestedAt = table.Column<long>(type: "INTEGER", nullable: true),
                    GoneAt = table.Column<long>(type: "INTEGER", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_simulated_resources", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "nodegroups",
                columns: table => new
                {
                    Id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    Uuid = table.Column<string>(type: "TEXT", maxLength: 36, nullable: false),
                    Name = table.Column<string>(type: "TEXT", maxLength: 255, nullable: false),
                    ClusterDbId = table.Column<long>(type: "INTEGER", nullable: false),
                    ClusterId = table.Column<string>(type: "TEXT", nullable: false),
                    ProjectId = table.Column<string>(type: "TEXT", nullable: false),
                    DockerVolumeSize = table.Column<int>(type: "INTEGER", nullable: true),
                    Labels = table.Column<string>(type: "TEXT", nullable: false),
                    FlavorId = table.Column<string>(type: "TEXT", nullable: true),
                    ImageId = table.Column<string>(type: "TEXT", nullable: true),
                    NodeAddresses = table.Column<string>(type: "TEXT", nullable: false),
                    NodeCount = table.Column<int>(type: "INTEGER", nullable: false),
                    Role = table.Column<string>(type: "TEXT", nullable: false),
                    MinNodeCount = table.Column<int>(type: "INTEGER", nullable: false),
                    MaxNodeCount = table.Column<int>(type: "INTEGER", nullable: true),
                    IsDefault = table.Column<bool>(type: "INTEGER", nullable: false),
                    StackId = table.Column<string>(type: "TEXT", nullable: true),
                    Status = table.Column<string>(type: "TEXT", nullable: false),
                    StatusReason = table.Column<string>(type: "TEXT", nullable: true),
                    Version = table.Column<string>(type: "TEXT", nullable: true),
                    NodesToRemove = table.Column<string>(type: "TEXT", nullable: false),
                    DeleteRequested = table.Column<bool>(type: "INTEGER", nullable: false),
                    CreatedAt = table.Column<long>(type: "INTEGER", nullable: false),
                    UpdatedAt = table.Column<long>(type: "INTEGER", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_nodegroups", x => x.Id);
                    table.ForeignKey(
                        name: "FK_nodegroups_clusters_ClusterDbId",
                        column: x => x.ClusterDbId,
                        principalTable: "clusters",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "IX_cluster_cas_ClusterUuid_CaType",
                table: "cluster_cas",
                columns: new[] { "ClusterUuid", "CaType" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_cluster_events_ClusterUuid_Id",
                table: "cluster_events",
                columns: new[] { "ClusterUuid", "Id" });

            migrationBuilder.CreateIndex(
                name: "IX_cluster_templates_ProjectId_Name",
                table: "cluster_templates",
                columns: new[] { "ProjectId", "Name" });

            migrationBuilder.CreateIndex(
                name: "IX_cluster_templates_Uuid",
                table: "cluster_templates",
                column: "Uuid",
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_clusters_ClusterTemplateId",
                table: "clusters",
                column: "ClusterTemplateId");

            migrationBuilder.CreateIndex(
                name: "IX_clusters_NextReconcileAt",
                table: "clusters",
                column: "NextReconcileAt");

            migrationBuilder.CreateIndex(
                name: "IX_clusters_ProjectId_Name",
                table: "clusters",
                columns: new[] { "ProjectId", "Name" },
                unique: true,
                filter: "\"Operation\" IS NULL OR (\"Operation\" <> 'delete' AND \"Status\" <> 'DELETE_FAILED')");

            migrationBuilder.CreateIndex(
                name: "IX_clusters_Uuid",
                table: "clusters",
                column: "Uuid",
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_magnum_services_Host_Binary",
                table: "magnum_services",
                columns: new[] { "Host", "Binary" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_nodegroups_ClusterDbId_Name",
                table: "nodegroups",
                columns: new[] { "ClusterDbId", "Name" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_nodegroups_Uuid",
                table: "nodegroups",
                column: "Uuid",
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_quotas_ProjectId_Resource",
                table: "quotas",
                columns: new[] { "ProjectId", "Resource" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_simulated_resources_ClusterUuid_Kind_Name",
                table: "simulated_resources",
                columns: new[] { "ClusterUuid", "Kind", "Name" },
                unique: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "cluster_cas");

            migrationBuilder.DropTable(
                name: "cluster_events");

            migrationBuilder.DropTable(
                name: "cluster_templates");

            migrationBuilder.DropTable(
                name: "magnum_services");

            migrationBuilder.DropTable(
                name: "nodegroups");

            migrationBuilder.DropTable(
                name: "quotas");

            migrationBuilder.DropTable(
                name: "simulated_resources");

            migrationBuilder.DropTable(
                name: "clusters");
        }
    }
}
