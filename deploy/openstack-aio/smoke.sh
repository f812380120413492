#!/usr/bin/env bash
# Smoke test of a running OpenStack all-in-one (deploy/openstack-aio.sh start), through the openstack CLI as a tenant
# would use it: as the demo user, a network, subnet, router (gateway on "public"), security group, anti-affinity
# server group, two servers with user-data, a load balancer (listener, pool, member), a floating IP on its VIP, a
# volume; then deletes all of it and checks that nothing with the run's names is left.
#   deploy/openstack-aio/smoke.sh [STATE_DIR]        (default STATE_DIR: .work/openstack)
# One line per check; the last line is "N passed, M failed"; exit status 1 when a check failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
state=$(realpath -m "${1:-$root/.work/openstack}")
[ -f "$state/env" ] && [ -f "$state/openrc-demo" ] || { echo "smoke: no $state/env — is the all-in-one started?" >&2; exit 2; }
set -a; . "$state/env"; set +a
. "$state/openrc-demo"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export HOME=$tmp   # the CLI's caches
p=smoke-$$         # every object's name starts with this
passed=0 failed=0

ok() { echo "ok   - $1"; passed=$((passed + 1)); }
nok() { echo "FAIL - $1${2:+: $2}"; failed=$((failed + 1)); }
# check DESCRIPTION COMMAND...: passes when COMMAND succeeds; its output is kept in $tmp/out.
check() {
  local d=$1; shift
  if "$@" >"$tmp/out" 2>&1; then ok "$d"; else nok "$d" "$(grep -v '^$' "$tmp/out" | tail -1)"; fi
}
# expect DESCRIPTION WANT COMMAND...: passes when COMMAND prints WANT (trimmed).
expect() {
  local d=$1 want=$2 got; shift 2
  got=$("$@" 2>&1 | tr -d '\r' | sed -e 's/[[:space:]]*$//') || true
  if [ "$got" = "$want" ]; then ok "$d"; else nok "$d" "expected '$want', got '$(tail -1 <<<"$got")'"; fi
}
os() { openstack "$@"; }
admin() { ( . "$state/openrc-admin"; openstack "$@" ); }
# wait_status KIND NAME WANT [SECONDS]: polls "openstack KIND show NAME -c status" until WANT (or ERROR/error).
wait_status() {
  local kind=$1 name=$2 want=$3 s=""
  for _ in $(seq 1 "${4:-60}"); do
    s=$(os $kind show "$name" -f value -c status 2>/dev/null)
    [ "$s" = "$want" ] && return 0
    case $s in ERROR|error) break ;; esac
    sleep 1
  done
  echo "status $s" >&2; return 1
}

start=$SECONDS
# ---- network
check "network create" os network create "$p-net"
check "subnet create" os subnet create --network "$p-net" --subnet-range 10.199.0.0/24 "$p-subnet"
check "router create" os router create "$p-router"
check "router gateway on public" os router set --external-gateway "$PUBLIC_NETWORK" "$p-router"
check "router interface on the subnet" os router add subnet "$p-router" "$p-subnet"
check "security group create" os security group create "$p-sg"
check "security group rule (tcp 6443)" os security group rule create --protocol tcp --dst-port 6443 "$p-sg"
check "server group create (anti-affinity)" os server group create --policy anti-affinity "$p-group"
group_id=$(os server group show "$p-group" -f value -c id 2>/dev/null)

# ---- two servers, a volume and a load balancer, created concurrently
printf '#cloud-config\n# %s\n' "$p" > "$tmp/user-data"
for i in 1 2; do
  os server create --flavor m1.tiny --image "$FEDORA_COREOS_IMAGE_ID" --network "$p-net" --security-group "$p-sg" \
    --hint group="$group_id" --user-data "$tmp/user-data" "$p-server-$i" >"$tmp/server-$i.out" 2>&1 &
done
os volume create --size 1 --property smoke="$p" "$p-volume" >"$tmp/volume.out" 2>&1 &
os loadbalancer create --name "$p-lb" --vip-subnet-id "$p-subnet" --wait >"$tmp/lb.out" 2>&1 &
wait
for i in 1 2; do
  if wait_status server "$p-server-$i" ACTIVE 90 2>"$tmp/err"; then ok "server $i ACTIVE"; else nok "server $i ACTIVE" "$(cat "$tmp/server-$i.out" "$tmp/err" | tail -1)"; fi
