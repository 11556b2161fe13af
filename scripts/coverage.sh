#!/usr/bin/env bash
# Line coverage of the workspace (library, FUSE driver, network crate; the binaries' subprocesses
# included), one row per module, then the total. Exits 1 when a module of src/, mount/src or net/src is
# at or below the bar (95% unless COVERAGE_BAR says otherwise). About 20 minutes on 2 cores; not part of
# .ci/run. Needs cargo-tarpaulin (`cargo install cargo-tarpaulin --locked`) and what scripts/test.sh
# needs (fuse3, node and npm for the helia test).
#
#   scripts/coverage.sh             measure, print the table, check the bar
#   scripts/coverage.sh --table     print the table of the last measurement again
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/coverage
if [ "${1:-}" != "--table" ]; then
  command -v cargo-tarpaulin >/dev/null || {
    echo "coverage: cargo-tarpaulin is needed: cargo install cargo-tarpaulin --locked" >&2
    exit 2
  }
  scripts/interop-setup.sh
  # The binaries the end-to-end tests run are built instrumented by tarpaulin, so their runs count.
  # The 1 GiB stream test only repeats paths others cover, at ten times their cost: skipped.
  cargo tarpaulin --engine llvm --workspace --locked --skip-clean --out Json --output-dir "$out" \
    --timeout 600 -- --skip one_gib_streams_with_bounded_memory
fi
python3 - "$out/tarpaulin-report.json" "${COVERAGE_BAR:-95}" <<'EOF'
import json, os, sys
report, bar = sys.argv[1], float(sys.argv[2])
data = json.load(open(report))
root = os.getcwd() + os.sep
rows, low = [], []
total_cov = total_all = 0
for f in data["files"]:
    path = os.sep.join(f["path"]) if isinstance(f["path"], list) else f["path"]
    path = path.replace("//", "/")
    rel = path[len(root):] if path.startswith(root) else path
    if not (rel.startswith("src/") or rel.startswith("mount/src/") or rel.startswith("net/src/")):
        continue
    cov, all_ = f["covered"], f["coverable"]
    if all_ == 0:
        continue
    total_cov += cov
    total_all += all_
    pct = 100.0 * cov / all_
    rows.append((rel, cov, all_, pct))
    if pct <= bar:
        low.append(rel)
rows.sort(key=lambda r: r[3])
print(f"| module | lines covered | % |")
print(f"|---|---|---|")
for rel, cov, all_, pct in rows:
    print(f"| {rel} | {cov} / {all_} | {pct:.1f}% |")
print(f"| **total** | {total_cov} / {total_all} | {100.0 * total_cov / max(total_all, 1):.1f}% |")
if low:
    print(f"\n{len(low)} modules at or below {bar:.0f}%", file=sys.stderr)
    sys.exit(1)
EOF
