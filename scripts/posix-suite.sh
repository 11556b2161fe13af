#!/usr/bin/env bash
# Runs the pjdfstest POSIX conformance suite (github.com/pjd/pjdfstest, 8,798 checks) as root on a NoiseFS
# mount with -o allow_other, in a fresh repository, and prints its summary. Not part of CI (it takes about
# 3 minutes and builds a C program from a checkout it clones). PJDFSTEST=/path/to/checkout uses an existing
# checkout instead of cloning; PROFILE=release uses release binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "posix-suite: run as root (the suite changes owners and acts as other users)" >&2; exit 1; }
profile=${PROFILE:-debug}
if [ "$profile" = release ]; then cargo build --release --locked --workspace; else cargo build --locked --workspace; fi
bin="$PWD/target/$profile"
work=$(mktemp -d)
chmod 755 "$work"
cleanup() { "$bin/noisefs" unmount "$work/mnt" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
src=${PJDFSTEST:-$work/pjdfstest}
if [ ! -x "$src/pjdfstest" ]; then
  command -v autoreconf >/dev/null || apt-get install -y -qq autoconf automake >/dev/null
  [ -d "$src" ] || git clone -q https://github.com/pjd/pjdfstest "$src"
  (cd "$src" && autoreconf -ifs >/dev/null 2>&1 && ./configure >/dev/null && make -s pjdfstest)
fi
export NOISEFS_HOME="$work/repo"
"$bin/noisefs" -q init
mkdir "$work/mnt"
"$bin/noisefs" -q mount -o allow_other "$work/mnt"
mkdir "$work/mnt/suite"
cd "$work/mnt/suite"
set +e
prove -r "$src/tests" > "$work/prove.log" 2>&1
rc=$?
set -e
cd /
grep -A200 "Test Summary Report" "$work/prove.log" || tail -3 "$work/prove.log"
failed=$(grep -o 'Failed: [0-9]*' "$work/prove.log" | awk '{s+=$2} END {print s+0}')
echo "posix-suite: $(grep -o 'Tests=[0-9]*' "$work/prove.log" | head -1 | cut -d= -f2) checks, $failed failed (prove exit $rc)"
exit $rc
