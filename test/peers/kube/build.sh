#!/usr/bin/env bash
# Builds (or reuses) the test control plane: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and kubectl from the k8s.io/kubernetes Go module at the version pinned in
# ./VERSION, through the Go module proxy. No registry ships these binaries.
#
# Cache: $KUBEEDGE_TS_KUBE_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/kubeedge-ts/kube)/<version>/bin.
# A complete cache is reused at once. The build uses its own Go build and module caches under
# <version>/ and deletes both after success (the binaries are all that is kept).
#
# Output: progress lines on stderr; on success the bin directory is the only line on stdout.
# Env: KUBE_BUILD_JOBS (go build -p, default half the cores), GO (the go binary).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
version=$(tr -d '[:space:]' <"$here/VERSION")
label=kube-build
cache_root=${KUBEEDGE_TS_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubeedge-ts/kube}
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl)
jobs=${KUBE_BUILD_JOBS:-}
nice_level=10
# shellcheck source=../go-peer.sh
source "$here/../go-peer.sh"
say "building Kubernetes $version test control plane into $bin with $($go env GOVERSION), -p $jobs, nice $nice_level"
say "this takes about 1,300 CPU-seconds and 1 GB of downloads/extraction; done once per version"

# Wrapper module: k8s.io/kubernetes replaces its staging modules with ./staging/src/..., which the
# proxy's zip does not contain; replace each with its published twin (k8s.io/X v0.<minor>.<patch>).
cp "$here/tools.go" "$src/tools.go"
say "reading k8s.io/kubernetes@$version's go.mod from the module proxy ($(elapsed))"
kgomod=$(cd "$src" && gorun mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
[[ -f $kgomod ]] || { say "go mod download gave no GoMod file for k8s.io/kubernetes@$version"; exit 1; }
staging=v0.${version#v1.}
{
  printf 'module kubeedge-ts/kube-peer\n\ngo 1.24.0\n\ngodebug default=go1.24\n\n'
  printf 'require k8s.io/kubernetes %s\n\nreplace (\n' "$version"
  awk -v v="$staging" '$2 == "=>" && $3 ~ /^\.\/staging\/src\// { printf "\t%s => %s %s\n", $1, $1, v }' "$kgomod"
  printf ')\n'
} >"$src/go.mod"
say "$(grep -c ' => ' "$src/go.mod") staging modules replaced by their $staging twins; go mod tidy ($(elapsed))"
# tidy downloads a few hundred modules: one line for all of them, its other output as it is
(cd "$src" && gorun mod tidy 2>&1) | { grep -v '^go: downloading ' >&2 || true; }
say "$(find "$GOMODCACHE/cache/download" -name '*.zip' | wc -l) modules downloaded ($(du -sh "$GOMODCACHE/cache/download" | cut -f1)) ($(elapsed))"

# Version stamps: without them /version says v0.0.0-master.
minor=${version#v1.}
minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done

pkg_of() {
  case $1 in
    etcd) echo go.etcd.io/etcd/server/v3 ;;
    *) echo "k8s.io/kubernetes/cmd/$1" ;;
  esac
}
go_peer_build "$ldflags"
go_peer_finish
