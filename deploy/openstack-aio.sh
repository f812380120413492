#!/usr/bin/env bash
# An OpenStack all-in-one on 127.0.0.1 from Debian bookworm's (Zed) packages, for Magnetar's integration tests
# and for trying Magnetar against a real cloud. Everything (config files, databases, keys, logs, pid files) lives in
# STATE_DIR; nothing under /etc is used and no Debian service is started.
#   deploy/openstack-aio.sh start|stop|status [STATE_DIR]      (default STATE_DIR: .work/openstack)
#   deploy/openstack-aio.sh packages                         the Debian packages it needs, one per line
#
# What runs (every process from STATE_DIR's configs, loopback only; findings and numbers in deploy/openstack-aio/NOTES.md):
#   PostgreSQL 15 (deploy/postgres.sh; every service's database)   127.0.0.1:55442
#   RabbitMQ (private node "aio")                                   127.0.0.1:55672 (Erlang distribution 55673, epmd 4369)
#   Keystone (deploy/keystone.sh, uwsgi)                            127.0.0.1:35357  /v3
#   Placement (uwsgi)                                               127.0.0.1:38778
#   Glance API (file store; images fedora-coreos-40, ubuntu-24.04)  127.0.0.1:39292
#   Nova API (uwsgi), conductor, scheduler, compute (fake virt driver: servers go ACTIVE, nothing boots; one host,
#     so anti-affinity server groups are accepted but not enforced)  127.0.0.1:38774  /v2.1
#   Neutron server (ML2 flat/vxlan, no agents; ports bound by deploy/openstack-aio/pylib; routers, floating IPs;
#     external network "public" 172.24.4.0/24)                      127.0.0.1:39696
#   Octavia API (uwsgi, amphora provider) and worker (no-op amphora/compute drivers: load balancers go ACTIVE,
#     no amphora VM)                                                127.0.0.1:39876
#   Cinder API (uwsgi), scheduler, volume (fake driver, backend and default type "fake": volumes go "available",
#     no storage; boot from volume works)                           127.0.0.1:38776  /v3/%(project_id)s
# Catalog also has "magnum" (container-infra) at http://127.0.0.1:9511/v1, Magnetar's own port (not started here).
# Seeds: projects admin/service/demo; users admin, demo (member, load-balancer_member), demo-reader (reader) and
# magnetar (admin on project service, like Magnum's service user: it validates tenants' tokens); flavors m1.*;
# large demo quotas. Writes STATE_DIR/openrc-admin, STATE_DIR/openrc-demo and STATE_DIR/env (credentials, public
# network and image ids, for tests). "start" on a running all-in-one only starts what is down (configs are rewritten
# only for services that are started). "stop" ends exactly the processes it started (process groups from pid files).
# Check a running all-in-one with deploy/openstack-aio/smoke.sh.
set -euo pipefail
# The services run Python under uwsgi, which reads config files in the locale's encoding (ASCII under CI's bare
# C locale, where the configs' UTF-8 comments failed Nova's API at start): UTF-8 always.
export LANG=C.UTF-8 LC_ALL=C.UTF-8
cmd=${1:-status}
root=$(cd "$(dirname "$0")/.." && pwd)
state=$(realpath -m "${2:-$root/.work/openstack}")
export MAGNETAR_PG_PORT=55442 MAGNETAR_KEYSTONE_PORT=35357
rmq_port=55672
placement_port=38778
glance_port=39292
nova_port=38774
neutron_port=39696
octavia_port=39876
cinder_port=38776
magnum_port=9511
py=/usr/bin/python3   # Debian's interpreter: the OpenStack modules live in its dist-packages
pylib=$root/deploy/openstack-aio/pylib   # this all-in-one's drivers (ML2, Nova scheduler filter, Octavia network, Cinder volume)
host_name=aio          # Nova compute host, Neutron binding host, Cinder volume host

packages=(python3-openstackclient python3-octaviaclient python3-cinderclient python3-psycopg2
  python3-placement python3-glance python3-nova python3-neutron python3-octavia python3-cinder
  placement-common glance-common nova-common neutron-common octavia-common cinder-common
  rabbitmq-server uwsgi-plugin-python3 keystone postgresql openssl curl)

