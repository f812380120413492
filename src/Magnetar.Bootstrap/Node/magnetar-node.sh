#!/bin/bash
# magnetar-node: the node side of Magnetar's bootstrap protocol. Magnetar renders it into every server's
# cloud-init user-data; cloud-init runs "magnetar-node bootstrap" once, on first boot.
#   magnetar-node bootstrap              every phase in order (what cloud-init runs)
#   magnetar-node fetch                  trade the single-use credential of the user-data for this node's bundle
#                                        (certificates, keys, kubeadm configuration, addons, report credential)
#   magnetar-node report PHASE ok|failed [EXIT_CODE] [LOG_FILE]
#   magnetar-node run PHASE COMMAND...   run COMMAND; report PHASE ok, or failed with its exit code and log tail
#   magnetar-node task                   ask Magnetar for work (a CA rotation step, renewing certificates before they
#                                        expire, leaving etcd when replaced), carry it out, report it; what
#                                        magnetar-node-agent.timer runs every 30 s once the node has bootstrapped
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

# The version of the kubelet installed here, as "kubelet --version" says it ("Kubernetes v1.32.1" -> v1.32.1); empty
# before it is installed. Magnetar records it: an upgrade is done only when every node says it runs the new version.
kubelet_version() {
  command -v kubelet >/dev/null 2>&1 || return 0
  kubelet --version 2>/dev/null | sed -n 's/^Kubernetes \(v[0-9][0-9.A-Za-z+-]*\)$/\1/p' | head -n 1
}

report() {
  local phase=$1 status=$2 code=${3:-} file=${4:-} token
  token=$(cat "$ETC/report-token") || { log "no report credential"; return 1; }
  if [ -n "$file" ] && [ -f "$file" ]; then tail -n "${MAGNETAR_LOG_LINES:-40}" "$file"; fi |
    "${CURL[@]}" --retry 5 --retry-delay 2 --retry-all-errors --fail -o /dev/null -X POST \
      -H "Authorization: Bearer $token" -H 'Content-Type: text/plain' --data-binary @- \
      "$MAGNETAR_URL/bootstrap/v1/report?phase=$phase&status=$status&exit_code=$code&kubelet_version=$(kubelet_version)&member=${REPORT_MEMBER:-}"
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
  run ready node_ready || return 1
  systemctl daemon-reload && systemctl enable --now magnetar-node-agent.timer
}

# ---------------------------------------------------------------- work after bootstrap: CA rotation
# Kubernetes' manual CA rotation (kubernetes.io/docs/tasks/tls/manual-rotation-of-ca-certificates), in three steps
# that Magnetar hands out one at a time (control-plane nodes one by one, then the workers) and every one of which can
# be run again: trust both CAs, re-issue from the new one, drop the old one. The etcd and front-proxy CAs and the
# service-account key are not rotated.
PKI="$KUBE/pki"
KUBELET_PKI="$ROOT/var/lib/kubelet/pki"
KUBELET_CLIENT=/var/lib/kubelet/pki/kubelet-client-current.pem # as the kubelet sees it (kubelet.conf names it)
KUBECONFIGS=(admin.conf super-admin.conf controller-manager.conf scheduler.conf kubelet.conf)

is_control_plane() { [ "$MAGNETAR_ROLE" != worker ]; }
admin() { kubectl --kubeconfig "$KUBE/admin.conf" "$@"; }

# The kubeconfig $1 trusts the certificates of the file $2. kubeadm and the kubelet embed the CA, base64 on one line
# (certificate-authority-data); edited with sed, not `kubectl config`, which some kubectl builds cannot run (Debian's
# 1.20 panics writing a kubeconfig).
kubeconfig_trust() {
  local data
  grep -q '^[[:space:]]*certificate-authority-data:' "$1" || { echo "$1 does not embed its CA"; return 1; }
  data=$(base64 -w0 "$2") || return 1
  sed -i "s|^\([[:space:]]*certificate-authority-data:\).*|\1 $data|" "$1"
}

# Every kubeconfig kubeadm wrote on this node trusts the certificates of the file $1.
kubeconfigs_trust() {
  local f
  for f in "${KUBECONFIGS[@]}"; do
    if [ -f "$KUBE/$f" ]; then kubeconfig_trust "$KUBE/$f" "$1" || return 1; fi
  done
}

# Static pods restart when their manifest leaves and comes back (what kubeadm's documentation does after a renewal).
restart_control_plane() {
  local m paused="$KUBE/magnetar/paused"
  mkdir -p "$paused"
  for m in kube-apiserver kube-controller-manager kube-scheduler; do
    [ -f "$KUBE/manifests/$m.yaml" ] || continue
    mv "$KUBE/manifests/$m.yaml" "$paused/" || return 1
    sleep "${MAGNETAR_RESTART_WAIT:-20}"
    mv "$paused/$m.yaml" "$KUBE/manifests/" || return 1
    [ "$m" = kube-apiserver ] || continue
    for ((i = 1; i <= 60; i++)); do
      admin --server https://127.0.0.1:6443 --tls-server-name kubernetes get --raw /readyz >/dev/null && break
      if [ "$i" = 60 ]; then echo "the local kube-apiserver is not ready 5 minutes after its restart"; return 1; fi
      sleep 5
    done
  done
}

