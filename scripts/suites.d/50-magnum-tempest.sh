#!/usr/bin/env bash
# Magnum's own API test suite (magnum-tempest-plugin) against a Magnetar server built by scripts/test.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dll="$root/src/Magnetar.Server/bin/Release/net10.0/magnetar.dll"
[ -f "$dll" ] && export MAGNETAR_SERVER_DLL="$dll"
exec "$root/deploy/tempest/run.sh"
