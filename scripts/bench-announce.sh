#!/usr/bin/env bash
# Builds noisefs (release) and measures announcement latency across three nodes on 127.0.0.1
# (see scripts/bench-announce.py); `cargo bench --bench announce` measures discover.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p noisefs
exec python3 scripts/bench-announce.py "$@"