done
expect "server 1 port ACTIVE" ACTIVE os port list --server "$p-server-1" -f value -c Status
# User-data is kept by Nova and readable (base64) at microversion 2.3+ — by an admin (Nova's default policy).
expect "server 2 user-data read back" "$(base64 -w0 "$tmp/user-data")" \
  admin server show --os-compute-api-version 2.3 -f value -c OS-EXT-SRV-ATTR:user_data "$(os server show "$p-server-2" -f value -c id 2>/dev/null)"
expect "both servers in the server group" 2 bash -c "openstack server group show '$p-group' -f json -c members | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[\"members\"]))'"
if wait_status volume "$p-volume" available 60 2>"$tmp/err"; then ok "volume available"; else nok "volume available" "$(cat "$tmp/volume.out" "$tmp/err" | tail -1)"; fi
expect "load balancer ACTIVE" ACTIVE os loadbalancer show "$p-lb" -f value -c provisioning_status
check "listener TCP 6443" os loadbalancer listener create --name "$p-listener" --protocol TCP --protocol-port 6443 --wait "$p-lb"
check "pool" os loadbalancer pool create --name "$p-pool" --listener "$p-listener" --protocol TCP --lb-algorithm ROUND_ROBIN --wait
member_ip=$(os server show "$p-server-1" -f json -c addresses 2>/dev/null | grep -oE '10\.199\.0\.[0-9]+' | head -1)
check "member (server 1, $member_ip)" os loadbalancer member create --name "$p-member" --subnet-id "$p-subnet" \
  --address "${member_ip:-10.199.0.99}" --protocol-port 6443 --wait "$p-pool"
vip_port=$(os loadbalancer show "$p-lb" -f value -c vip_port_id 2>/dev/null)
check "floating IP on the VIP port" os floating ip create --port "$vip_port" --description "$p" -f value -c id "$PUBLIC_NETWORK"
fip=$(cat "$tmp/out")

# ---- delete everything (independent deletes concurrently)
bg() { local n=$1; shift; ( "$@" >"$tmp/$n.out" 2>&1; echo $? >"$tmp/$n.rc" ) & }
report() { if [ "$(cat "$tmp/$1.rc" 2>/dev/null)" = 0 ]; then ok "$2"; else nok "$2" "$(grep -v '^$' "$tmp/$1.out" | tail -1)"; fi; }
[ -n "$fip" ] && bg fip os floating ip delete "$fip"
bg lb os loadbalancer delete --cascade --wait "$p-lb"
bg servers os server delete --wait "$p-server-1" "$p-server-2"
bg volume os volume delete "$p-volume"
wait
[ -n "$fip" ] && report fip "floating IP delete"
report lb "load balancer delete (cascade)"
report servers "servers delete"
report volume "volume delete"
bg group os server group delete "$p-group"
bg sg os security group delete "$p-sg"
bg rif os router remove subnet "$p-router" "$p-subnet"
wait
report group "server group delete"
report sg "security group delete"
report rif "router interface remove"
check "router delete" os router delete "$p-router"
check "network delete" os network delete "$p-net"

# ---- nothing left with the run's names (volumes are deleted asynchronously: give them a few seconds)
for _ in $(seq 1 20); do os volume list -f value -c Name | grep -q "^$p" || break; sleep 1; done
i=0
for what in "server list -c Name" "volume list -c Name" "loadbalancer list -c name" "network list -c Name" \
            "subnet list -c Name" "router list -c Name" "security group list -c Name" "server group list -c Name" \
            "port list -c Name" "floating ip list --long -c Description"; do
  # shellcheck disable=SC2086
  ( os $what -f value >"$tmp/left-$i" 2>&1 || echo "($what failed)" >>"$tmp/left-$i" ) &
  i=$((i + 1))
done
wait
left=$(cat "$tmp"/left-* | grep -e "$p" -e "failed)")
if [ -z "$left" ]; then ok "nothing left"; else nok "nothing left" "$(echo $left)"; fi

echo "($((SECONDS - start)) s)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
