#!/usr/bin/env bash
# Builds noisefs in release and runs the sync benchmark (see scripts/bench-sync.py).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
exec python3 scripts/bench-sync.py "$@"
