#!/usr/bin/env bash
# Service overhead of cluster create/delete against the OpenStack all-in-one (deploy/openstack-aio.sh start first).
# Results are appended to bench/results-openstack.md, Magnetar's log goes to .work/createbench-server.log. Usage: bench/openstack.sh [--counts 1,20]
set -euo pipefail
cd "$(dirname "$0")/.."
env_file=${MAGNETAR_OPENSTACK_ENV:-.work/openstack/env}
deploy/openstack-aio.sh status >/dev/null || { echo "bench/openstack.sh: the all-in-one is not running (deploy/openstack-aio.sh start)" >&2; exit 1; }
# Published as it ships (ReadyToRun, as scripts/package-deb and bench/run.sh do).
dotnet publish -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true src/Magnetar.Server -o .work/bench-server >/dev/null
dotnet build -c Release bench/Magnetar.CreateBench -o .work/createbench-tool >/dev/null
dotnet .work/createbench-tool/Magnetar.CreateBench.dll --server .work/bench-server/magnetar.dll --env "$env_file" --out bench/results-openstack.md \
  --server-log .work/createbench-server.log "$@"
