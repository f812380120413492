#!/usr/bin/env bash
# Runs the API benchmark on SQLite and, when MAGNETAR_TEST_POSTGRES is set (deploy/postgres.sh env), PostgreSQL.
# Results are appended to bench/results.md. Usage: bench/run.sh [--clusters 10000] [--requests 200] [--concurrency 4]
set -euo pipefail
cd "$(dirname "$0")/.."
# Published as it ships (ReadyToRun, as scripts/package-deb does), so that start-to-serving is the package's.
rm -rf .work/bench-server
dotnet publish -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true src/Magnetar.Server -o .work/bench-server >/dev/null
dotnet build -c Release bench/Magnetar.Bench -o .work/bench-tool >/dev/null
dotnet .work/bench-tool/Magnetar.Bench.dll --server .work/bench-server/magnetar.dll --db sqlite --out bench/results.md "$@"
if [ -n "${MAGNETAR_TEST_POSTGRES:-}" ]; then
  dotnet .work/bench-tool/Magnetar.Bench.dll --server .work/bench-server/magnetar.dll --db postgres --out bench/results.md "$@"
fi
