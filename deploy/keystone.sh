#!/usr/bin/env bash
# A real Keystone (Debian's keystone package, OpenStack Zed) on 127.0.0.1:35000 for Magnetar's keystone-mode tests.
# usage: deploy/keystone.sh start|stop|status [STATE_DIR]     (default STATE_DIR: .work/keystone)
# Own config, SQLite database, fernet keys, uwsgi process and log, all in STATE_DIR; nothing of /etc/keystone is used.
# Database: $MAGNETAR_KEYSTONE_DB_URL (scripts/test and the OpenStack all-in-one pass a PostgreSQL database), else SQLite
# in STATE_DIR. Passwords and application credentials are hashed with bcrypt at 4 rounds ($MAGNETAR_KEYSTONE_HASH_ROUNDS;
# Keystone's default, 12, costs ≈ 0.2 s of CPU per check): a Keystone for tests and trials, not for production.
# Creates: admin (bootstrap), project service + user magnetar (admin role on service, like Magnum's service user),
# project demo + users demo (member) and demo-reader (reader); writes STATE_DIR/env with their credentials.
set -euo pipefail
# The services run Python under uwsgi, which reads config files in the locale's encoding (ASCII under CI's bare
# C locale, where the configs' UTF-8 comments failed Nova's API at start): UTF-8 always.
export LANG=C.UTF-8 LC_ALL=C.UTF-8
cmd=${1:-status}
root=$(cd "$(dirname "$0")/.." && pwd)
state=$(realpath -m "${2:-$root/.work/keystone}")
port=${MAGNETAR_KEYSTONE_PORT:-35000}
url="http://127.0.0.1:$port/v3"
conf="$state/keystone.conf"
hash_rounds=${MAGNETAR_KEYSTONE_HASH_ROUNDS:-4}

ensure_installed() {
  if [ ! -x /usr/bin/keystone-wsgi-public ] || ! dpkg-query -W -f='${Status}' uwsgi-plugin-python3 2>/dev/null | grep -q "ok installed"; then
    echo "keystone.sh: installing keystone from Debian" >&2
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends keystone uwsgi-plugin-python3 python3-openstackclient >/dev/null
    rm -f /usr/sbin/policy-rc.d
  fi
}

running() { [ -f "$state/uwsgi.pid" ] && kill -0 "$(cat "$state/uwsgi.pid")" 2>/dev/null; }

. "$root/deploy/lib/secrets.sh"
export KEYSTONE_URL=$url

pw() { mkdir -p "$state"; secret_file "$state/$1.password"; }

case "$cmd" in
  start)
    ensure_installed
    mkdir -p "$state/fernet-keys" "$state/credential-keys"
    chmod 700 "$state"
    cat > "$conf" <<CONF
[DEFAULT]
log_file = $state/keystone.log
[database]
connection = ${MAGNETAR_KEYSTONE_DB_URL:-sqlite:///$state/keystone.db}
# (SQLite is for trying it by hand: under load its "database is locked" errors fail requests. scripts/test and the
# all-in-one pass PostgreSQL.)
[identity]
# Passwords and application credential secrets hashed with bcrypt at $hash_rounds rounds (Keystone's default is 12:
# ≈ 0.2 s of CPU for every password or application credential check on these machines, and this Keystone is one
# uwsgi process — the all-in-one's tests and create benchmark spent most of their Keystone time there). A test and
# trial Keystone; a production one keeps 12 or more. Applies to users and credentials made after it is set.
password_hash_rounds = $hash_rounds
[token]
provider = fernet
expiration = 3600
[fernet_tokens]
key_repository = $state/fernet-keys
[fernet_receipts]
key_repository = $state/fernet-keys
[credential]
key_repository = $state/credential-keys
CONF
    # A different database than last time (e.g. SQLite before, PostgreSQL now): bootstrap and seed it afresh.
    db_url=${MAGNETAR_KEYSTONE_DB_URL:-sqlite:///$state/keystone.db}
    if [ "$(cat "$state/db-url" 2>/dev/null)" != "$db_url" ]; then rm -f "$state/bootstrapped" "$state/seeded"; fi
    (umask 077; echo "$db_url" > "$state/db-url")
    admin_pw=$(pw admin)
    export KEYSTONE_ADMIN_PASSWORD=$admin_pw
    if [ ! -f "$state/bootstrapped" ]; then
      km() { keystone-manage --config-file "$conf" "$@"; }
      km db_sync
      km fernet_setup --keystone-user root --keystone-group root
      km credential_setup --keystone-user root --keystone-group root
      km bootstrap --bootstrap-password "$admin_pw" --bootstrap-admin-url "$url" --bootstrap-public-url "$url" \
         --bootstrap-internal-url "$url" --bootstrap-region-id RegionOne >/dev/null
      touch "$state/bootstrapped"
    fi
    running || OS_KEYSTONE_CONFIG_FILES="$conf" uwsgi --plugins http,python3 --http "127.0.0.1:$port" --http-keepalive --http-auto-chunked \
      --wsgi-file /usr/bin/keystone-wsgi-public --processes 1 --threads 1 --master --die-on-term \
      --env OS_KEYSTONE_CONFIG_FILES="$conf" --disable-logging --pidfile "$state/uwsgi.pid" --daemonize "$state/uwsgi.log"
    for _ in $(seq 1 120); do curl -sf "$url" >/dev/null && break; sleep 0.25; done
    # A uwsgi that does not answer is stopped: left running, it would hold the port against the next start.
    curl -sf "$url" >/dev/null || { echo "keystone.sh: Keystone did not start; see $state/uwsgi.log" >&2
      [ -f "$state/uwsgi.pid" ] && kill "$(cat "$state/uwsgi.pid")" 2>/dev/null; exit 1; }
    if [ ! -f "$state/seeded" ]; then
      for u in magnetar demo demo-reader; do pw "$u" >/dev/null; done
      /usr/bin/python3 "$root/deploy/lib/keystone_seed.py" "$state" || {
        for f in "$state/uwsgi.log" "$state/keystone.log"; do [ -f "$f" ] && { echo "--- tail of $f" >&2; tail -40 "$f" >&2; }; done; exit 1; }
      touch "$state/seeded"
    fi
    umask 077
    cat > "$state/env" <<ENV
KEYSTONE_URL=$url
ADMIN_PASSWORD=$(pw admin)
SERVICE_USER=magnetar
SERVICE_PASSWORD=$(pw magnetar)
SERVICE_PROJECT=service
DEMO_USER=demo
DEMO_PASSWORD=$(pw demo)
DEMO_PROJECT=demo
READER_USER=demo-reader
READER_PASSWORD=$(pw demo-reader)
ENV
    echo "keystone.sh: Keystone running on $url (state $state)" >&2
    ;;
  stop)
    if running; then kill -TERM "$(cat "$state/uwsgi.pid")"; for _ in $(seq 1 40); do running || break; sleep 0.25; done; echo "keystone.sh: stopped" >&2; fi
    rm -f "$state/uwsgi.pid"
    ;;
  status)
    if running && curl -sf "$url" >/dev/null; then echo "running on $url"; else echo "stopped"; exit 3; fi
    ;;
  *) echo "usage: $0 start|stop|status [STATE_DIR]" >&2; exit 2 ;;
esac
