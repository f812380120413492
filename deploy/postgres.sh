#!/usr/bin/env bash
# A private PostgreSQL 15 cluster (Debian package) on 127.0.0.1 for tests and multi-replica trials.
# usage: deploy/postgres.sh start|stop|status|env [STATE_DIR]     (default STATE_DIR: .work/postgres)
#        deploy/postgres.sh dburl NAME [STATE_DIR]   creates database NAME (owner magnetar) if missing and prints its
#                                                     SQLAlchemy URL (for OpenStack services, e.g. deploy/keystone.sh)
# Port: $MAGNETAR_PG_PORT (default 55432). Role "magnetar" (CREATEDB) with a generated password.
set -euo pipefail
cmd=${1:-status}
if [ "$cmd" = dburl ]; then dbname=${2:?usage: deploy/postgres.sh dburl NAME [STATE_DIR]}; shift; fi
root=$(cd "$(dirname "$0")/.." && pwd)
state=$(realpath -m "${2:-$root/.work/postgres}")
port=${MAGNETAR_PG_PORT:-55432}
bin=/usr/lib/postgresql/15/bin
data="$state/data"

as_pg() { runuser -u postgres -- "$@"; }

ensure_installed() {
  if [ ! -x "$bin/initdb" ]; then
    echo "postgres.sh: installing postgresql from Debian" >&2
    apt-get update -qq
    # Keep Debian's own cluster from starting (we run a private one).
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    rm -f /usr/sbin/policy-rc.d
  fi
}

running() { [ -f "$data/postmaster.pid" ] && as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; }

conn() { echo "Host=127.0.0.1;Port=$port;Username=magnetar;Password=$(cat "$state/password");Database=magnetar"; }

case "$cmd" in
  start)
    ensure_installed
    mkdir -p "$state"
    if [ ! -f "$data/PG_VERSION" ]; then
      chown postgres "$state"
      # The superuser is reached only through the unix socket by the postgres OS user (peer).
      as_pg "$bin/initdb" -D "$data" -A peer -U postgres >/dev/null
      cat >> "$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$state'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
      echo "local all postgres peer" > "$data/pg_hba.conf"
      echo "host all all 127.0.0.1/32 scram-sha-256" >> "$data/pg_hba.conf"
    fi
    if ! running; then
      as_pg "$bin/pg_ctl" -D "$data" -l "$state/postgres.log" -w -t 60 start >/dev/null
    fi
    if [ ! -f "$state/password" ]; then
      pw=$(head -c 18 /dev/urandom | base64 | tr '+/' 'xy')
      as_pg psql -h "$state" -p "$port" -d postgres -qc "CREATE ROLE magnetar LOGIN CREATEDB PASSWORD '$pw'" >/dev/null
      as_pg psql -h "$state" -p "$port" -d postgres -qc "CREATE DATABASE magnetar OWNER magnetar" >/dev/null
      umask 077; echo "$pw" > "$state/password"
    fi
    echo "postgres.sh: PostgreSQL running on 127.0.0.1:$port (state $state)" >&2
    ;;
  stop)
    if running; then as_pg "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null; echo "postgres.sh: stopped" >&2; fi
    ;;
  status)
    if running; then echo "running on 127.0.0.1:$port"; else echo "stopped"; exit 3; fi
    ;;
  env)
    echo "export MAGNETAR_TEST_POSTGRES=\"$(conn)\""
    ;;
  dburl)
    running || { echo "postgres.sh: not running (state $state)" >&2; exit 1; }
    [[ $dbname =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "postgres.sh: bad database name $dbname" >&2; exit 2; }
    pw=$(cat "$state/password")
    PGPASSWORD=$pw psql -h 127.0.0.1 -p "$port" -U magnetar -d magnetar -tAc "SELECT 1 FROM pg_database WHERE datname='$dbname'" | grep -q 1 ||
      PGPASSWORD=$pw psql -h 127.0.0.1 -p "$port" -U magnetar -d magnetar -qc "CREATE DATABASE $dbname" >/dev/null
    echo "postgresql+psycopg2://magnetar:$pw@127.0.0.1:$port/$dbname"
    ;;
  *) echo "usage: $0 start|stop|status|env|dburl [NAME] [STATE_DIR]" >&2; exit 2 ;;
esac
