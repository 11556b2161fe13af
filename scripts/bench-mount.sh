#!/usr/bin/env bash
# Builds NoiseFS (release) and runs the mount benchmark against gocryptfs and bindfs (scripts/bench-mount.py).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  for t in fio gocryptfs bindfs; do command -v "$t" >/dev/null || need="${need:-} $t"; done
  if [ -n "${need:-}" ]; then apt-get install -y -qq $need >/dev/null; fi
fi
cargo build --release --locked --workspace
exec python3 scripts/bench-mount.py "$@"