# The kubelet's serving certificate and key, from the directory $1.
install_kubelet_serving() {
  install -m 0644 "$1/kubelet-serving.crt" "$KUBELET_PKI/kubelet-serving.crt" &&
    install -m 0600 "$1/kubelet-serving.key" "$KUBELET_PKI/kubelet-serving.key"
}

# The kubelet's client certificate (one file, certificate and key) and serving certificate from the new CA.
install_kubelet_certs() {
  local d=$1 name
  mkdir -p "$KUBELET_PKI"
  name="kubelet-client-$(date -u +%Y-%m-%d-%H-%M-%S).pem"
  install -m 0600 "$d/kubelet-client.pem" "$KUBELET_PKI/$name" && ln -sfn "$name" "$KUBELET_PKI/kubelet-client-current.pem" || return 1
  install_kubelet_serving "$d" || return 1
  # kubelet.conf names that file (as kubeadm leaves it after kubelet-finalize or the kubelet's TLS bootstrap).
  [ -f "$KUBE/kubelet.conf" ] || return 0
  sed -i -e "s|^\([[:space:]]*\)client-certificate-data:.*|\1client-certificate: $KUBELET_CLIENT|" \
    -e "s|^\([[:space:]]*\)client-key-data:.*|\1client-key: $KUBELET_CLIENT|" "$KUBE/kubelet.conf"
}

# Pods read the cluster CA once (kube-root-ca.crt): once the controller managers publish both CAs, restart every
# workload so that none still trusts only the old one when the API servers start serving from the new one.
restart_workloads() {
  local marker ns kind
  marker=$(sed -n 2p "$1")
  for ((i = 1; i <= 60; i++)); do
    admin -n kube-system get configmap kube-root-ca.crt -o jsonpath='{.data.ca\.crt}' | grep -qF -- "$marker" && break
    if [ "$i" = 60 ]; then echo "kube-root-ca.crt does not carry the new CA 10 minutes after the controller managers restarted"; return 1; fi
    sleep 10
  done
  for ns in $(admin get namespaces -o jsonpath='{.items[*].metadata.name}'); do
    for kind in deployment daemonset statefulset; do
      [ -n "$(admin -n "$ns" get "$kind" -o name)" ] || continue
      admin -n "$ns" rollout restart "$kind" || return 1
    done
  done
}

# kube-public/cluster-info (what kubeadm's token discovery trusts) carries the new CA.
publish_cluster_info() {
  local ca=$1 tmp
  tmp=$(mktemp -d)
  if ! admin -n kube-public get configmap cluster-info -o jsonpath='{.data.kubeconfig}' >"$tmp/kubeconfig" ||
    ! kubeconfig_trust "$tmp/kubeconfig" "$ca"; then
    rm -rf "$tmp"
    return 1
  fi
  {
    printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cluster-info\n  namespace: kube-public\ndata:\n  kubeconfig: |\n'
    sed 's/^/    /' "$tmp/kubeconfig"
  } | admin apply --server-side --force-conflicts --field-manager=magnetar -f -
  local rc=$?
  rm -rf "$tmp"
  return $rc
}

rotate_trust() {
  local d=$1
  # ca.crt is also the controller manager's signing certificate: its first certificate stays the one of ca.key.
  awk 1 "$d/ca-current.crt" "$d/ca-next.crt" >"$d/bundle.crt" && install -m 0644 "$d/bundle.crt" "$PKI/ca.crt" || return 1
  kubeconfigs_trust "$d/bundle.crt" || return 1
  if is_control_plane; then restart_control_plane || return 1; fi
  systemctl restart kubelet
}

rotate_reissue() {
  local d=$1
  awk 1 "$d/ca-next.crt" "$d/ca-current.crt" >"$d/bundle.crt" || return 1
  if is_control_plane; then
    if [ "${MAGNETAR_TASK_LEAD:-0}" = 1 ]; then restart_workloads "$d/ca-next.crt" || return 1; fi
    # From here on this node's controller manager signs, and kubeadm issues, with the new CA.
    install -m 0600 "$d/ca-next.key" "$PKI/ca.key" && install -m 0644 "$d/bundle.crt" "$PKI/ca.crt" || return 1
    kubeadm certs renew all || return 1
    kubeconfigs_trust "$d/bundle.crt" || return 1 # kubeadm writes only ca.crt's first certificate into them
  else
    install -m 0644 "$d/bundle.crt" "$PKI/ca.crt" || return 1
  fi
  install_kubelet_certs "$d" || return 1
  if is_control_plane; then restart_control_plane || return 1; fi
  systemctl restart kubelet
}

