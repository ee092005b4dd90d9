#!/usr/bin/env bash
# Builds (or reuses) the Go KubeEdge test peer: edgecore and cloudcore from the
# github.com/kubeedge/kubeedge Go module at the version pinned in ./VERSION, through the Go module
# proxy. The tests run them side by side with ours (interop, benchmark anchors).
#
# Cache: $KUBEEDGE_TS_KUBEEDGE_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/kubeedge-ts/kubeedge)/<version>/bin.
# A complete cache is reused at once. The build uses its own Go build and module caches under
# <version>/ and deletes both after success (the binaries are all that is kept).
#
# Output: progress lines on stderr; on success the bin directory is the only line on stdout.
# Env: KUBEEDGE_BUILD_JOBS (go build -p, default half the cores), GO (the go binary).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
version=$(tr -d '[:space:]' <"$here/VERSION")
# KubeEdge's go.mod replaces github.com/kubeedge/{api,beehive} by ./staging/src/..., which the
# proxy's zip does not contain; their published twins are tagged with the release, but the proxy
# serves no v1.23.1 tag of either: v1.23.0 is the newest of the v1.23 line it has.
staging_version=v1.23.0
cache_root=${KUBEEDGE_TS_KUBEEDGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubeedge-ts/kubeedge}
dir=$cache_root/$version
bin=$dir/bin
binaries=(edgecore cloudcore)
started=$SECONDS

say() { printf 'kubeedge-build: %s\n' "$*" >&2; }
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
command -v gcc >/dev/null || { say "no gcc: edgecore needs cgo (github.com/mattn/go-sqlite3)"; exit 1; }
jobs=${KUBEEDGE_BUILD_JOBS:-$(( ($(nproc) + 1) / 2 ))}
say "building KubeEdge $version (edgecore, cloudcore) into $bin with $($go env GOVERSION), -p $jobs, nice 19"

export GOTOOLCHAIN=local GOWORK=off GOFLAGS="-buildvcs=false -mod=mod -p=$jobs" CGO_ENABLED=1
# Own caches (deleted after success; a failed build leaves them for the next attempt to resume).
export GOMODCACHE=$dir/gomod GOCACHE=$dir/gocache GOPATH=$dir/gopath
export GOPROXY=${GOPROXY:-https://proxy.golang.org,direct}
gorun() { nice -n 19 "$go" "$@"; }

# Wrapper module: KubeEdge's replaces apply only in the main module, so copy all of them (its
# k8s.io/* point at KubeEdge's own Kubernetes fork), the two staging ones rewritten.
src=$dir/src
rm -rf "$src" "$dir/bin.tmp"
mkdir -p "$src" "$dir/bin.tmp"
cp "$here/tools.go" "$src/tools.go"
say "reading github.com/kubeedge/kubeedge@$version's go.mod from the module proxy ($(elapsed))"
kjson=$(cd "$src" && gorun mod download -json "github.com/kubeedge/kubeedge@$version")
field() { sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}\$/\1/p" <<<"$kjson"; }
kgomod=$(field GoMod)
kdir=$(field Dir)
[[ -f $kgomod && -f $kdir/go.sum ]] || { say "go mod download gave no go.mod/go.sum for github.com/kubeedge/kubeedge@$version"; exit 1; }
# KubeEdge's go.sum: the checksum database has no entry for its Kubernetes fork's modules
# (github.com/kubeedge/kubernetes/...), so they are verified against the hashes KubeEdge recorded.
cp "$kdir/go.sum" "$src/go.sum"
chmod u+w "$src/go.sum"
goline=$(awk '$1 == "go" { print $2; exit }' "$kgomod")
{
  printf 'module kubeedge-ts/kubeedge-peer\n\ngo %s\n\n' "$goline"
  printf 'require github.com/kubeedge/kubeedge %s\n\nreplace (\n' "$version"
  awk -v v="$staging_version" '
    /^replace \($/ { inside = 1; next }
    inside && /^\)$/ { inside = 0 }
    inside && $2 == "=>" {
      if ($3 ~ /^\.\/staging\/src\//) printf "\t%s => %s %s\n", $1, $1, v
      else print
    }' "$kgomod"
  printf ')\n'
} >"$src/go.mod"
say "$(grep -c ' => ' "$src/go.mod") replaces copied (kubeedge/api, beehive at $staging_version); go mod tidy ($(elapsed))"
(cd "$src" && gorun mod tidy 2>&1) | { grep -v '^go: downloading ' >&2 || true; }
say "$(find "$GOMODCACHE/cache/download" -name '*.zip' | wc -l) modules downloaded ($(du -sh "$GOMODCACHE/cache/download" | cut -f1)) ($(elapsed))"

# Version stamps (KubeEdge's hack/lib/golang.sh sets the same): without them the version is v0.0.0-master.
minor=${version#v1.}
minor=${minor%%.*}
ldflags="-s -w"
pkg=github.com/kubeedge/kubeedge/pkg/version
ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"

i=0
for name in "${binaries[@]}"; do
  i=$((i + 1))
  case $name in
    edgecore) pkg=github.com/kubeedge/kubeedge/edge/cmd/edgecore ;;
    cloudcore) pkg=github.com/kubeedge/kubeedge/cloud/cmd/cloudcore ;;
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
