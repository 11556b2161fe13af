#!/usr/bin/env bash
# Builds noisefs (release) and runs the network benchmarks on 127.0.0.1 (see scripts/bench-net.py).
# Pass --quick for 256 MiB instead of 1 GiB, --only throughput|ttfb|memory for one of them.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --workspace
cargo build --release --locked -p noisefs-net --examples
exec python3 scripts/bench-net.py "$@"
