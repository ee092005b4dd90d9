#!/usr/bin/env bash
# Install the real peer programs that the tests start (test/peers/*.ts): containerd + runc + CNI
# plugins + busybox-static (edged), mosquitto (eventBus), pymodbus + socat + mbpoll (Modbus mapper),
# sqlite3, kubectl (metaServer); then builds (or reuses) the Kubernetes control plane of the cloud
# tests (test/peers/kube/build.sh: etcd, kube-apiserver, ... from Go modules, cached by version)
# and KubeEdge's own Go edgecore and cloudcore (test/peers/kubeedge/build.sh, the same way).
#
# Idempotent: runs `apt-get update` (once) and `apt-get install` only when a package is missing.
# Must run as root on Debian 12. Services are NOT started by the install: tests start their own
# instances on free loopback ports in temp dirs, and never use system ones.
set -euo pipefail

PACKAGES=(
  containerd
  runc
  containernetworking-plugins
  iptables # used by the CNI bridge (ipMasq) and portmap plugins
  iproute2 # `ip link del` of the test CNI bridge at tear-down
  busybox-static
  mosquitto
  mosquitto-clients
  python3-pymodbus
  python3-serial
  python3-serial-asyncio # imported by pymodbus.server (only a Recommends of python3-pymodbus)
  socat
  mbpoll
  sqlite3
  dnsutils # dig: queries the edgeMesh DNS in its tests
  gcc       # cgo of KubeEdge's Go edgecore (github.com/mattn/go-sqlite3), built below
  libc6-dev
)
# kubectl: Debian's kubernetes-client, unless some kubectl is already installed (e.g. the cloud
# SDK's `kubectl` package, which owns /usr/bin/kubectl and makes kubernetes-client fail to unpack).
if ! command -v kubectl >/dev/null 2>&1; then
  PACKAGES+=(kubernetes-client)
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install-peers: must run as root" >&2
  exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  if [[ $status != "install ok installed" ]]; then
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-peers: all peer packages already installed (${PACKAGES[*]})"
else
  echo "install-peers: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive

  # Keep maintainer scripts from starting system daemons (mosquitto on :1883, containerd on
  # /run/containerd): a policy-rc.d that answers 101 ("action forbidden") for the duration of the
  # install, unless the machine already has one.
  policy=/usr/sbin/policy-rc.d
  added_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    added_policy=1
  fi
  cleanup() {
    if [[ $added_policy -eq 1 ]]; then rm -f "$policy"; fi
  }
  trap cleanup EXIT

  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
fi

# With systemd as init, a unit may still have been enabled and started: stop the system ones so
# nothing holds port 1883 or the default containerd socket during tests. (No-op without systemd.)
if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
  for unit in mosquitto.service containerd.service; do
    if systemctl is-active --quiet "$unit"; then
      echo "install-peers: stopping system $unit (tests start their own instances)"
      systemctl stop "$unit" || true
    fi
  done
fi

for bin in containerd ctr runc containerd-shim-runc-v2 busybox mosquitto mosquitto_pub socat mbpoll sqlite3 kubectl; do
  if ! command -v "$bin" >/dev/null 2>&1; then
    echo "install-peers: $bin is still missing after the install" >&2
    exit 1
  fi
done
for plugin in bridge host-local portmap loopback; do
  if [[ ! -x /usr/lib/cni/$plugin ]]; then
    echo "install-peers: CNI plugin /usr/lib/cni/$plugin is missing" >&2
    exit 1
  fi
done
/usr/bin/python3 -c 'import pymodbus, serial, serial_asyncio, pymodbus.server; print("install-peers: pymodbus", pymodbus.__version__)'
# Kubernetes control plane (test/peers/kube.ts): no package ships it, so it is built from the
# k8s.io/kubernetes Go module with the Go toolchain (PATH or /usr/local/go/bin/go), once per version
# (about 1,300 CPU-seconds; progress on stderr), into a cache outside the checkout.
kube_bin=$(bash "$(dirname "$0")/../test/peers/kube/build.sh")
echo "install-peers: Kubernetes control plane $(cat "$(dirname "$0")/../test/peers/kube/VERSION") in $kube_bin"
# Go KubeEdge (test/peers/kubeedge.ts: a Go edgecore joins our cloudcore; benchmark anchors): built
# the same way from the github.com/kubeedge/kubeedge Go module (cgo: gcc, for go-sqlite3), once per
# version, into a cache outside the checkout.
kubeedge_bin=$(bash "$(dirname "$0")/../test/peers/kubeedge/build.sh")
echo "install-peers: KubeEdge $(cat "$(dirname "$0")/../test/peers/kubeedge/VERSION") (Go) in $kubeedge_bin"
echo "install-peers: done"
