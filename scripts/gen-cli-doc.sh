#!/usr/bin/env bash
# Regenerates docs/cli.md from the binary's own --help texts.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${NOISEFS_BIN:-target/release/noisefs}
[ -n "${NOISEFS_BIN:-}" ] || cargo build --release --locked -q
{
  echo "# noisefs command reference"; echo
  echo "Generated from \`noisefs <command> --help\` (regenerate with the loop in scripts/gen-cli-doc.sh)."; echo
  for c in "" init put get cat ls stat pin "pin ls" unpin gc "repo stats" "repo verify" \
    "tree ls" "tree mkdir" "tree rm" "tree mv" "tree import" "tree export" \
    "sync add" "sync list" "sync status" "sync pause" "sync resume" "sync remove" "sync versions" "sync restore" "sync run" \
    share receive search "tag add" "tag rm" "tag ls" status mount unmount daemon "daemon stop" \
    "net on" "net off" "net status" id peers "swarm connect" "swarm disconnect" discover providers completions man; do
    echo "## noisefs $c"; echo; echo '```'
    # shellcheck disable=SC2086
    $B $c --help
    echo '```'; echo
  done
  cat <<'EOF'
## Output conventions

Every command that prints data takes `--json` and prints one JSON document on standard output
(progress and warnings go to standard error). The fields share one vocabulary:

| field | meaning |
|---|---|
| `mtime`, `created`, `time`, `last_sync`, `started` | a time: integer seconds since the Unix epoch (UTC) |
| `created_ms`, `mtime_ns`, ... | the same time whole, in milliseconds or nanoseconds since the epoch (on a duration, such as `timeout_ms`, the suffix is its unit) |
| `mode` | permission bits as an octal string, `"0644"` |
| `size`, `*_bytes` | integer bytes |
| `kind` | `"file"`, `"dir"` or `"symlink"` (a pin: what the link points at) |
| `link` | a full `noisefs://` link, key included: treat it as a secret |
| `root` | the root block's CID (no key) |
| `path` | a tree path (`/a/b`) or a local path, as the command's arguments were |
| `name` | one path component |
| `error` | what failed for this item, in words a user can act on (items that succeeded have none) |

Search results' `type` is the media category (video, audio, document, image, software, data, other).

## Exit status

| code | meaning |
|---|---|
| 0 | success |
| 1 | any other failure |
| 2 | usage: unknown command, bad option or argument |
| 3 | partial: some arguments or entries succeeded, others failed (each is reported) |
| 4 | not found: a path, link or block that does not exist |
| 5 | wrong key or password |
| 6 | missing or corrupt data in the repository (`noisefs repo verify` says what) |
| 7 | the repository is held by another command (see `--retry-lock`) |
| 8 | an I/O error on the local disk |
| 130 | interrupted (Ctrl-C) |
EOF
} > docs/cli.md
