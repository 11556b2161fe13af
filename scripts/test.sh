#!/usr/bin/env bash
# The test suite: formatting, lints, then unit, property and end-to-end tests of the whole workspace
# (including a 1 GiB stream and real FUSE mounts, which need /dev/fuse and fusermount3, and an
# interoperability test against helia, IPFS in JavaScript, which needs node and npm).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
scripts/interop-setup.sh
cargo test --workspace --locked
