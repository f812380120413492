#!/usr/bin/env bash
# A private MariaDB server (Debian's mariadb-server) on 127.0.0.1 for tests: a Magnum database to import from
# (magnetar import-magnum). No system service: mariadbd runs as the mysql user with its state under STATE_DIR.
# usage: deploy/mariadb.sh start|stop|status|env [STATE_DIR]     (default STATE_DIR: .work/mariadb)
#        deploy/mariadb.sh dburl NAME [STATE_DIR]   creates database NAME if missing and prints its SQLAlchemy URL
#                                                    (mysql+pymysql://…, as in magnum.conf's [database] connection)
# Port: $MAGNETAR_MARIADB_PORT (default 53306). User "magnetar" (all privileges, from 127.0.0.1) with a generated
# password; root is reached only through the unix socket in the data directory by the OS root user.
set -euo pipefail
cmd=${1:-status}
if [ "$cmd" = dburl ]; then dbname=${2:?usage: deploy/mariadb.sh dburl NAME [STATE_DIR]}; shift; fi
root=$(cd "$(dirname "$0")/.." && pwd)
state=$(realpath -m "${2:-$root/.work/mariadb}")
port=${MAGNETAR_MARIADB_PORT:-53306}
data="$state/data"
socket="$data/mysqld.sock"
pidfile="$data/mariadbd.pid"

ensure_installed() {
  if ! command -v mariadbd >/dev/null || ! command -v mariadb-install-db >/dev/null; then
    echo "mariadb.sh: installing mariadb-server from Debian" >&2
    apt-get update -qq
    # Keep Debian's own server from starting (we run a private one).
    local made=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mariadb-server >/dev/null
    [ $made -eq 0 ] || rm -f /usr/sbin/policy-rc.d
  fi
}

# As the OS root user through the socket (unix_socket authentication of MariaDB's root).
as_root() { mariadb --no-defaults --protocol=socket --socket="$socket" -u root "$@"; }

running() { [ -S "$socket" ] && mariadb-admin --no-defaults --protocol=socket --socket="$socket" -u root ping >/dev/null 2>&1; }

case "$cmd" in
  start)
    ensure_installed
    mkdir -p "$state"
    chmod 0755 "$state" # mariadbd runs as mysql and must reach its data directory inside
    if [ ! -d "$data/mysql" ]; then
      mkdir -p "$data"
      chown mysql:mysql "$data"
      chmod 0750 "$data"
      mariadb-install-db --no-defaults --user=mysql --datadir="$data" --auth-root-authentication-method=socket \
        --skip-test-db --skip-name-resolve >"$state/install.log" 2>&1 ||
        { echo "mariadb.sh: mariadb-install-db failed (see $state/install.log)" >&2; exit 1; }
    fi
    if ! running; then
      rm -f "$socket" "$pidfile"
      # setsid: the server outlives this script; stop ends it through its pid file.
      setsid runuser -u mysql -- mariadbd --no-defaults --datadir="$data" --socket="$socket" --pid-file="$pidfile" \
        --port="$port" --bind-address=127.0.0.1 --skip-name-resolve --log-error="$data/mariadb.log" \
        --innodb-buffer-pool-size=64M --innodb-flush-log-at-trx-commit=0 --skip-log-bin \
        --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci </dev/null >/dev/null 2>&1 &
      for _ in $(seq 1 120); do running && break; sleep 0.5; done
      running || { echo "mariadb.sh: mariadbd did not start on 127.0.0.1:$port (see $data/mariadb.log)" >&2; tail -5 "$data/mariadb.log" >&2 || true; exit 1; }
    fi
    if [ ! -f "$state/password" ]; then
      pw=$(head -c 18 /dev/urandom | base64 | tr '+/' 'xy')
      as_root -e "CREATE USER IF NOT EXISTS 'magnetar'@'127.0.0.1' IDENTIFIED BY '$pw'; GRANT ALL PRIVILEGES ON *.* TO 'magnetar'@'127.0.0.1'; FLUSH PRIVILEGES;"
      (umask 077; echo "$pw" > "$state/password")
    fi
    echo "mariadb.sh: MariaDB running on 127.0.0.1:$port (state $state)" >&2
    ;;
  stop)
    if running; then
      pid=$(cat "$pidfile" 2>/dev/null || true)
      mariadb-admin --no-defaults --protocol=socket --socket="$socket" -u root shutdown >/dev/null 2>&1 || { [ -n "$pid" ] && kill "$pid"; }
      if [ -n "$pid" ]; then
        for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      fi
      echo "mariadb.sh: stopped" >&2
    fi
    ;;
  status)
    if running; then echo "running on 127.0.0.1:$port"; else echo "stopped"; exit 3; fi
    ;;
  env)
    [ -f "$state/password" ] || { echo "mariadb.sh: not started yet (state $state)" >&2; exit 1; }
    echo "export MAGNETAR_TEST_MARIADB=\"Server=127.0.0.1;Port=$port;User ID=magnetar;Password=$(cat "$state/password")\""
    ;;
  dburl)
    running || { echo "mariadb.sh: not running (state $state)" >&2; exit 1; }
    [[ $dbname =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "mariadb.sh: bad database name $dbname" >&2; exit 2; }
    as_root -e "CREATE DATABASE IF NOT EXISTS \`$dbname\` CHARACTER SET utf8mb4"
    echo "mysql+pymysql://magnetar:$(cat "$state/password")@127.0.0.1:$port/$dbname?charset=utf8"
    ;;
  *) echo "usage: $0 start|stop|status|env|dburl [NAME] [STATE_DIR]" >&2; exit 2 ;;
esac
