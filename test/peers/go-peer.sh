# Shared by the build scripts of the test peers built from Go modules (kube/build.sh,
# kubeedge/build.sh); sourced, not run. The sourcing script sets:
#   here, version   its directory and the pinned version
#   label           the prefix of its progress lines
#   cache_root      where <version>/bin is cached
#   binaries        (array) the binaries to build
#   jobs            go build -p (empty: half the cores)
#   nice_level      the build's nice level
# Sourcing it reuses a complete cache at once (prints the bin directory, exits 0), else takes the
# per-version lock (a second build waits, then reuses the first's), finds Go, points the Go
# environment at caches of the build's own under <version>/ and makes an empty wrapper module
# directory $src. The script then writes $src/go.mod and calls `go_peer_build LDFLAGS` (with a
# function `pkg_of NAME` giving each binary's package) and `go_peer_finish`.
# Output: progress lines on stderr; on success the bin directory is the only line on stdout.

dir=$cache_root/$version
bin=$dir/bin
started=$SECONDS

say() { printf '%s: %s\n' "$label" "$*" >&2; }
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
jobs=${jobs:-$(( ($(nproc) + 1) / 2 ))}

export GOTOOLCHAIN=local GOWORK=off GOFLAGS="-buildvcs=false -mod=mod -p=$jobs"
# Own caches (deleted after success; a failed build leaves them for the next attempt to resume).
export GOMODCACHE=$dir/gomod GOCACHE=$dir/gocache GOPATH=$dir/gopath
export GOPROXY=${GOPROXY:-https://proxy.golang.org,direct}
gorun() { nice -n "$nice_level" "$go" "$@"; }

src=$dir/src
rm -rf "$src" "$dir/bin.tmp"
mkdir -p "$src" "$dir/bin.tmp"

# Builds each of $binaries (package from `pkg_of NAME`) with ldflags $1 into $dir/bin.tmp.
go_peer_build() {
  local ldflags=$1 i=0 name pkg ticker status
  for name in "${binaries[@]}"; do
    i=$((i + 1))
    pkg=$(pkg_of "$name")
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
}

# Moves the binaries into the cache, marks it complete, deletes the Go caches, prints $bin.
go_peer_finish() {
  rm -rf "$bin"
  mv "$dir/bin.tmp" "$bin"
  echo "$version" >"$bin/.complete"
  say "removing the Go build and module caches ($(du -sh "$GOCACHE" "$GOMODCACHE" 2>/dev/null | cut -f1 | paste -sd' '))"
  chmod -R u+w "$GOMODCACHE" "$GOPATH" 2>/dev/null || true
  rm -rf "$GOCACHE" "$GOMODCACHE" "$GOPATH"
  say "done in $(elapsed): $(du -sh "$bin" | cut -f1) in $bin"
  echo "$bin"
}
