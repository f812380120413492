using System;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql.EntityFrameworkCore.PostgreSQL.Metadata;

#nullable disable

namespace Magnetar.Persistence.Migrations.Postgres
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
                    Id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    ClusterUuid = table.Column<string>(type: "text", nullable: false),
                    CaType = table.Column<string>(type: "text", nullable: false),
                    CertificatePem = table.Column<string>(type: "text", nullable: false),
                    ProtectedPrivateKey = table.Column<string>(type: "text", nullable: false),
                    CreatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_cluster_cas", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "cluster_events",
                columns: table => new
                {
                    Id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    ClusterUuid = table.Column<string>(type: "text", nullable: false),
                    At = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    Type = table.Column<string>(type: "text", nullable: false),
                    Reason = table.Column<string>(type: "text", nullable: false),
                    Message = table.Column<string>(type: "text", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_cluster_events", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "cluster_templates",
                columns: table => new
                {
                    Id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    Uuid = table.Column<string>(type: "character varying(36)", maxLength: 36, nullable: false),
                    Name = table.Column<string>(type: "character varying(255)", maxLength: 255, nullable: false),
                    ProjectId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    UserId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    Coe = table.Column<string>(type: "text", nullable: false),
                    ImageId = table.Column<string>(type: "text", nullable: false),
                    FlavorId = table.Column<string>(type: "text", nullable: true),
                    MasterFlavorId = table.Column<string>(type: "text", nullable: true),
                    DnsNameserver = table.Column<string>(type: "text", nullable: true),
                    KeypairId = table.Column<string>(type: "text", nullable: true),
                    ExternalNetworkId = table.Column<string>(type: "text", nullable: true),
                    FixedNetwork = table.Column<string>(type: "text", nullable: true),
                    FixedSubnet = table.Column<string>(type: "text", nullable: true),
                    NetworkDriver = table.Column<string>(type: "text", nullable: true),
                    VolumeDriver = table.Column<string>(type: "text", nullable: true),
                    ApiserverPort = table.Column<int>(type: "integer", nullable: true),
                    DockerVolumeSize = table.Column<int>(type: "integer", nullable: true),
                    DockerStorageDriver = table.Column<string>(type: "text", nullable: true),
                    ClusterDistro = table.Column<string>(type: "text", nullable: true),
                    HttpProxy = table.Column<string>(type: "text", nullable: true),
                    HttpsProxy = table.Column<string>(type: "text", nullable: true),
                    NoProxy = table.Column<string>(type: "text", nullable: true),
                    RegistryEnabled = table.Column<bool>(type: "boolean", nullable: false),
                    TlsDisabled = table.Column<bool>(type: "boolean", nullable: false),
                    Public = table.Column<bool>(type: "boolean", nullable: false),
                    Hidden = table.Column<bool>(type: "boolean", nullable: false),
                    ServerType = table.Column<string>(type: "text", nullable: false),
                    InsecureRegistry = table.Column<string>(type: "text", nullable: true),
                    MasterLbEnabled = table.Column<bool>(type: "boolean", nullable: false),
                    FloatingIpEnabled = table.Column<bool>(type: "boolean", nullable: false),
                    Tags = table.Column<string>(type: "text", nullable: true),
                    Driver = table.Column<string>(type: "text", nullable: true),
                    Labels = table.Column<string>(type: "text", nullable: false),
                    CreatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    UpdatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_cluster_templates", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "clusters",
                columns: table => new
                {
                    Id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    Uuid = table.Column<string>(type: "character varying(36)", maxLength: 36, nullable: false),
                    Name = table.Column<string>(type: "character varying(255)", maxLength: 255, nullable: false),
                    ProjectId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    UserId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    ClusterTemplateId = table.Column<string>(type: "text", nullable: false),
                    Keypair = table.Column<string>(type: "text", nullable: true),
                    DockerVolumeSize = table.Column<int>(type: "integer", nullable: true),
                    Labels = table.Column<string>(type: "text", nullable: false),
                    MasterFlavorId = table.Column<string>(type: "text", nullable: true),
                    FlavorId = table.Column<string>(type: "text", nullable: true),
                    CreateTimeout = table.Column<int>(type: "integer", nullable: false),
                    StackId = table.Column<string>(type: "text", nullable: true),
                    Status = table.Column<string>(type: "character varying(32)", maxLength: 32, nullable: false),
                    StatusReason = table.Column<string>(type: "text", nullable: true),
                    HealthStatus = table.Column<string>(type: "text", nullable: true),
                    HealthStatusReason = table.Column<string>(type: "text", nullable: true),
                    DiscoveryUrl = table.Column<string>(type: "text", nullable: true),
                    ApiAddress = table.Column<string>(type: "text", nullable: true),
                    CoeVersion = table.Column<string>(type: "text", nullable: true),
                    ContainerVersion = table.Column<string>(type: "text", nullable: true),
                    FixedNetwork = table.Column<string>(type: "text", nullable: true),
                    FixedSubnet = table.Column<string>(type: "text", nullable: true),
                    FloatingIpEnabled = table.Column<bool>(type: "boolean", nullable: false),
                    MasterLbEnabled = table.Column<bool>(type: "boolean", nullable: false),
                    CreatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    UpdatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    Generation = table.Column<long>(type: "bigint", nullable: false),
                    ObservedGeneration = table.Column<long>(type: "bigint", nullable: false),
                    Operation = table.Column<string>(type: "text", nullable: true),
                    OperationStartedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    LeaseOwner = table.Column<string>(type: "text", nullable: true),
                    LeaseExpiresAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    NextReconcileAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    Conditions = table.Column<string>(type: "text", nullable: false),
                    UpgradeToTemplateId = table.Column<string>(type: "text", nullable: true),
                    RowVersion = table.Column<long>(type: "bigint", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_clusters", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "magnum_services",
                columns: table => new
                {
                    Id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    Host = table.Column<string>(type: "text", nullable: false),
                    Binary = table.Column<string>(type: "text", nullable: false),
                    Disabled = table.Column<bool>(type: "boolean", nullable: false),
                    DisabledReason = table.Column<string>(type: "text", nullable: true),
                    LastSeenUp = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    ForcedDown = table.Column<bool>(type: "boolean", nullable: false),
                    ReportCount = table.Column<long>(type: "bigint", nullable: false),
                    CreatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    UpdatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_magnum_services", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "quotas",
                columns: table => new
                {
                    Id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    ProjectId = table.Column<string>(type: "text", nullable: false),
                    Resource = table.Column<string>(type: "text", nullable: false),
                    HardLimit = table.Column<int>(type: "integer", nullable: false),
                    CreatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    UpdatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_quotas", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "simulated_resources",
                columns: table => new
                {
                    Id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    ClusterUuid = table.Column<string>(type: "text", nullable: false),
                    Kind = table.Column<string>(type: "text", nullable: false),
                    Name = table.Column<string>(type: "text", nullable: false),
                    ResourceId = table.Column<string>(type: "text", nullable: false),
                    NodeGroup = table.Column<string>(type: "text", nullable: true),
                    Status = table.Column<string>(type: "text", nullable: false),
                    Address = table.Column<string>(type: "text", nullable: true),
                    FloatingAddress = table.Column<string>(type: "text", nullable: true),
                    Detail = table.Column<string>(type: "text", nullable: true),
                    CreatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    ReadyAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    DeleteRequestedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    GoneAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_simulated_resources", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "nodegroups",
                columns: table => new
                {
                    Id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    Uuid = table.Column<string>(type: "character varying(36)", maxLength: 36, nullable: false),
                    Name = table.Column<string>(type: "character varying(255)", maxLength: 255, nullable: false),
                    ClusterDbId = table.Column<long>(type: "bigint", nullable: false),
                    ClusterId = table.Column<string>(type: "text", nullable: false),
                    ProjectId = table.Column<string>(type: "text", nullable: false),
                    DockerVolumeSize = table.Column<int>(type: "integer", nullable: true),
                    Labels = table.Column<string>(type: "text", nullable: false),
                    FlavorId = table.Column<string>(type: "text", nullable: true),
                    ImageId = table.Column<string>(type: "text", nullable: true),
                    NodeAddresses = table.Column<string>(type: "text", nullable: false),
                    NodeCount = table.Column<int>(type: "integer", nullable: false),
                    Role = table.Column<string>(type: "text", nullable: false),
                    MinNodeCount = table.Column<int>(type: "integer", nullable: false),
                    MaxNodeCount = table.Column<int>(type: "integer", nullable: true),
                    IsDefault = table.Column<bool>(type: "boolean", nullable: false),
                    StackId = table.Column<string>(type: "text", nullable: true),
                    Status = table.Column<string>(type: "text", nullable: false),
                    StatusReason = table.Column<string>(type: "text", nullable: true),
                    Version = table.Column<string>(type: "text", nullable: true),
                    NodesToRemove = table.Column<string>(type: "text", nullable: false),
                    DeleteRequested = table.Column<bool>(type: "boolean", nullable: false),
                    CreatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    UpdatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true)
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
