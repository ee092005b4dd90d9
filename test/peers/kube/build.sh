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
cache_root=${KUBEEDGE_TS_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubeedge-ts/kube}
dir=$cache_root/$version
bin=$dir/bin
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl)
started=$SECONDS

say() { printf 'kube-build: %s\n' "$*" >&2; }
elapsed() { local s=$((SECONDS - started)); printf '%dm%02ds' $((s / 60)) $((s % 60)); }
complete() { [[ -f $bin/.complete ]]; }

if complete; then
  echo "$bin"
  exit 0
fi

mkdir -p "$dir"
# One build at a time per version (CI and a test may both ask); the others wait, then reuse it.
exec 9>"$dir/.lock"
if ! flock -n 9; then
  say "another build of $version is running; waiting for it ($dir/.lock)"
  flock 9
fi
if complete; then
  echo "$bin"
  exit 0
fi

go=${GO:-$(command -v go || true)}
[[ -n $go ]] || go=/usr/local/go/bin/go
if [[ ! -x $go ]]; then
  say "no Go toolchain found (looked on PATH and at /usr/local/go/bin/go; set GO=/path/to/go)"
  exit 1
fi
jobs=${KUBE_BUILD_JOBS:-$(( ($(nproc) + 1) / 2 ))}
say "building Kubernetes $version test control plane into $bin with $($go env GOVERSION), -p $jobs, nice 10"
say "this takes about 1,300 CPU-seconds and 1 GB of downloads/extraction; done once per version"

export GOTOOLCHAIN=local GOWORK=off GOFLAGS="-buildvcs=false -mod=mod -p=$jobs"
# Own caches (deleted after success; a failed build leaves them for the next attempt to resume).
export GOMODCACHE=$dir/gomod GOCACHE=$dir/gocache GOPATH=$dir/gopath
export GOPROXY=${GOPROXY:-https://proxy.golang.org,direct}
gorun() { nice -n 10 "$go" "$@"; }

# Wrapper module: k8s.io/kubernetes replaces its staging modules with ./staging/src/..., which the
# proxy's zip does not contain; replace each with its published twin (k8s.io/X v0.<minor>.<patch>).
src=$dir/src
rm -rf "$src" "$dir/bin.tmp"
mkdir -p "$src" "$dir/bin.tmp"
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

i=0
for name in "${binaries[@]}"; do
  i=$((i + 1))
  case $name in
    etcd) pkg=go.etcd.io/etcd/server/v3 ;;
    *) pkg=k8s.io/kubernetes/cmd/$name ;;
  esac
  say "[$i/${#binaries[@]}] building $name ($pkg) ($(elapsed) so far)"
  # A progress line every 30 s while go build is silent.
  (while sleep 30; do say "[$i/${#binaries[@]}] still building $name ($(elapsed) so far)"; done) &
  ticker=$!
  status=0
  (cd "$src" && gorun build -trimpath -ldflags "$ldflags" -o "$dir/bin.tmp/$name" "$pkg") || status=$?
  kill "$ticker"
  wait "$ticker" || true
  if [[ $status -ne 0 ]]; then
    say "building $name failed after $(elapsed) (exit $status)"
    exit 1
  fi
  say "[$i/${#binaries[@]}] $name done: $(du -h "$dir/bin.tmp/$name" | cut -f1) ($(elapsed) so far)"
done

rm -rf "$bin"
mv "$dir/bin.tmp" "$bin"
echo "$version" >"$bin/.complete"
say "removing the Go build and module caches ($(du -sh "$GOCACHE" "$GOMODCACHE" 2>/dev/null | cut -f1 | paste -sd' '))"
chmod -R u+w "$GOMODCACHE" "$GOPATH" 2>/dev/null || true
rm -rf "$GOCACHE" "$GOMODCACHE" "$GOPATH"
say "done in $(elapsed): $(du -sh "$bin" | cut -f1) in $bin"
echo "$bin"
