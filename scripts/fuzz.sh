#!/usr/bin/env bash
# Builds the fuzz targets in fuzz/ with libFuzzer's coverage instrumentation on the stable toolchain
# (no sanitizer, like `cargo fuzz --sanitizer none`) and runs each for SECONDS (default 30).
# With nightly and cargo-fuzz installed, `cd fuzz && cargo fuzz run <target>` works as well.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-30}
target=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions"
cargo build --release --bins --target "$target"
for t in link descriptor manifest records announcement; do
  mkdir -p "corpus/$t"
  echo "== $t ($secs s)"
  "./target/$target/release/$t" "corpus/$t" -max_total_time="$secs" -max_len=8192 2>&1 | grep -E '^Done|ERROR|panicked' || true
done
