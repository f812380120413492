# Shared by deploy/*.sh.

# A random password kept in $1 (created once, 0600).
secret_file() {
  [ -f "$1" ] || (umask 077; head -c 18 /dev/urandom | base64 | tr '+/' 'xy' > "$1")
  cat "$1"
}
