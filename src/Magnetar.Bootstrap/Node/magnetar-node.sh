#!/bin/bash
# magnetar-node: the node side of Magnetar's bootstrap protocol. Magnetar renders it into every server's
# cloud-init user-data; cloud-init runs "magnetar-node bootstrap" once, on first boot.
#   magnetar-node bootstrap              every phase in order (what cloud-init runs)
#   magnetar-node fetch                  trade the single-use credential of the user-data for this node's bundle
#                                        (certificates, keys, kubeadm configuration, addons, report credential)
#   magnetar-node report PHASE ok|failed [EXIT_CODE] [LOG_FILE]
#   magnetar-node run PHASE COMMAND...   run COMMAND; report PHASE ok, or failed with its exit code and log tail
# Paths are under MAGNETAR_NODE_ROOT (default: /). Only the test node sets it, to play a booted VM in a directory.
set -uo pipefail
ROOT="${MAGNETAR_NODE_ROOT:-}"
ETC="$ROOT/etc/magnetar"
# shellcheck source=/dev/null
. "$ETC/node.env" # MAGNETAR_URL MAGNETAR_NODE MAGNETAR_ROLE MAGNETAR_KUBE_VERSION MAGNETAR_PACKAGES
LOGDIR="$ROOT/var/log/magnetar"
mkdir -p "$LOGDIR"
KUBE="$ROOT/etc/kubernetes"
CURL=(curl -sS --connect-timeout 10 --max-time 120)
if [ -s "$ETC/magnetar-ca.pem" ]; then CURL+=(--cacert "$ETC/magnetar-ca.pem"); fi

log() { echo "magnetar-node: $*" >&2; }

fetch() {
  local token code tmp attempts=${MAGNETAR_FETCH_ATTEMPTS:-90}
  token=$(cat "$ETC/bootstrap-token") || { log "no bootstrap credential in $ETC/bootstrap-token"; return 1; }
  tmp=$(mktemp)
  for ((i = 1; i <= attempts; i++)); do
    code=$("${CURL[@]}" -o "$tmp" -w '%{http_code}' -X POST -H "Authorization: Bearer $token" "$MAGNETAR_URL/bootstrap/v1/bundle") || code=000
    case "$code" in
      200)
        tar -xzf "$tmp" -C "${ROOT:-/}" --no-same-owner || { rm -f "$tmp"; return 1; }
        rm -f "$tmp" "$ETC/bootstrap-token"
        return 0 ;;
      401 | 403 | 404 | 410)
        log "Magnetar refused the bootstrap credential (HTTP $code): $(head -c 500 "$tmp")"
        rm -f "$tmp"
        return 1 ;;
      *)
        # 000 (no connection) or 503 (the cluster's API address is not known yet): try again.
        log "bundle not available yet (HTTP $code), attempt $i/$attempts"
        sleep "${MAGNETAR_FETCH_INTERVAL:-10}" ;;
    esac
  done
  rm -f "$tmp"
  return 1
}

report() {
  local phase=$1 status=$2 code=${3:-} file=${4:-} token
  token=$(cat "$ETC/report-token") || { log "no report credential"; return 1; }
  if [ -n "$file" ] && [ -f "$file" ]; then tail -n "${MAGNETAR_LOG_LINES:-40}" "$file"; fi |
    "${CURL[@]}" --retry 5 --retry-delay 2 --retry-all-errors --fail -o /dev/null -X POST \
      -H "Authorization: Bearer $token" -H 'Content-Type: text/plain' --data-binary @- \
      "$MAGNETAR_URL/bootstrap/v1/report?phase=$phase&status=$status&exit_code=$code"
}

run() {
  local phase=$1 rc
  shift
  local out="$LOGDIR/$phase.log"
  if "$@" >"$out" 2>&1; then
    report "$phase" ok
  else
    rc=$?
    log "$phase failed with exit code $rc (log: $out)"
    report "$phase" failed "$rc" "$out"
    return "$rc"
  fi
}

