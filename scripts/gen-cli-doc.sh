#!/usr/bin/env bash
# Regenerates docs/cli.md from the binary's own --help texts.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
B=target/release/noisefs
{
  echo "# noisefs command reference"; echo
  echo "Generated from \`noisefs <command> --help\` (regenerate with the loop in scripts/gen-cli-doc.sh)."; echo
  for c in "" init put get cat ls stat pin "pin ls" unpin gc "repo stats" "repo verify" \
    "tree ls" "tree mkdir" "tree rm" "tree mv" "tree import" "tree export" \
    "sync add" "sync list" "sync status" "sync pause" "sync resume" "sync remove" "sync versions" "sync restore" "sync run" \
    share receive search "tag add" "tag rm" "tag ls" status mount unmount daemon "daemon stop" completions man; do
    echo "## noisefs $c"; echo; echo '```'
    # shellcheck disable=SC2086
    $B $c --help
    echo '```'; echo
  done
} > docs/cli.md
