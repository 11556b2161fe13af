#!/usr/bin/env bash
# Sets up everything on a fresh machine and runs the main job on the embedded default repository:
# builds noisefs and its FUSE driver (release), stores a sample folder, lists it, gets it back and checks it
# byte for byte, syncs it through the tree into a mirror folder, then mounts the repository on
# $NOISEFS_MOUNT (default ~/NoiseFS), copies the sample in with cp -a, checks it, has a second
# (temporary) repository fetch the sample's link from the mount's node over 127.0.0.1, and leaves the
# mount up.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
  echo "setup: cargo is needed (install Rust with rustup)" >&2
  exit 1
fi
# heed builds LMDB from source with the C compiler; make sure one is there.
if ! command -v cc >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && apt-get install -y -qq build-essential >/dev/null
fi

# fusermount3 for the mount.
if ! command -v fusermount3 >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && apt-get install -y -qq fuse3 >/dev/null
fi

cargo build --release --locked --workspace
BIN="$PWD/target/release/noisefs"
# The FUSE helper under the name mount(8) looks for with `-t fuse.noisefs` (and the older mount.noisefs).
ln -sf mount-noisefs target/release/mount.noisefs
if [ "$(id -u)" = 0 ] && [ -d /usr/sbin ]; then
  ln -sf "$PWD/target/release/mount-noisefs" /usr/sbin/mount.noisefs
  ln -sf "$PWD/target/release/mount-noisefs" /usr/sbin/mount.fuse.noisefs
fi
echo "built $BIN and $PWD/target/release/mount-noisefs"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sample="$work/sample"
mkdir -p "$sample"
cp -r README.md docs src "$sample/"
head -c 3000000 /dev/urandom > "$sample/random.bin"

# The standard location is created on first use; a NOISEFS_HOME folder must be made by `init`.
if [ -n "${NOISEFS_HOME:-}" ] && [ ! -e "$NOISEFS_HOME/config.toml" ]; then
  "$BIN" -q init
fi
echo "== noisefs put $sample (repository: ${NOISEFS_HOME:-default})"
link=$("$BIN" put "$sample")
echo "$link"
echo "== noisefs ls"
"$BIN" ls "$link"
echo "== noisefs get"
"$BIN" get "$link" -o "$work/restored"
diff -r "$sample" "$work/restored"
echo "round trip OK: the folder came back byte for byte"
echo "== two-way sync: $sample <-> the tree <-> $work/mirror"
tree_path="/setup-samples/$(date +%Y%m%d-%H%M%S)-$$"
mkdir -p "$work/mirror"
s1=$("$BIN" -q sync add "$sample" "$tree_path" | sed -n 's/^session \([0-9]*\):.*/\1/p')
s2=$("$BIN" -q sync add "$work/mirror" "$tree_path" | sed -n 's/^session \([0-9]*\):.*/\1/p')
"$BIN" sync run --once "$s1"
"$BIN" sync run --once "$s2"
diff -r "$sample" "$work/mirror"
echo "sync OK: the mirror folder matches, through $tree_path in the tree"
# The sample folders are temporary: stop syncing them (the tree keeps its copy).
"$BIN" -q sync remove "$s1" >/dev/null
"$BIN" -q sync remove "$s2" >/dev/null
echo "== noisefs status"
"$BIN" status
echo "== noisefs repo stats"
"$BIN" repo stats
echo "== noisefs mount ${NOISEFS_MOUNT:=$HOME/NoiseFS}"
if grep -qs " $NOISEFS_MOUNT fuse" /proc/mounts; then
  "$BIN" unmount "$NOISEFS_MOUNT"
fi
# The mount runs the repository's network node. If the network is off, it is turned on for this
# run on loopback only (no peers, nothing announced beyond this machine) and off again afterwards.
net_was_off=0
if "$BIN" status | grep -q '^network: *off'; then
  net_was_off=1
  "$BIN" -q net on --listen /ip4/127.0.0.1/tcp/0 --dht server
  # Off again however this script ends.
  trap 'rm -rf "$work"; "$BIN" -q net off || true' EXIT
fi
mkdir -p "$NOISEFS_MOUNT"
"$BIN" mount "$NOISEFS_MOUNT"
dest="$NOISEFS_MOUNT/setup-sample-$(date +%Y%m%d-%H%M%S)"
cp -a "$sample" "$dest"
diff -r "$sample" "$dest"
ls -la "$NOISEFS_MOUNT" | head -20
echo "== noisefs search (through the mount process) and $NOISEFS_MOUNT/.search/"
"$BIN" search 'tantivy OR fuser' --path "${dest#"$NOISEFS_MOUNT"}" --limit 5
hits=$(ls "$NOISEFS_MOUNT/.search/ext:md/" | grep -c . || true)
echo "ls $NOISEFS_MOUNT/.search/ext:md/ lists $hits entries (hits as symlinks, plus .results)"
[ "$hits" -gt 1 ] || { echo "search in the mount found nothing" >&2; exit 1; }
echo "== the network: a second repository gets the sample link from this one over 127.0.0.1"
addr=$("$BIN" id | grep -m1 '^/ip4/127\.0\.0\.1/')
echo "this repository's node (run by the mount): $addr"
second="$work/second"
NOISEFS_HOME="$second" "$BIN" -q init
NOISEFS_HOME="$second" "$BIN" -q net on --listen /ip4/127.0.0.1/tcp/0 --peer "$addr"
NOISEFS_HOME="$second" "$BIN" get "$link" -o "$work/from-network"
diff -r "$sample" "$work/from-network"
NOISEFS_HOME="$second" "$BIN" repo stats | grep -m2 -i 'blocks'
echo "network OK: the second repository fetched the folder's blocks from the first, byte for byte"
if [ "$net_was_off" = 1 ]; then
  echo "(the network was off here: it is off again from the next start; the running mount keeps its loopback-only node)"
fi
echo "mount OK: $NOISEFS_MOUNT is NoiseFS (the sample is in $dest); \`$BIN unmount $NOISEFS_MOUNT\` ends it"