rotate_finish() {
  local d=$1
  install -m 0644 "$d/ca-next.crt" "$PKI/ca.crt" || return 1
  kubeconfigs_trust "$d/ca-next.crt" || return 1
  if is_control_plane; then
    if [ "${MAGNETAR_TASK_LEAD:-0}" = 1 ]; then publish_cluster_info "$d/ca-next.crt" || return 1; fi
    restart_control_plane || return 1
  fi
  systemctl restart kubelet
}

# The kubelet does not renew a serving certificate it was given: Magnetar hands a new one before it expires.
renew_kubelet_serving() {
  install_kubelet_serving "$1" || return 1
  systemctl restart kubelet
}

# kubeadm's certificates last a year: renewed, and the control plane restarted to use them, before they expire.
renew_control_plane_certs() {
  kubeadm certs renew all || return 1
  restart_control_plane
}

# A control-plane node being replaced (upgrade, healing) leaves etcd before its server is deleted, so that the
# cluster's etcd keeps its quorum count right (its successor joined as a member before). Its pods were drained.
leave_etcd() {
  kubeadm reset phase remove-etcd-member --kubeconfig "$KUBE/admin.conf"
}

# A control-plane node that was healed for being dead cannot leave etcd itself: a healthy control-plane node removes
# its member (etcdctl in this node's etcd pod, with the etcd server certificate kubeadm made here).
remove_etcd_member() {
  local name=$1 id
  local etcdctl=(kubectl --kubeconfig "$KUBE/admin.conf" -n kube-system exec "etcd-$MAGNETAR_NODE" -- etcdctl
    --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt
    --cert=/etc/kubernetes/pki/etcd/server.crt --key=/etc/kubernetes/pki/etcd/server.key)
  id=$("${etcdctl[@]}" member list | awk -F', ' -v n="$name" '$3 == n { print $1 }') || return 1
  if [ -z "$id" ]; then
    echo "etcd has no member named $name (already removed)"
    return 0
  fi
  "${etcdctl[@]}" member remove "$id"
}

task() {
  local token code tmp dir="$ETC/task" rc member
  token=$(cat "$ETC/report-token") || { log "no report credential: the node has not fetched its bundle"; return 1; }
  tmp=$(mktemp)
  code=$("${CURL[@]}" -o "$tmp" -w '%{http_code}' -X POST -H "Authorization: Bearer $token" \
    "$MAGNETAR_URL/bootstrap/v1/task?kubelet_version=$(kubelet_version)") || code=000
  case "$code" in
    204) rm -f "$tmp"; return 0 ;;
    200) ;;
    *) log "asking Magnetar for work failed (HTTP $code): $(head -c 500 "$tmp")"; rm -f "$tmp"; return 1 ;;
  esac
  rm -rf "$dir"
  if ! (umask 077 && mkdir -p "$dir" && tar -xzf "$tmp" -C "$dir" --no-same-owner); then rm -f "$tmp"; return 1; fi
  rm -f "$tmp"
  MAGNETAR_TASK=$(sed -n 's/^MAGNETAR_TASK=//p' "$dir/task.env")
  MAGNETAR_TASK_STEP=$(sed -n 's/^MAGNETAR_TASK_STEP=//p' "$dir/task.env")
  MAGNETAR_TASK_LEAD=$(sed -n 's/^MAGNETAR_TASK_LEAD=//p' "$dir/task.env")
  case "$MAGNETAR_TASK:$MAGNETAR_TASK_STEP" in
    rotate-ca:trust | rotate-ca:reissue | rotate-ca:finish)
      log "CA rotation step $MAGNETAR_TASK_STEP"
      run "ca-$MAGNETAR_TASK_STEP" "rotate_$MAGNETAR_TASK_STEP" "$dir"; rc=$? ;;
    renew-control-plane-certs:)
      log "renewing the control plane's certificates"
      run control-plane-certs-renewed renew_control_plane_certs; rc=$? ;;
    renew-kubelet-serving:)
      log "renewing the kubelet serving certificate"
      run kubelet-serving-renewed renew_kubelet_serving "$dir"; rc=$? ;;
    remove-etcd-member:)
      member=$(sed -n 's/^MAGNETAR_TASK_MEMBER=//p' "$dir/task.env")
      log "removing the etcd member of dead control-plane node $member"
      REPORT_MEMBER=$member
      run etcd-member-removed remove_etcd_member "$member"; rc=$?
      REPORT_MEMBER= ;;
    leave-etcd:)
      log "this control-plane node is replaced: removing its etcd member"
      run etcd-member-removed leave_etcd; rc=$? ;;
    *) log "unknown task '$MAGNETAR_TASK' '$MAGNETAR_TASK_STEP'"; rc=1 ;;
  esac
  rm -rf "$dir" # the new CA key lives only in /etc/kubernetes/pki
  return $rc
}

command=${1:-}
shift || true
case "$command" in
  bootstrap) bootstrap ;;
  fetch) fetch ;;
  report) report "$@" ;;
  run) run "$@" ;;
  task) task ;;
  *) echo "usage: magnetar-node bootstrap|fetch|task|report PHASE ok|failed [EXIT_CODE] [LOG_FILE]|run PHASE COMMAND..." >&2; exit 2 ;;
esac