install_packages() {
  if [ "$MAGNETAR_PACKAGES" = image ]; then
    command -v kubeadm && command -v kubelet && command -v containerd && return 0
    log "kube_package_source=image but kubeadm/kubelet/containerd are not in the image"
    return 1
  fi
  local version=${MAGNETAR_KUBE_VERSION#v} minor repo
  minor=$(echo "$version" | cut -d. -f1-2)
  repo="https://pkgs.k8s.io/core:/stable:/v$minor"
  if command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q && apt-get install -y -q ca-certificates curl gpg containerd || return 1
    mkdir -p /etc/apt/keyrings
    curl -fsSL "$repo/deb/Release.key" | gpg --batch --yes --dearmor -o /etc/apt/keyrings/kubernetes.gpg || return 1
    echo "deb [signed-by=/etc/apt/keyrings/kubernetes.gpg] $repo/deb/ /" >/etc/apt/sources.list.d/kubernetes.list
    apt-get update -q && apt-get install -y -q "kubelet=$version-*" "kubeadm=$version-*" "kubectl=$version-*" || return 1
    apt-mark hold kubelet kubeadm kubectl
  elif command -v dnf >/dev/null; then
    printf '[kubernetes]\nname=Kubernetes\nbaseurl=%s/rpm/\nenabled=1\ngpgcheck=1\ngpgkey=%s/rpm/repodata/repomd.xml.key\n' "$repo" "$repo" \
      >/etc/yum.repos.d/kubernetes.repo
    dnf install -y containerd "kubelet-$version" "kubeadm-$version" "kubectl-$version" || return 1
  else
    log "neither apt-get nor dnf: use an image with Kubernetes preinstalled and the label kube_package_source=image"
    return 1
  fi
}

prepare() {
  modprobe overlay && modprobe br_netfilter || return 1
  sysctl --system >/dev/null || return 1
  swapoff -a && sed -i '/\sswap\s/s/^\([^#]\)/#\1/' /etc/fstab
  install_packages || return 1
  mkdir -p /etc/containerd
  containerd config default >/etc/containerd/config.toml || return 1
  sed -i 's/SystemdCgroup = false/SystemdCgroup = true/' /etc/containerd/config.toml
  systemctl enable containerd && systemctl restart containerd || return 1
  systemctl enable kubelet
}

kubeadm_phase() {
  case "$MAGNETAR_ROLE" in
    init) kubeadm init --config "$KUBE/magnetar/kubeadm.yaml" ;;
    control-plane | worker) kubeadm join --config "$KUBE/magnetar/kubeadm.yaml" ;;
    *) log "unknown role $MAGNETAR_ROLE"; return 1 ;;
  esac
}

addons() {
  for ((i = 1; i <= 30; i++)); do
    kubectl --kubeconfig "$KUBE/admin.conf" apply --server-side --force-conflicts -f "$KUBE/magnetar/addons/" && return 0
    sleep 10
  done
  return 1
}

node_ready() {
  local status
  for ((i = 1; i <= 90; i++)); do
    status=$(kubectl --kubeconfig "$KUBE/kubelet.conf" get node "$MAGNETAR_NODE" \
      -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>&1) && [ "$status" = True ] && return 0
    echo "node $MAGNETAR_NODE not Ready yet: $status"
    sleep 10
  done
  return 1
}

bootstrap() {
  fetch || return 1
  report booted ok || return 1
  run containerd-ready prepare || return 1
  run kubeadm-done kubeadm_phase || return 1
  if [ "$MAGNETAR_ROLE" = init ]; then run addons-applied addons || return 1; fi
  run ready node_ready
}

command=${1:-}
shift || true
case "$command" in
  bootstrap) bootstrap ;;
  fetch) fetch ;;
  report) report "$@" ;;
  run) run "$@" ;;
  *) echo "usage: magnetar-node bootstrap|fetch|report PHASE ok|failed [EXIT_CODE] [LOG_FILE]|run PHASE COMMAND..." >&2; exit 2 ;;
esac
