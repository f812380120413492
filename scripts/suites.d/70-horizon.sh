#!/usr/bin/env bash
# Horizon with magnum-ui (scripts/dashboard) against a Magnetar server started here in standalone mode (built-in
# identity, simulated cloud with fast steps), driven in headless Chromium by tests/horizon/horizon_flow.py:
# log in through the form, create a template and a cluster with magnum-ui's forms, watch, resize and delete it.
# Screenshots and both servers' logs go to .work/test-results/horizon. Prints "N passed, M failed" last.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/.work/test-results/horizon"
rm -rf "$out"; mkdir -p "$out"
work=$(mktemp -d /tmp/magnetar-horizon-XXXXXX)
server_pid='' dash_pid='' flow_pid=''
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
  # Only what this suite started: the browser session's process group, Horizon's runserver, the Magnetar server.
  [ -n "$flow_pid" ] && kill -- "-$flow_pid" 2>/dev/null
  [ -n "$dash_pid" ] && kill "$dash_pid" 2>/dev/null
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  wait 2>/dev/null
  cp "$work/server.log" "$work/dashboard.log" "$out/" 2>/dev/null
  rm -rf "$work"
  return 0
}
trap cleanup EXIT
fail() { echo "horizon suite: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

for p in openstack-dashboard python3-magnum-ui chromium chromium-driver python3-selenium; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || fail "package $p is not installed (scripts/test installs it)"
done

dll="$root/src/Magnetar.Server/bin/Release/net10.0/magnetar.dll"
if [ ! -f "$dll" ]; then
  dotnet build "$root/src/Magnetar.Server" -c Release -o "$work/server" -nologo -clp:ErrorsOnly >&2
  dll="$work/server/magnetar.dll"
fi
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
hport=$(free_port)
data="$work/data"

# Magnetar's request log (Hosting.Diagnostics) is what the flow checks for 4xx/5xx answers.
dotnet "$dll" serve --urls "http://127.0.0.1:$port" --data-dir "$data" --Magnetar:Cloud:Simulated:StepDelayMs=100 \
  --Logging:LogLevel:Default=Warning --Logging:LogLevel:Microsoft.AspNetCore.Hosting.Diagnostics=Information \
  > "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && [ -f "$data/openrc-demo" ] && break
  kill -0 "$server_pid" 2>/dev/null || fail "Magnetar exited: $(tail -5 "$work/server.log")"
  sleep 0.25
done
[ -f "$data/openrc-demo" ] || fail "Magnetar wrote no openrc-demo"

MAGNETAR_DASHBOARD_DIR="$work/dashboard" "$root/scripts/dashboard" --port "$hport" --openrc "$data/openrc-demo" \
  > "$work/dashboard.log" 2>&1 &
dash_pid=$!
# The first page compiles Horizon's stylesheets.
for _ in $(seq 1 240); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$hport/auth/login/")" = 200 ] && break
  kill -0 "$dash_pid" 2>/dev/null || fail "scripts/dashboard exited: $(tail -5 "$work/dashboard.log")"
  sleep 0.5
done

pw() { sed -n 's/^export OS_PASSWORD=//p' "$1"; }
set +e
: > "$work/flow.out"
setsid /usr/bin/python3 "$root/tests/horizon/horizon_flow.py" --url "http://127.0.0.1:$hport" \
  --admin-password "$(pw "$data/openrc")" --demo-password "$(pw "$data/openrc-demo")" \
  --magnetar-log "$work/server.log" --out "$out" > "$work/flow.out" 2>&1 &
flow_pid=$!
tail -n +1 -f --pid="$flow_pid" "$work/flow.out" 2>/dev/null
wait "$flow_pid"
rc=$?
flow_pid=
set -e
last=$(grep -v '^\s*$' "$work/flow.out" | tail -n 1)
if ! [[ "$last" =~ ^[0-9]+\ passed,\ [0-9]+\ failed$ ]]; then
  echo "0 passed, 1 failed"
  exit 1
fi
exit $rc
