#!/usr/bin/env bash
# Builds noisefs in release and runs the benchmarks (see scripts/bench.py). Pass --quick for smaller sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
exec python3 scripts/bench.py "$@"
