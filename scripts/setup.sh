#!/usr/bin/env bash
# Sets up everything on a fresh machine and runs the main job on the embedded default repository:
# builds noisefs (release), stores a sample folder, lists it, gets it back and checks it byte for byte.
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

cargo build --release --locked
BIN="$PWD/target/release/noisefs"
echo "built $BIN"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sample="$work/sample"
mkdir -p "$sample"
cp -r README.md docs src "$sample/"
head -c 3000000 /dev/urandom > "$sample/random.bin"

echo "== noisefs put $sample (repository: ${NOISEFS_HOME:-default})"
link=$("$BIN" put "$sample")
echo "$link"
echo "== noisefs ls"
"$BIN" ls "$link"
echo "== noisefs get"
"$BIN" get "$link" -o "$work/restored"
diff -r "$sample" "$work/restored"
echo "round trip OK: the folder came back byte for byte"
echo "== noisefs repo stats"
"$BIN" repo stats
