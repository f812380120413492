# Shared by deploy/*.sh: the OpenStack CLI as Keystone's bootstrap admin, with retries.
# Needs: $KEYSTONE_URL (…/v3), $KEYSTONE_ADMIN_PASSWORD, $OS_CLI_HOME.

os_admin() {
  OS_AUTH_URL=$KEYSTONE_URL OS_USERNAME=admin OS_PASSWORD=$KEYSTONE_ADMIN_PASSWORD OS_PROJECT_NAME=admin \
  OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default OS_IDENTITY_API_VERSION=3 HOME="$OS_CLI_HOME" \
  openstack "$@"
}

# uwsgi's http-socket closes idle keep-alive connections, so a client call may see "connection aborted":
# retry, and count "already exists" as success for a create that went through before the reset.
osr() {
  local out
  for _ in 1 2 3 4 5; do
    out=$(os_admin "$@" 2>&1) && return 0
    echo "$out" | grep -qiE "conflict|already exists|duplicate" && return 0
    sleep 0.5
  done
  echo "$out" >&2; return 1
}

# A random password kept in $1 (created once, 0600).
secret_file() {
  [ -f "$1" ] || (umask 077; head -c 18 /dev/urandom | base64 | tr '+/' 'xy' > "$1")
  cat "$1"
}