ensure_installed() {
  local missing
  missing=$(dpkg-query -W -f='${Status} ${Package}\n' "${packages[@]}" 2>&1 | awk '!/ok installed/ {print $NF}' || true)
  [ -z "$missing" ] && return
  echo "openstack-aio: installing" $missing >&2
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  rm -f /usr/sbin/policy-rc.d
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
# wait_http URL [SECONDS] [PIDFILE...]: until URL answers 2xx, for at most SECONDS (wall clock), giving up at once when a
# named process has died (its log then says why; waiting longer would not help).
wait_http() {
  local url=$1 deadline=$((SECONDS + ${2:-60})) f; shift; shift || true
  while [ $SECONDS -lt $deadline ]; do
    curl -sf --max-time 5 -o /dev/null "$url" && return 0
    for f in "$@"; do pid_alive "$f" || return 2; done
    sleep 0.25
  done
  return 1
}
# show_logs FILE|DIR...: the last lines of each log, so that a start failing on a machine we cannot log into (CI) says why.
show_logs() {
  local f
  for f in $(find "$@" -maxdepth 1 -type f \( -name '*.log' -o -name '*.out' \) 2>/dev/null | sort); do
    echo "---- last lines of $f" >&2; tail -n 30 "$f" >&2
  done
}
# wait_service NAME URL SECONDS LOGDIR START_FN PIDFILE...: waits for a service's API; when it does not answer (died, or
# still not answering after SECONDS on a loaded machine) its logs are shown, it is stopped and started once more, and
# waited for again before the start is given up.
wait_service() {
  local name=$1 url=$2 secs=$3 logdir=$4 start_fn=$5 rc; shift 5
  wait_http "$url" "$secs" "$@" && return 0 || rc=$?
  echo "openstack-aio: $name did not answer at $url ($([ $rc -eq 2 ] && echo "a process died" || echo "${secs} s")); its logs:" >&2
  show_logs "$logdir"
  echo "openstack-aio: starting $name once more" >&2
  stop_groups "$@"
  "$start_fn" || die "$name failed to start again ($logdir)"
  wait_http "$url" "$secs" "$@" || { show_logs "$logdir"; die "$name did not start ($logdir)"; }
}
die() { echo "openstack-aio: $*" >&2; exit 1; }
step() { echo "openstack-aio: [$SECONDS s] $*" >&2; }
# quiet LOG CMD...: CMD's output (the manage tools' warnings and tracebacks) goes to LOG, shown when CMD fails.
quiet() { local log=$1; shift; "$@" >>"$log" 2>&1 || { tail -20 "$log" >&2; die "failed: $* (log: $log)"; }; }

# spawn PIDFILE LOG DIR CMD...: runs CMD in its own session (so its pid is its process group: stop signals the whole
# group, workers included), unless the pid file names a live process.
spawn() {
  local pidf=$1 log=$2 dir=$3; shift 3
  pid_alive "$pidf" && return 0
  ( cd "$dir" && exec setsid "$@" ) >"$log" 2>&1 </dev/null &
  echo $! > "$pidf"
}
# stop_groups PIDFILE...: TERM to each process group (to the process alone if it leads none), all at once (OpenStack
# services take 2-10 s to shut down gracefully), KILL to whatever is left after 10 s.
stop_groups() {
  local f t targets=()
  for f in "$@"; do
    [ -f "$f" ] || continue
    t=$(cat "$f"); rm -f "$f"
    kill -0 -- "-$t" 2>/dev/null && t=-$t
    kill -TERM -- "$t" 2>/dev/null && targets+=("$t")
  done
  local alive=("${targets[@]}")
  for _ in $(seq 1 40); do
    targets=("${alive[@]}"); alive=()
    for t in "${targets[@]}"; do kill -0 -- "$t" 2>/dev/null && alive+=("$t"); done
    [ ${#alive[@]} -eq 0 ] && return 0
    sleep 0.25
  done
  for t in "${alive[@]}"; do kill -KILL -- "$t" 2>/dev/null || true; done
}
# uwsgi_app PIDFILE LOG PORT WSGI_FILE [uwsgi options...]: a WSGI API behind uwsgi's HTTP router (keep-alive, so
# keystoneauth clients do not see reset connections), one worker.
uwsgi_app() {
  local pidf=$1 log=$2 port=$3 wsgi=$4; shift 4
  spawn "$pidf" "$log" "$(dirname "$pidf")" uwsgi --plugins http,python3 --http "127.0.0.1:$port" --http-keepalive \
    --http-auto-chunked --wsgi-file "$wsgi" --processes 1 --threads 1 --master --die-on-term --disable-logging --lazy-apps "$@"
}
# py_daemon PIDFILE LOGDIR MODULE NAME CONF [PYTHONPATH]: an OpenStack service's console main() from Debian's python3
# (the python3-* packages ship the modules; their service packages would also pull in init scripts or hypervisors).
# Logs: LOGDIR/NAME.log (oslo.log; named explicitly, it would be "<string>.log" for "python3 -c"), LOGDIR/NAME.out.
# (No .pyc files: they would land in deploy/openstack-aio/pylib, inside the repository.)
py_daemon() {
  local pidf=$1 logdir=$2 module=$3 name=$4 conf=$5 pp=${6:-}
  spawn "$pidf" "$logdir/$name.out" "$(dirname "$pidf")" env PYTHONPATH="$pp" PYTHONDONTWRITEBYTECODE=1 $py -c \
    "import sys; sys.argv[0]='$name'; from $module import main; sys.exit(main())" --config-file "$conf" --log-file "$logdir/$name.log"
}

# ---------------------------------------------------------------- RabbitMQ (private node, loopback only)
rmq_vars() {
  echo HOME="$state/rabbitmq" RABBITMQ_NODENAME=aio@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT=$rmq_port RABBITMQ_DIST_PORT=$((rmq_port + 1)) ERL_EPMD_ADDRESS=127.0.0.1 \
    RABBITMQ_MNESIA_BASE="$state/rabbitmq/mnesia" RABBITMQ_LOG_BASE="$state/rabbitmq/log" \
    RABBITMQ_PID_FILE="$state/rabbitmq/pid" RABBITMQ_CONFIG_FILE="$state/rabbitmq/rabbitmq" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$state/rabbitmq/enabled_plugins" RABBITMQ_CONF_ENV_FILE="$state/rabbitmq/rabbitmq-env.conf"
}
# shellcheck disable=SC2046
rmqctl() { runuser -u rabbitmq -- env $(rmq_vars) /usr/lib/rabbitmq/bin/rabbitmqctl -n aio@localhost "$@"; }
rmq_up() { [ -f "$state/rabbitmq/pid" ] && kill -0 "$(cat "$state/rabbitmq/pid")" 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/$rmq_port) 2>/dev/null; }
start_rabbitmq() {
  rmq_up && return 0
  mkdir -p "$state/rabbitmq/log" "$state/rabbitmq/mnesia"
  echo "[]." > "$state/rabbitmq/enabled_plugins"
  printf 'listeners.tcp.1 = 127.0.0.1:%s\nloopback_users = none\n' "$rmq_port" > "$state/rabbitmq/rabbitmq.conf"
  # Erlang distribution on loopback too (it listens on every interface by default).
  echo 'SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"' > "$state/rabbitmq/rabbitmq-env.conf"
  chown -R rabbitmq:rabbitmq "$state/rabbitmq"
  # shellcheck disable=SC2046
  ( exec setsid runuser -u rabbitmq -- env $(rmq_vars) /usr/lib/rabbitmq/bin/rabbitmq-server ) >"$state/rabbitmq/out.log" 2>&1 </dev/null &
  rmqctl wait --timeout 60 "$state/rabbitmq/pid" >/dev/null 2>&1 || die "RabbitMQ did not start ($state/rabbitmq/out.log)"
  local pw; pw=$(secret_file "$state/rabbitmq.password")
  rmqctl add_user openstack "$pw" >/dev/null 2>&1 || rmqctl change_password openstack "$pw" >/dev/null
  rmqctl set_permissions openstack ".*" ".*" ".*" >/dev/null
}
stop_rabbitmq() {
  [ -f "$state/rabbitmq/pid" ] || return 0
  rmqctl stop "$state/rabbitmq/pid" >/dev/null 2>&1 || true
  # epmd was started by this node (with ERL_EPMD_ADDRESS): stop it unless another Erlang node still uses it.
  runuser -u rabbitmq -- env ERL_EPMD_ADDRESS=127.0.0.1 epmd -names 2>/dev/null | grep -q "^name " ||
    runuser -u rabbitmq -- env ERL_EPMD_ADDRESS=127.0.0.1 epmd -kill >/dev/null 2>&1 || true
  rm -f "$state/rabbitmq/pid"
}
transport_url() { echo "rabbit://openstack:$(cat "$state/rabbitmq.password")@127.0.0.1:$rmq_port/"; }

# ---------------------------------------------------------------- databases (all on the one PostgreSQL)
db_url() { echo "postgresql+psycopg2://magnetar:$(cat "$state/postgres/password")@127.0.0.1:$MAGNETAR_PG_PORT/$1"; }
pg() { PGPASSWORD=$(cat "$state/postgres/password") psql -h 127.0.0.1 -p "$MAGNETAR_PG_PORT" -U magnetar -d "$1" -tAc "$2"; }
ensure_db() { pg magnetar "SELECT 1 FROM pg_database WHERE datname='$1'" | grep -q 1 || pg magnetar "CREATE DATABASE $1" >/dev/null; }

# ---------------------------------------------------------------- Keystone service users and catalog
# (deploy/openstack-aio/seed.py: one Python process; an "openstack" CLI call costs 2-4 s of imports, and the catalog
# alone would take some 70 of them.)
seed_py() { $py "$root/deploy/openstack-aio/seed.py" "$@"; }
seed_catalog() {
  local u v3="/v3/%(project_id)s"
  for u in placement glance nova neutron octavia cinder; do secret_file "$state/$u.password" >/dev/null; done
  seed_py catalog "$state" \
    "placement,placement,http://127.0.0.1:$placement_port,placement" \
    "glance,image,http://127.0.0.1:$glance_port,glance" \
    "nova,compute,http://127.0.0.1:$nova_port/v2.1,nova" \
    "neutron,network,http://127.0.0.1:$neutron_port,neutron" \
    "octavia,load-balancer,http://127.0.0.1:$octavia_port,octavia" \
    "cinderv3,volumev3,http://127.0.0.1:$cinder_port$v3,cinder" \
    "cinder,block-storage,http://127.0.0.1:$cinder_port$v3" \
    "magnum,container-infra,http://127.0.0.1:$magnum_port/v1"
}

authtoken() { # name
  cat <<CONF
[keystone_authtoken]
www_authenticate_uri = $KEYSTONE_URL
auth_url = $KEYSTONE_URL
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $1
password = $(secret_file "$state/$1.password")
CONF
}
service_auth() { # section user — a keystoneauth password section for service-to-service calls
  cat <<CONF
[$1]
region_name = RegionOne
auth_type = password
auth_url = $KEYSTONE_URL
project_name = service
project_domain_name = Default
username = $2
user_domain_name = Default
password = $(secret_file "$state/$2.password")
CONF
}
# Legacy policy defaults (project admin is admin, members own their project's resources), as most clouds of this era.
policy_legacy() { printf '[oslo_policy]\nenforce_new_defaults = false\nenforce_scope = false\n'; }

# ---------------------------------------------------------------- Placement
start_placement() {
  pid_alive "$state/placement/uwsgi.pid" && return 0
  mkdir -p "$state/placement"
  ensure_db placement
  cat > "$state/placement/placement.conf" <<CONF
[api]
auth_strategy = keystone
[placement_database]
connection = $(db_url placement)
$(authtoken placement)
CONF
  quiet "$state/placement/manage.log" env OS_PLACEMENT_CONFIG_DIR="$state/placement" placement-manage \
    --config-file "$state/placement/placement.conf" db sync
  uwsgi_app "$state/placement/uwsgi.pid" "$state/placement/uwsgi.log" $placement_port /usr/bin/placement-api \
    --env OS_PLACEMENT_CONFIG_DIR="$state/placement"
}

# ---------------------------------------------------------------- Glance (file store)
start_glance() {
  pid_alive "$state/glance/api.pid" && return 0
  mkdir -p "$state/glance/images"
  ensure_db glance
  cp /usr/share/glance-common/glance-api-paste.ini "$state/glance/" 2>/dev/null || cp /etc/glance/glance-api-paste.ini "$state/glance/"
  cat > "$state/glance/glance-api.conf" <<CONF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $glance_port
workers = 1
enabled_backends = file:file
[glance_store]
default_backend = file
[file]
filesystem_store_datadir = $state/glance/images
[database]
connection = $(db_url glance)
[paste_deploy]
flavor = keystone
config_file = $state/glance/glance-api-paste.ini
$(policy_legacy)
$(authtoken glance)
CONF
  quiet "$state/glance/manage.log" glance-manage --config-file "$state/glance/glance-api.conf" db_sync
  py_daemon "$state/glance/api.pid" "$state/glance" glance.cmd.api glance-api "$state/glance/glance-api.conf"
}

# ---------------------------------------------------------------- Nova (API under uwsgi; conductor, scheduler and
# compute run from python3-nova directly: the nova-compute package would pull in libvirt/QEMU, and the fake virt
# driver needs neither). Servers go ACTIVE without booting; user-data is kept and readable through the API. The fake
# driver keeps its instances in memory: after a restart of nova-compute, existing servers are unknown to it.
start_nova() {
  local nm="nova-manage --config-file $state/nova/nova.conf"
  if ! pid_alive "$state/nova/uwsgi.pid" || ! pid_alive "$state/nova/conductor.pid" || ! pid_alive "$state/nova/scheduler.pid" ||
     ! pid_alive "$state/nova/compute.pid"; then
    mkdir -p "$state/nova/log" "$state/nova/lock" "$state/nova/instances"
    for db in nova_api nova nova_cell0; do ensure_db $db; done
    cp /usr/share/nova-common/api-paste.ini "$state/nova/api-paste.ini" 2>/dev/null || cp /etc/nova/api-paste.ini "$state/nova/"
    cat > "$state/nova/nova.conf" <<CONF
[DEFAULT]
transport_url = $(transport_url)
compute_driver = fake.FakeDriver
host = $host_name
my_ip = 127.0.0.1
state_path = $state/nova
instances_path = $state/nova/instances
log_dir = $state/nova/log
use_rootwrap_daemon = false
osapi_compute_workers = 1
metadata_workers = 1
[api]
auth_strategy = keystone
[api_database]
connection = $(db_url nova_api)
[database]
connection = $(db_url nova)
[conductor]
workers = 1
[scheduler]
workers = 1
discover_hosts_in_cells_interval = 5
# One compute host: anti-affinity server groups are accepted but cannot be honoured, so they are not enforced —
# otherwise the second member of every anti-affinity group (a cluster's masters, its workers) would fail with
# NoValidHost. Nova's default filters, with a pass-through ServerGroupAntiAffinityFilter
# (deploy/openstack-aio/pylib/magnetar_aio_nova.py; Nova rejects anti-affinity groups when no filter of that name is
# enabled), and no late check of the group policy on the compute host.
[filter_scheduler]
available_filters = nova.scheduler.filters.compute_filter.ComputeFilter
available_filters = nova.scheduler.filters.compute_capabilities_filter.ComputeCapabilitiesFilter
available_filters = nova.scheduler.filters.image_props_filter.ImagePropertiesFilter
available_filters = nova.scheduler.filters.affinity_filter.ServerGroupAffinityFilter
available_filters = magnetar_aio_nova.ServerGroupAntiAffinityFilter
[workarounds]
disable_group_policy_check_upcall = true
[glance]
region_name = RegionOne
$(service_auth neutron neutron)
$(service_auth placement nova)
# Volumes (boot from volume, attachments): Cinder's volumev3 endpoint from the catalog.
$(service_auth cinder nova)
# Nova's calls carry a service token (user nova has the "service" role): since the fix for CVE-2023-2088, Cinder
# refuses to delete an attachment Nova uses unless the request comes from Nova so — boot-from-volume servers
# would keep their volumes "in-use" after delete (ConflictNovaUsingAttachment).
$(service_auth service_user nova)
send_service_user_token = true
[oslo_concurrency]
lock_path = $state/nova/lock
[wsgi]
api_paste_config = $state/nova/api-paste.ini
$(policy_legacy)
$(authtoken nova)
CONF
    local log=$state/nova/log/manage.out
    quiet "$log" $nm api_db sync
    # (Output captured first: with pipefail, "list | grep -q" fails when grep exits before the writer is done.)
    local cells; cells=$($nm cell_v2 list_cells 2>>"$log" || true)
    grep -q " cell0 " <<<"$cells" || quiet "$log" $nm cell_v2 map_cell0 --database_connection "$(db_url nova_cell0)"
    grep -q " cell1 " <<<"$cells" || quiet "$log" $nm cell_v2 create_cell --name cell1
    quiet "$log" $nm db sync
  fi
  uwsgi_app "$state/nova/uwsgi.pid" "$state/nova/log/uwsgi.log" $nova_port /usr/bin/nova-api-wsgi --env OS_NOVA_CONFIG_DIR="$state/nova"
  for d in conductor scheduler compute; do
    py_daemon "$state/nova/$d.pid" "$state/nova/log" "nova.cmd.$d" "nova-$d" "$state/nova/nova.conf" "$pylib"
  done
}
nova_ready() {
  wait_service Nova "http://127.0.0.1:$nova_port/" 240 "$state/nova/log" start_nova "$state/nova/"{uwsgi,conductor,scheduler,compute}.pid
  [ -f "$state/nova/host-mapped" ] && return 0
  # Map the compute host into cell1 once nova-compute has registered its node (the scheduler would also find it
  # within discover_hosts_in_cells_interval, but a server created before that would fail with NoValidHost).
  for _ in $(seq 1 240); do
    [ -n "$(pg nova "SELECT 1 FROM compute_nodes WHERE deleted = 0 LIMIT 1" 2>/dev/null)" ] && break; sleep 0.5
  done
  quiet "$state/nova/log/manage.out" nova-manage --config-file "$state/nova/nova.conf" cell_v2 discover_hosts
  touch "$state/nova/host-mapped"
}

# ---------------------------------------------------------------- Neutron (ML2, no agents)
# No L2/L3 agent runs, so nothing forwards packets and routers are database objects only — enough for an API-level
# cloud. Ports are bound (binding:vif_type "other", status ACTIVE) by a small ML2 mechanism driver of this script's own
# (deploy/openstack-aio/pylib/magnetar_aio_ml2.py, registered through its dist-info entry point on PYTHONPATH): without
# a binding driver Nova fails every server with PortBindingFailed.
start_neutron() {
  pid_alive "$state/neutron/server.pid" && return 0
  mkdir -p "$state/neutron/log" "$state/neutron/lock"
  ensure_db neutron
  cp /usr/share/neutron-common/api-paste.ini "$state/neutron/api-paste.ini" 2>/dev/null || cp /etc/neutron/api-paste.ini "$state/neutron/"
  cat > "$state/neutron/neutron.conf" <<CONF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $neutron_port
core_plugin = ml2
service_plugins = router
auth_strategy = keystone
transport_url = $(transport_url)
api_workers = 1
rpc_workers = 0
rpc_state_report_workers = 0
state_path = $state/neutron
api_paste_config = $state/neutron/api-paste.ini
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
allow_overlapping_ips = true
[database]
connection = $(db_url neutron)
[oslo_concurrency]
lock_path = $state/neutron/lock
$(policy_legacy)
[ml2]
type_drivers = flat,vxlan
tenant_network_types = vxlan
mechanism_drivers = magnetar_aio
extension_drivers = port_security
[ml2_type_flat]
flat_networks = public
[ml2_type_vxlan]
vni_ranges = 1:10000
$(authtoken neutron)
$(service_auth nova nova)
CONF
  quiet "$state/neutron/log/manage.log" neutron-db-manage --config-file "$state/neutron/neutron.conf" upgrade head
  py_daemon "$state/neutron/server.pid" "$state/neutron/log" neutron.cmd.eventlet.server neutron-server \
    "$state/neutron/neutron.conf" "$pylib"
}

# ---------------------------------------------------------------- Octavia (amphora provider, no-op amphorae)
# Octavia's own "noop_driver" provider never moves a load balancer out of PENDING_CREATE, so the real amphora provider
# runs, with an octavia-worker whose amphora and compute drivers are Octavia's no-op ones: load balancers, listeners,
# pools, members and health monitors go ACTIVE through Octavia's real task flows, and no amphora VM is booted
# (operating status stays OFFLINE: no amphora reports health, and no health manager runs to act on that). The API
# allocates the VIP as a real Neutron port (allowed_address_pairs network driver), so a floating IP can point at it;
# the worker's network driver (deploy/openstack-aio/pylib/magnetar_aio_octavia.py) plugs nothing and deletes that port
# with the load balancer. Status updates are written by the worker itself: the driver-agent is only for other
# providers. Database: Octavia's migrations are MySQL-only, so the schema is created from its models
# (deploy/openstack-aio/octavia_schema.py, as Octavia's own functional tests do) and stamped at head.
start_octavia() {
  pid_alive "$state/octavia/uwsgi.pid" && pid_alive "$state/octavia/worker.pid" && return 0
  mkdir -p "$state/octavia/log" "$state/octavia/certs" "$state/octavia/lock"
  ensure_db octavia
  local certs=$state/octavia/certs
  if [ ! -f "$certs/ca.pem" ]; then
    # The amphora certificates the worker signs (local_cert_generator) are never used: no amphora exists.
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=magnetar-aio-octavia-ca" \
      -keyout "$certs/ca.key" -out "$certs/ca.pem" 2>/dev/null
    cat "$certs/ca.pem" "$certs/ca.key" > "$certs/client.pem"
    chmod 600 "$certs/ca.key" "$certs/client.pem"
  fi
  local common
  common=$(cat <<CONF
[DEFAULT]
transport_url = $(transport_url)
[api_settings]
bind_host = 127.0.0.1
bind_port = $octavia_port
auth_strategy = keystone
enabled_provider_drivers = amphora:The Octavia Amphora driver (no-op amphorae in this all-in-one)
default_provider_driver = amphora
[database]
connection = $(db_url octavia)
[oslo_messaging]
topic = octavia_prov
[oslo_concurrency]
lock_path = $state/octavia/lock
$(policy_legacy)
[certificates]
cert_generator = local_cert_generator
ca_certificate = $certs/ca.pem
ca_private_key = $certs/ca.key
server_certs_key_passphrase = $(secret_file "$state/octavia/certs/passphrase" | md5sum | cut -c1-32)
[haproxy_amphora]
client_cert = $certs/client.pem
server_ca = $certs/ca.pem
[task_flow]
jobboard_enabled = false
$(service_auth service_auth octavia)
[neutron]
region_name = RegionOne
valid_interfaces = public
$(authtoken octavia)
[controller_worker]
client_ca = $certs/ca.pem
amphora_driver = amphora_noop_driver
compute_driver = compute_noop_driver
loadbalancer_topology = SINGLE
workers = 1
# Placeholders: the no-op compute driver boots nothing.
amp_image_tag = amphora
amp_flavor_id = amphora-placeholder
amp_boot_network_list = 00000000-0000-0000-0000-000000000000
CONF
)
  printf '%s\nnetwork_driver = allowed_address_pairs_driver\n' "$common" > "$state/octavia/octavia-api.conf"
  printf '%s\nnetwork_driver = magnetar_aio_network_driver\n' "$common" > "$state/octavia/octavia-worker.conf"
  quiet "$state/octavia/log/manage.log" $py "$root/deploy/openstack-aio/octavia_schema.py" "$state/octavia/octavia-api.conf"
  quiet "$state/octavia/log/manage.log" octavia-db-manage --config-file "$state/octavia/octavia-api.conf" stamp head
  uwsgi_app "$state/octavia/uwsgi.pid" "$state/octavia/log/uwsgi.log" $octavia_port /usr/bin/octavia-wsgi \
    --pyargv "--config-file $state/octavia/octavia-api.conf"
  py_daemon "$state/octavia/worker.pid" "$state/octavia/log" octavia.cmd.octavia_worker octavia-worker \
    "$state/octavia/octavia-worker.conf" "$pylib"
}

# ---------------------------------------------------------------- Cinder (fake volume driver)
# One backend "fake" (volume type "fake", the default) whose driver stores nothing: volumes go "available", attach and
# detach succeed, and a volume created from an image is "available" too (image copy skipped:
# deploy/openstack-aio/pylib/magnetar_aio_cinder.py over cinder.tests.fake_driver.FakeLoggingVolumeDriver).
start_cinder() {
  pid_alive "$state/cinder/uwsgi.pid" && pid_alive "$state/cinder/scheduler.pid" && pid_alive "$state/cinder/volume.pid" && return 0
  mkdir -p "$state/cinder/log" "$state/cinder/lock"
  ensure_db cinder
  cp /usr/share/cinder-common/api-paste.ini "$state/cinder/api-paste.ini" 2>/dev/null || cp /etc/cinder/api-paste.ini "$state/cinder/"
  cat > "$state/cinder/cinder.conf" <<CONF
[DEFAULT]
transport_url = $(transport_url)
auth_strategy = keystone
host = $host_name
my_ip = 127.0.0.1
state_path = $state/cinder
log_dir = $state/cinder/log
api_paste_config = $state/cinder/api-paste.ini
osapi_volume_workers = 1
enabled_backends = fake
default_volume_type = fake
[fake]
volume_driver = magnetar_aio_cinder.AllInOneVolumeDriver
volume_backend_name = fake
[database]
connection = $(db_url cinder)
[oslo_concurrency]
lock_path = $state/cinder/lock
$(policy_legacy)
$(service_auth nova nova)
$(authtoken cinder)
CONF
  quiet "$state/cinder/log/manage.log" cinder-manage --config-file "$state/cinder/cinder.conf" db sync
  uwsgi_app "$state/cinder/uwsgi.pid" "$state/cinder/log/uwsgi.log" $cinder_port /usr/bin/cinder-wsgi \
    --pyargv "--config-file $state/cinder/cinder.conf"
  py_daemon "$state/cinder/scheduler.pid" "$state/cinder/log" cinder.cmd.scheduler cinder-scheduler "$state/cinder/cinder.conf"
  py_daemon "$state/cinder/volume.pid" "$state/cinder/log" cinder.cmd.volume cinder-volume "$state/cinder/cinder.conf" "$pylib"
}

# ---------------------------------------------------------------- seeds
# Images fedora-coreos-40, ubuntu-24.04 and debian-12 (1 MiB raw), external network "public" 172.24.4.0/24, flavors m1.tiny..
# m1.large, volume type "fake", demo quotas for a few clusters. Prints the ids write_client_files needs.
seed_resources() { seed_py resources "$state" > "$state/ids.tmp"; mv "$state/ids.tmp" "$state/ids"; }

write_client_files() {
  local PUBLIC_NETWORK_ID FEDORA_COREOS_IMAGE_ID UBUNTU_IMAGE_ID
  . "$state/ids"
  local pw_admin pw_demo pw_magnetar pw_reader
  pw_admin=$(cat "$state/keystone/admin.password"); pw_demo=$(cat "$state/keystone/demo.password")
  pw_magnetar=$(cat "$state/keystone/magnetar.password"); pw_reader=$(cat "$state/keystone/demo-reader.password")
  (
    umask 077
    for who in "admin admin $pw_admin" "demo demo $pw_demo"; do
      # shellcheck disable=SC2086
      set -- $who
      cat > "$state/openrc-$1" <<ENV
export OS_AUTH_URL=$KEYSTONE_URL
export OS_IDENTITY_API_VERSION=3
export OS_USERNAME=$1
export OS_PASSWORD=$3
export OS_PROJECT_NAME=$2
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
export OS_REGION_NAME=RegionOne
export OS_INTERFACE=public
ENV
    done
    # KEY=VALUE lines (no quoting needed): sourceable by a shell, readable by the .NET tests' env loader. The
    # names of deploy/keystone.sh's env are kept.
    cat > "$state/env.tmp" <<ENV
KEYSTONE_URL=$KEYSTONE_URL
REGION=RegionOne
ADMIN_USER=admin
ADMIN_PASSWORD=$pw_admin
ADMIN_PROJECT=admin
SERVICE_USER=magnetar
SERVICE_PASSWORD=$pw_magnetar
SERVICE_PROJECT=service
MAGNETAR_USER=magnetar
MAGNETAR_PASSWORD=$pw_magnetar
DEMO_USER=demo
DEMO_PASSWORD=$pw_demo
DEMO_PROJECT=demo
READER_USER=demo-reader
READER_PASSWORD=$pw_reader
PUBLIC_NETWORK=public
PUBLIC_NETWORK_ID=$PUBLIC_NETWORK_ID
FEDORA_COREOS_IMAGE=fedora-coreos-40
FEDORA_COREOS_IMAGE_ID=$FEDORA_COREOS_IMAGE_ID
UBUNTU_IMAGE=ubuntu-24.04
UBUNTU_IMAGE_ID=$UBUNTU_IMAGE_ID
FLAVOR=m1.small
VOLUME_TYPE=fake
MAGNUM_URL=http://127.0.0.1:$magnum_port/v1
ENV
    mv "$state/env.tmp" "$state/env"
  )
}

# ---------------------------------------------------------------- status
svc_status() { # name url pidfile... — prints "name: up|down (...)", returns 1 when down
  local name=$1 url=$2 down=(); shift 2
  for f in "$@"; do pid_alive "$f" || down+=("$(basename "$f" .pid)"); done
  curl -sf --max-time 5 -o /dev/null "$url" || down=("api" "${down[@]}")
  if [ ${#down[@]} -eq 0 ]; then echo "$name: up ($url)"; else echo "$name: down (not running: ${down[*]})"; return 1; fi
}

case "$cmd" in
  packages)
    # The Debian packages it runs on, one per line (scripts/test installs them with its own, in one apt-get).
    printf '%s\n' "${packages[@]}"
    ;;
  start)
    ensure_installed
    mkdir -p "$state"
    . "$root/deploy/lib/secrets.sh"
    "$root/deploy/postgres.sh" start "$state/postgres"
    start_rabbitmq
    ensure_db keystone
    MAGNETAR_KEYSTONE_DB_URL=$(db_url keystone) "$root/deploy/keystone.sh" start "$state/keystone"
    export KEYSTONE_URL="http://127.0.0.1:$MAGNETAR_KEYSTONE_PORT/v3"
    KEYSTONE_ADMIN_PASSWORD=$(cat "$state/keystone/admin.password"); export KEYSTONE_ADMIN_PASSWORD
    [ -f "$state/seeded-catalog" ] || { step "Keystone catalog, service users, roles"; seed_catalog; touch "$state/seeded-catalog"; }
    # Configs, database migrations and daemons of the six services in parallel (mostly Python imports and SQL round
    # trips: about half the time of one after the other, even on two cores); their health checks follow.
    step "starting Placement, Glance, Neutron, Nova, Octavia, Cinder"
    jobs=()
    for s in placement glance neutron nova octavia cinder; do start_$s & jobs+=($!); done
    for j in "${jobs[@]}"; do wait "$j" || die "a service failed to start (see the messages above)"; done
    step "waiting for the APIs"
    # Generous deadlines: on a loaded machine the six services' Python imports share two cores (a CI run once saw
    # Octavia not answering within the 60 s it then had); a service whose process died is restarted once.
    wait_service Placement "http://127.0.0.1:$placement_port/" 180 "$state/placement" start_placement "$state/placement/uwsgi.pid"
    wait_service Glance "http://127.0.0.1:$glance_port/" 180 "$state/glance" start_glance "$state/glance/api.pid"
    wait_service Neutron "http://127.0.0.1:$neutron_port/" 240 "$state/neutron/log" start_neutron "$state/neutron/server.pid"
    wait_service Octavia "http://127.0.0.1:$octavia_port/" 240 "$state/octavia/log" start_octavia "$state/octavia/"{uwsgi,worker}.pid
    wait_service Cinder "http://127.0.0.1:$cinder_port/" 240 "$state/cinder/log" start_cinder "$state/cinder/"{uwsgi,scheduler,volume}.pid
    nova_ready
    if [ ! -f "$state/seeded" ]; then
      step "seeding images, public network, flavors, volume type, demo quotas"
      seed_resources
      touch "$state/seeded"
    fi
    [ -f "$state/env" ] || write_client_files
    echo "openstack-aio: running, started in $SECONDS s (state $state); credentials in $state/env, $state/openrc-admin, $state/openrc-demo" >&2
    ;;
  stop)
    # Every service was started in its own process group (workers included); then Keystone, RabbitMQ, PostgreSQL.
    stop_groups "$state/"{cinder/volume,cinder/scheduler,cinder/uwsgi,octavia/worker,octavia/uwsgi,nova/compute,nova/scheduler,nova/conductor,nova/uwsgi,neutron/server,glance/api,placement/uwsgi}.pid
    [ -d "$state/keystone" ] && { "$root/deploy/keystone.sh" stop "$state/keystone" 2>/dev/null || true; }
    stop_rabbitmq
    [ -d "$state/postgres" ] && { "$root/deploy/postgres.sh" stop "$state/postgres" 2>/dev/null || true; }
    echo "openstack-aio: stopped (state $state kept)" >&2
    ;;
  status)
    rc=0
    svc_status keystone "http://127.0.0.1:$MAGNETAR_KEYSTONE_PORT/v3" "$state/keystone/uwsgi.pid" || rc=3
    svc_status placement "http://127.0.0.1:$placement_port/" "$state/placement/uwsgi.pid" || rc=3
    svc_status glance "http://127.0.0.1:$glance_port/" "$state/glance/api.pid" || rc=3
    svc_status nova "http://127.0.0.1:$nova_port/" "$state/nova/"{uwsgi,conductor,scheduler,compute}.pid || rc=3
    svc_status neutron "http://127.0.0.1:$neutron_port/" "$state/neutron/server.pid" || rc=3
    svc_status octavia "http://127.0.0.1:$octavia_port/" "$state/octavia/"{uwsgi,worker}.pid || rc=3
    svc_status cinder "http://127.0.0.1:$cinder_port/" "$state/cinder/"{uwsgi,scheduler,volume}.pid || rc=3
    exit $rc
    ;;
  *) echo "usage: $0 start|stop|status|packages [STATE_DIR]" >&2; exit 2 ;;
esac
