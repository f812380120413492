#!/usr/bin/env bash
# The Go SDK gophercloud (Debian's golang-github-gophercloud-gophercloud-dev, 0.12, built with Debian's golang-go in
# GOPATH mode: no module downloads) against a Magnetar server started here on a free loopback port, in standalone mode
# (built-in identity, simulated cloud). tests/gophercloud calls every containerinfra function gophercloud has and checks
# what it extracts; its output is printed, and "N passed, M failed" is the last line. Exit status: non-zero on a failure.
# Set MAGNETAR_SERVER_DLL to use a given build; otherwise the one scripts/test builds, or a fresh build into a temp dir.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/magnetar-gophercloud-XXXXXX)
server_pid=
stop_server() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  server_pid=
}
trap 'stop_server; rm -rf "$work"' EXIT
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

fail() { echo "$1" >&2; echo "0 passed, 1 failed"; exit 1; }

command -v go >/dev/null || fail "go is not installed (Debian: golang-go; scripts/test installs it)"
gosrc=/usr/share/gocode/src/github.com/gophercloud/gophercloud
[ -d "$gosrc/openstack/containerinfra" ] || fail "gophercloud is not installed (Debian: golang-github-gophercloud-gophercloud-dev)"

dll=${MAGNETAR_SERVER_DLL:-$root/src/Magnetar.Server/bin/Release/net10.0/magnetar.dll}
if [ ! -f "$dll" ]; then
  dotnet build "$root/src/Magnetar.Server" -c Release -o "$work/server" -nologo -clp:ErrorsOnly >&2
  dll="$work/server/magnetar.dll"
fi

# Build the checks while the server starts. GOPATH mode: Debian's packages under /usr/share/gocode, nothing fetched.
export GO111MODULE=off GOFLAGS="" GOPROXY=off GOPATH="$work/gopath:/usr/share/gocode" GOCACHE="$work/gocache"
(cd "$root/tests/gophercloud" && go build -o "$work/gophercloud-check" .) > "$work/build.log" 2>&1 &
build_pid=$!

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
data="$work/data"
# Standalone mode writes openrc (admin) and openrc-demo (member) into the data dir as it starts.
dotnet "$dll" serve --urls "http://127.0.0.1:$port" --data-dir "$data" --Magnetar:Cloud:Simulated:StepDelayMs=100 \
  --Logging:LogLevel:Default=Warning > "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && [ -f "$data/openrc-demo" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.25
done
if ! curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; then
  echo "Magnetar did not start; server log tail:" >&2; tail -20 "$work/server.log" >&2
  fail "server not ready"
fi
if ! wait "$build_pid"; then
  cat "$work/build.log" >&2
  fail "go build failed"
fi

# The admin account as the OS_* variables; the member account as DEMO_OS_*.
rc_value() { sed -n "s/^export $2=//p" "$1"; }
set +e
(
  for v in OS_AUTH_URL OS_USERNAME OS_PASSWORD OS_PROJECT_NAME OS_USER_DOMAIN_NAME OS_PROJECT_DOMAIN_NAME OS_REGION_NAME; do
    export "$v=$(rc_value "$data/openrc" "$v")"
  done
  OS_DOMAIN_NAME=$(rc_value "$data/openrc" OS_USER_DOMAIN_NAME)
  DEMO_OS_USERNAME=$(rc_value "$data/openrc-demo" OS_USERNAME)
  DEMO_OS_PASSWORD=$(rc_value "$data/openrc-demo" OS_PASSWORD)
  DEMO_OS_PROJECT_NAME=$(rc_value "$data/openrc-demo" OS_PROJECT_NAME)
  export OS_DOMAIN_NAME DEMO_OS_USERNAME DEMO_OS_PASSWORD DEMO_OS_PROJECT_NAME
  timeout 300 "$work/gophercloud-check"
) > "$work/output" 2>&1
rc=$?
set -e
summary=$(tail -n 1 "$work/output")
head -n -1 "$work/output"
if [ $rc -ne 0 ]; then
  echo "server log tail:" >&2; tail -20 "$work/server.log" >&2
fi
# The server is stopped before the summary, so that the summary is the last line.
stop_server
if [[ $summary =~ ^[0-9]+\ passed,\ [0-9]+\ failed$ ]]; then
  echo "$summary"
else
  echo "$summary"
  echo "the Go program ended without its summary (exit status $rc)"
  echo "0 passed, 1 failed"
  [ $rc -ne 0 ] || rc=1
fi
exit $rc
