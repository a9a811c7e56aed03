#!/usr/bin/env bash
# Property-based fuzzing of the HTTP API from its own OpenAPI document with schemathesis
# (PyPI, in a throwaway virtualenv): every operation gets generated requests, valid and
# invalid, plus stateful sequences that follow the document's links, against a real
# `agentstore serve` on loopback with an admin key.
#
#   scripts/api-fuzz.sh [--max-examples N] [--seed S] [--release]
#
# Fails when any answer is a 5xx, does not match its documented status, content type or
# schema, or when a request that breaks the document is accepted. Not checked: that every
# request the document allows is accepted (schemathesis' positive_data_acceptance). The
# document cannot say everything the server validates (non-empty strings, times after
# now, unit ranges), and in OpenAPI 3.1 a `date-time` format only annotates a string, so
# schemathesis counts `""` as a valid time; those refusals are correct 400s.
#
# revokeKey is left out: the stateful phase would list the keys and revoke the one the
# run authenticates with, and every later request would be a 401.
#
# Environment: AGENTSTORE_FUZZ_VENV (default ${TMPDIR:-/tmp}/agentstore-schemathesis-venv).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

MAX_EXAMPLES=30
SEED=()
PROFILE=debug
SCHEMATHESIS="schemathesis==4.32.5"
while [ $# -gt 0 ]; do
  case "$1" in
    --max-examples) MAX_EXAMPLES="$2"; shift 2 ;;
    --seed) SEED=(--seed "$2"); shift 2 ;;
    --release) PROFILE=release; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

VENV="${AGENTSTORE_FUZZ_VENV:-${TMPDIR:-/tmp}/agentstore-schemathesis-venv}"
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "${SCHEMATHESIS#*==}"; then
  echo "== installing $SCHEMATHESIS into $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$SCHEMATHESIS"
fi

# shellcheck source=scripts/lib/test-server.sh
source "$ROOT/scripts/lib/test-server.sh"
start_test_server "$PROFILE" read,write,admin fuzz

status=0
# From the temp dir: schemathesis keeps its state in .schemathesis/ under the working dir.
(cd "$WORK" && "$VENV/bin/schemathesis" run "$BASE/v1/openapi.json" --url "$BASE" \
  -H "Authorization: Bearer $KEY" \
  --checks all --exclude-checks positive_data_acceptance \
  --exclude-operation-id revokeKey \
  --max-examples "$MAX_EXAMPLES" --workers 1 --no-color "${SEED[@]}") || status=$?

# The server's own count of 5xx answers, in case a check above missed one.
FIVES="$(python3 - "$BASE" <<'PY'
import re, sys, urllib.request
text = urllib.request.urlopen(sys.argv[1] + "/metrics").read().decode()
print(sum(int(float(m.group(1))) for m in re.finditer(
    r'^agentstore_http_requests_total\{[^}]*status="5\d\d"[^}]*\} (\S+)', text, re.M)))
PY
)"
echo "server-side 5xx answers: $FIVES"
if [ "$FIVES" != 0 ]; then
  echo "the server answered 5xx; its log:" >&2
  cat "$WORK/serve.err" >&2
  status=1
fi
exit "$status"
