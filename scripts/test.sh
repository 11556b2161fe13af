#!/usr/bin/env bash
# The test suite: formatting, lints, then unit, property and end-to-end tests (including a 1 GiB stream).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
