#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets: JSON Lines import, search requests and
# filters, the chunker, namespaces and metadata paths, MCP messages) for a bounded time
# each, coverage-guided by libFuzzer through cargo-fuzz. A crash fails the run and
# leaves its input in fuzz/artifacts/TARGET/.
#
# Usage: scripts/fuzz.sh [--seconds N] [TARGET...]   (default: 30 s, every target)
#
# The targets build on the stable toolchain with `--sanitizer none`: AddressSanitizer
# needs nightly, and the code under test is safe Rust apart from SQLite's C. Each
# target starts from its seeds in fuzz/seeds/TARGET and keeps what it learns in
# fuzz/corpus/TARGET (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=30
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then
  targets=(jsonl_record search_request chunker namespace_filter mcp_message)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz (once)"
  cargo install cargo-fuzz --locked --version 0.13.2
fi

cargo fuzz build --sanitizer none --release
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  for seed in "fuzz/seeds/$t"/*; do
    [ -e "$seed" ] || continue
    [ -e "fuzz/corpus/$t/$(basename "$seed")" ] || cp "$seed" "fuzz/corpus/$t/"
  done
  echo "== fuzz $t for ${seconds}s"
  if cargo fuzz run --sanitizer none --release "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    grep -E '^(Done |stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)' "$log"
  else
    tail -n 60 "$log"
    echo "fuzz target $t failed; the input is in fuzz/artifacts/$t/"
    exit 1
  fi
done
