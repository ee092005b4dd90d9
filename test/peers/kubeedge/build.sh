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
label=kubeedge-build
cache_root=${KUBEEDGE_TS_KUBEEDGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubeedge-ts/kubeedge}
binaries=(edgecore cloudcore)
jobs=${KUBEEDGE_BUILD_JOBS:-}
nice_level=19
# shellcheck source=../go-peer.sh
source "$here/../go-peer.sh"
command -v gcc >/dev/null || { say "no gcc: edgecore needs cgo (github.com/mattn/go-sqlite3)"; exit 1; }
say "building KubeEdge $version (edgecore, cloudcore) into $bin with $($go env GOVERSION), -p $jobs, nice $nice_level"
export CGO_ENABLED=1

# Wrapper module: KubeEdge's replaces apply only in the main module, so copy all of them (its
# k8s.io/* point at KubeEdge's own Kubernetes fork), the two staging ones rewritten.
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

pkg_of() { echo "github.com/kubeedge/kubeedge/${1%core}/cmd/$1"; }
go_peer_build "$ldflags"
go_peer_finish
