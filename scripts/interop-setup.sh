#!/usr/bin/env bash
# Prepares the helia (IPFS in JavaScript) peer the interoperability tests run against: copies
# net/tests/helia to target/helia and installs its npm packages there (~1 min and ~340 MB the first
# time; nothing when package-lock.json has not changed). Needs node (>= 20) and npm.
set -euo pipefail
cd "$(dirname "$0")/.."
src=net/tests/helia
dst=target/helia
command -v node >/dev/null && command -v npm >/dev/null || {
  echo "interop-setup: node and npm are needed (apt-get install nodejs npm)" >&2
  exit 1
}
mkdir -p "$dst"
cp "$src"/package.json "$src"/package-lock.json "$src"/peer.mjs "$src"/polyfill.mjs "$dst"/
if [ ! -d "$dst/node_modules/helia" ] || ! cmp -s "$src/package-lock.json" "$dst/node_modules/.installed-lock"; then
  (cd "$dst" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$src/package-lock.json" "$dst/node_modules/.installed-lock"
fi
